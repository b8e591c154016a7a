//! A multi-member kvstore cluster of real `kvstore` processes on free loopback ports, for fault
//! tests: kill -9, pause (SIGSTOP) and resume, restart on the same data, and members that
//! join later with `--initial-cluster-state existing`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kvclient::KvClient;
use kvclient::proto::StatusResponse;
use nix::sys::signal::Signal;

use crate::{Proc, free_port, wait_for};

/// One member: its name, URLs and data directory, and its process while it runs.
pub struct KvMember {
    pub name: String,
    pub client_url: String,
    pub peer_url: String,
    pub data_dir: PathBuf,
    pub proc: Option<Proc>,
    /// The `--initial-cluster` it was (or will be) started with.
    pub initial_cluster: String,
    /// Whether it joins a running cluster (`--initial-cluster-state existing`).
    pub existing: bool,
}

/// A cluster whose members run as separate processes; every process is stopped on drop.
pub struct KvCluster {
    pub dir: tempfile::TempDir,
    pub members: Vec<KvMember>,
    envs: Vec<(String, String)>,
}

impl KvCluster {
    /// Start `n` members named `n1`…`nN` and wait until they agree on a leader.
    pub async fn start(n: usize) -> KvCluster {
        Self::start_with_env(n, &[]).await
    }

    /// [`KvCluster::start`] with extra environment variables for every member (e.g.
    /// `KVSTORE_SNAPSHOT_LOGS`).
    pub async fn start_with_env(n: usize, envs: &[(&str, &str)]) -> KvCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut members: Vec<KvMember> = (1..=n)
            .map(|i| new_member(dir.path(), &format!("n{i}")))
            .collect();
        let initial = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect::<Vec<_>>()
            .join(",");
        for m in &mut members {
            m.initial_cluster = initial.clone();
        }
        let mut c = KvCluster {
            dir,
            members,
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        for i in 0..n {
            c.start_member(i);
        }
        c.wait_leader(crate::DEFAULT_TIMEOUT).await;
        c
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// A client over every member's endpoint.
    pub fn client(&self) -> KvClient {
        KvClient::new(self.endpoints()).expect("kv client")
    }

    /// A client for member `i` alone, failing fast.
    pub fn member_client(&self, i: usize) -> KvClient {
        KvClient::new(vec![self.members[i].client_url.clone()])
            .expect("kv client")
            .with_retry_for(Duration::from_millis(300))
            .with_attempt_timeout(Duration::from_secs(3))
    }

    /// (Re)start member `i` on its data directory.
    pub fn start_member(&mut self, i: usize) {
        let m = &self.members[i];
        let mut args = vec![
            "--name".to_string(),
            m.name.clone(),
            "--data-dir".into(),
            m.data_dir.display().to_string(),
            "--listen-client-urls".into(),
            m.client_url.clone(),
            "--listen-peer-urls".into(),
            m.peer_url.clone(),
            "--initial-cluster".into(),
            m.initial_cluster.clone(),
        ];
        if m.existing {
            args.extend(["--initial-cluster-state".into(), "existing".into()]);
        }
        let envs: Vec<(&str, &str)> = self
            .envs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let p = Proc::start("kvstore", &m.name, &args, self.dir.path(), &envs);
        self.members[i].proc = Some(p);
    }

    /// Describe a new member `name` (not started): its `--initial-cluster` lists every current
    /// member and itself, and it joins with `--initial-cluster-state existing`. Returns its index.
    pub fn add_member(&mut self, name: &str) -> usize {
        let mut m = new_member(self.dir.path(), name);
        let mut all: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect();
        all.push(format!("{}={}", m.name, m.peer_url));
        m.initial_cluster = all.join(",");
        m.existing = true;
        self.members.push(m);
        self.members.len() - 1
    }

    /// SIGKILL member `i` (a crash) and reap it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.members[i].proc.take() {
            p.kill();
        }
    }

    /// SIGTERM member `i` and wait for it to exit.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut p) = self.members[i].proc.take() {
            p.stop();
        }
    }

    /// SIGSTOP member `i` (it stays connected but answers nothing).
    pub fn pause(&self, i: usize) {
        if let Some(p) = &self.members[i].proc {
            p.signal(Signal::SIGSTOP);
        }
    }

    /// SIGCONT member `i`.
    pub fn resume(&self, i: usize) {
        if let Some(p) = &self.members[i].proc {
            p.signal(Signal::SIGCONT);
        }
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].proc.is_some()
    }

    /// Member `i`'s status, if it answers within a second or two.
    pub async fn status(&self, i: usize) -> Option<StatusResponse> {
        if !self.is_running(i) {
            return None;
        }
        let c = KvClient::new(vec![self.members[i].client_url.clone()])
            .ok()?
            .with_retry_for(Duration::from_millis(100))
            .with_attempt_timeout(Duration::from_secs(2));
        c.status().await.ok()
    }

    /// Wait until every running member (except `except`) names the same leader, which is one
    /// of them; returns the leader's index.
    pub async fn wait_leader_except(&self, except: &[usize], timeout: Duration) -> usize {
        wait_for(
            "the running members to agree on a leader",
            timeout,
            || async {
                let mut leader = None;
                for i in 0..self.members.len() {
                    if except.contains(&i) || !self.is_running(i) {
                        continue;
                    }
                    let st = self.status(i).await?;
                    if st.leader == 0 || leader.is_some_and(|l| l != st.leader) {
                        return None;
                    }
                    leader = Some(st.leader);
                }
                let leader = leader?;
                (0..self.members.len()).find(|&i| {
                    !except.contains(&i)
                        && self.is_running(i)
                        && member_id(&self.members[i].name) == leader
                })
            },
        )
        .await
    }

    /// [`KvCluster::wait_leader_except`] over every running member.
    pub async fn wait_leader(&self, timeout: Duration) -> usize {
        self.wait_leader_except(&[], timeout).await
    }

    /// Wait until member `i` has applied at least `index`.
    pub async fn wait_applied(&self, i: usize, index: u64, timeout: Duration) {
        let what = format!("{} to apply index {index}", self.members[i].name);
        wait_for(&what, timeout, || async {
            let st = self.status(i).await?;
            (st.raft_applied_index >= index).then_some(())
        })
        .await
    }

    /// A member's log so far (for assertion messages).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(
            self.dir
                .path()
                .join(format!("{}.log", self.members[i].name)),
        )
        .unwrap_or_default()
    }

    /// The last lines of every member's log.
    pub fn logs_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        for (i, m) in self.members.iter().enumerate() {
            let log = self.log(i);
            let all: Vec<&str> = log.lines().collect();
            out.push_str(&format!("----- {} -----\n", m.name));
            out.push_str(&all[all.len().saturating_sub(lines)..].join("\n"));
            out.push('\n');
        }
        out
    }
}

impl Drop for KvCluster {
    fn drop(&mut self) {
        // Paused members ignore SIGTERM until resumed.
        for i in 0..self.members.len() {
            self.resume(i);
        }
        for m in &mut self.members {
            if let Some(mut p) = m.proc.take() {
                p.stop_within(Duration::from_secs(5));
            }
        }
    }
}

/// A member's id as the kvstore derives it from its name (FNV-1a, never 0).
pub fn member_id(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.max(1)
}

fn new_member(dir: &Path, name: &str) -> KvMember {
    KvMember {
        name: name.to_string(),
        client_url: format!("http://127.0.0.1:{}", free_port()),
        peer_url: format!("http://127.0.0.1:{}", free_port()),
        data_dir: dir.join(name),
        proc: None,
        initial_cluster: String::new(),
        existing: false,
    }
}
