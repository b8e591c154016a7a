//! The kubelet's own lifecycle: SIGTERM stops every pod process; a restarted kubelet runs its
//! pods again on the same pod IPs, finishes deletions that happened while it was down, and
//! stops what a crashed (SIGKILLed) kubelet left running.

mod common;

use api::meta::DeleteOptions;
use common::*;
use nix::sys::signal::Signal;
use testkit::{ControlPlane, DEFAULT_TIMEOUT, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_stop_restart_and_crash_leave_no_orphans() {
    let cp = ControlPlane::start().await;
    let mut k = start_kubelet(&cp, "node-e", 55, &[]);
    let client = cp.client();
    // The child ignores SIGTERM: only the group SIGKILL after the grace period stops it.
    create_pod(
        &client,
        "node-e",
        sh_pod(
            "one",
            "sh -c 'trap \"\" TERM; sleep 3600' & exec sleep 3600",
        ),
    )
    .await;
    create_pod(&client, "node-e", sh_pod("two", "exec sleep 3600")).await;
    let one = wait_pod(&client, "one", "Running", running_with_ip).await;
    let two = wait_pod(&client, "two", "Running", running_with_ip).await;
    let (ip1, ip2) = (pod_ip(&one), pod_ip(&two));
    assert_ne!(ip1, ip2);
    let pid1 = container_pid(&one, "one").unwrap();
    let pid2 = container_pid(&two, "two").unwrap();
    let group1 = wait_for("pod one's second process", DEFAULT_TIMEOUT, || async {
        let members = group_members(pid1);
        (members.len() >= 2).then_some(members)
    })
    .await;

    // SIGTERM: the kubelet stops every process of every pod, then exits.
    assert!(
        k.proc.stop_within(std::time::Duration::from_secs(60)),
        "kubelet-lite did not exit on SIGTERM:\n{}",
        k.proc.log_tail(30)
    );
    for pid in group1.iter().chain([&pid2]) {
        assert!(
            !testkit::pid_alive(*pid),
            "process {pid} survived the kubelet"
        );
    }

    // While it is down, pod two is deleted (it waits, marked, for the kubelet).
    let marked = pods(&client)
        .delete("two", &DeleteOptions::default())
        .await
        .expect("delete");
    assert!(marked.is_some_and(|p| p.metadata.deletion_timestamp.is_some()));

    // Back up: pod one runs again on the same IP (restartCount 1); pod two is finished off.
    k.restart(&cp);
    let one = wait_pod(
        &client,
        "one",
        "Running again after the kubelet restart",
        |p| running_with_ip(p) && container_pid(p, "one").is_some_and(|n| n != pid1),
    )
    .await;
    assert_eq!(pod_ip(&one), ip1, "the pod IP survives a kubelet restart");
    assert_eq!(restart_count(&one, "one"), 1);
    wait_pod_gone(&client, "two").await;
    let pid1 = container_pid(&one, "one").unwrap();

    // A crash (SIGKILL) leaves the processes running; the next kubelet stops them and starts
    // the container afresh.
    let kubelet_pid = k.proc.pid().expect("kubelet pid") as i32;
    // If this test fails from here on, nobody else would stop what the dead kubelet left.
    let _guard = KillGroupOnDrop(pid1);
    k.proc.signal(Signal::SIGKILL);
    // A killed child stays a zombie until reaped; pid_alive does not count zombies.
    wait_pid_gone(kubelet_pid, "the kubelet to die").await;
    assert!(
        testkit::pid_alive(pid1),
        "the container outlives a crashed kubelet"
    );
    k.restart(&cp);
    wait_pid_gone(pid1, "the leftover container of the crashed kubelet").await;
    let one = wait_pod(&client, "one", "Running after the crash", |p| {
        running_with_ip(p) && container_pid(p, "one").is_some_and(|n| n != pid1)
    })
    .await;
    assert_eq!(pod_ip(&one), ip1);
    let pid1 = container_pid(&one, "one").unwrap();
    assert!(k.proc.stop_within(std::time::Duration::from_secs(60)));
    assert!(!testkit::pid_alive(pid1));
}

/// Kills what is left of a process group when the test ends, pass or fail.
struct KillGroupOnDrop(i32);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        if !group_members(self.0).is_empty() {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.0), Signal::SIGKILL);
        }
    }
}

/// Live processes whose process group is `pgid`.
fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let (_, rest) = s.rsplit_once(')')?;
                    rest.split_whitespace().nth(2)?.parse::<i32>().ok()
                })
                == Some(pgid)
                && testkit::pid_alive(*pid)
        })
        .collect()
}
