//! The kubelet's own lifecycle: SIGTERM stops every pod process; a restarted kubelet runs its
//! pods again on the same pod IPs and finishes deletions that happened while it was down; after
//! a crash (SIGKILL) the next kubelet re-adopts the containers its shims kept running, reports
//! exits that happened meanwhile, and stops containers of pods that are gone.

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

    // A crash (SIGKILL) leaves the containers running under their shims, and the next kubelet
    // re-adopts them: the same processes, restart counts and logs, nothing started twice.
    // Meanwhile one container exits (its shim keeps the status for the next kubelet) and one
    // pod is force-deleted (the next kubelet stops what it left).
    create_pod(
        &client,
        "node-e",
        sh_pod(
            "counter",
            "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done",
        ),
    )
    .await;
    create_pod(
        &client,
        "node-e",
        sh_pod(
            "exits",
            "while [ ! -f \"$HOME/stop\" ]; do sleep 0.05; done; exit 7",
        ),
    )
    .await;
    create_pod(&client, "node-e", sh_pod("forgotten", "exec sleep 3600")).await;
    let counter = wait_pod(&client, "counter", "Running", running_with_ip).await;
    let exits = wait_pod(&client, "exits", "Running", running_with_ip).await;
    let forgotten = wait_pod(&client, "forgotten", "Running", running_with_ip).await;
    let pid_counter = container_pid(&counter, "counter").unwrap();
    let pid_exits = container_pid(&exits, "exits").unwrap();
    let pid_forgotten = container_pid(&forgotten, "forgotten").unwrap();
    // If this test fails from here on, nobody else would stop what the dead kubelet left.
    let _guards = [pid1, pid_counter, pid_exits, pid_forgotten].map(KillGroupOnDrop);
    let group1 = group_members(pid1);
    let log_url = k.url("/containerLogs/default/counter/counter");
    wait_body(&log_url, "the counter's log", |b| b.contains("line 3\n")).await;

    let kubelet_pid = k.proc.pid().expect("kubelet pid") as i32;
    k.proc.signal(Signal::SIGKILL);
    // A killed child stays a zombie until reaped; pid_alive does not count zombies.
    wait_pid_gone(kubelet_pid, "the kubelet to die").await;
    for pid in [pid1, pid_counter, pid_exits, pid_forgotten] {
        assert!(
            testkit::pid_alive(pid),
            "container {pid} outlives a crashed kubelet"
        );
    }
    let lines_at_crash = count_lines(&k.root, &counter);
    let stop = k.root.join("pods").join(&exits.metadata.uid).join("stop");
    std::fs::write(&stop, "").expect("touch stop");
    wait_pid_gone(pid_exits, "the container that exits while no kubelet runs").await;
    // The next run is to keep running.
    std::fs::remove_file(&stop).expect("rm stop");
    // Its shim kept writing the log while no kubelet ran.
    wait_for(
        "the counter's log to grow without a kubelet",
        DEFAULT_TIMEOUT,
        || async { (count_lines(&k.root, &counter) > lines_at_crash + 3).then_some(()) },
    )
    .await;
    pods(&client)
        .delete(
            "forgotten",
            &DeleteOptions {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .await
        .expect("force delete");
    wait_pod_gone(&client, "forgotten").await;

    k.restart(&cp);
    // The exit that happened while no kubelet ran is reported as it was, then restarted.
    let exits = wait_pod(&client, "exits", "restarted after exiting with 7", |p| {
        container_pid(p, "exits").is_some()
            && restart_count(p, "exits") == 1
            && container_status(p, "exits")
                .and_then(|s| s.last_state.terminated.as_ref())
                .is_some_and(|t| t.exit_code == 7 && t.reason == "Error")
    })
    .await;
    assert_ne!(container_pid(&exits, "exits"), Some(pid_exits));
    wait_pid_gone(pid_forgotten, "the container of the force-deleted pod").await;
    // Served again, and still growing: the new kubelet follows the shim's log.
    let before = wait_body(&log_url, "the counter's log after the restart", |b| {
        b.contains("line 3\n")
    })
    .await;
    let last = |b: &str| b.lines().filter(|l| l.starts_with("line ")).count();
    wait_body(&log_url, "the counter's log to grow", |b| {
        last(b) > last(&before)
    })
    .await;
    let one = pods(&client).get("one").await.expect("pod one");
    let counter = pods(&client).get("counter").await.expect("pod counter");
    assert_eq!(container_pid(&one, "one"), Some(pid1), "pod one re-adopted");
    assert_eq!(restart_count(&one, "one"), 1, "no restart counted");
    assert_eq!(container_pid(&counter, "counter"), Some(pid_counter));
    assert_eq!(restart_count(&counter, "counter"), 0);
    assert_eq!(
        group_members(pid1),
        group1,
        "nothing of pod one was started twice"
    );
    assert!(testkit::pid_alive(pid_counter));

    // A re-adopted container stops like any other when its pod is deleted.
    pods(&client)
        .delete("counter", &DeleteOptions::default())
        .await
        .expect("delete counter");
    wait_pod_gone(&client, "counter").await;
    assert!(!testkit::pid_alive(pid_counter));

    let pid_exits = container_pid(&exits, "exits").unwrap();
    assert!(k.proc.stop_within(std::time::Duration::from_secs(60)));
    for pid in [pid1, pid_exits] {
        assert!(
            !testkit::pid_alive(pid),
            "process {pid} survived the kubelet"
        );
    }
    assert_eq!(
        shims_under(&k.root),
        Vec::<i32>::new(),
        "shims left running"
    );
}

/// Lines the counter's current log file holds.
fn count_lines(root: &std::path::Path, pod: &api::Pod) -> usize {
    let path = root
        .join("pods")
        .join(&pod.metadata.uid)
        .join("logs/counter/0.log");
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

/// Live container-shim processes of the kubelet rooted at `root`.
fn shims_under(root: &std::path::Path) -> Vec<i32> {
    let needle = root.join("shims").display().to_string();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("container-shim") && c.contains(&needle)
            }) && testkit::pid_alive(*pid)
        })
        .collect()
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
