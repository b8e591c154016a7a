//! `kube-lite up` as a separate process for whole-cluster tests: its data dir under the test's
//! temporary directory, a free API port, and a wait until its nodes are Ready.

use std::path::{Path, PathBuf};

use client::{Api, ListParams};

use crate::{DEFAULT_TIMEOUT, Proc, free_port, wait_for};

pub struct KubeLiteUp {
    pub proc: Proc,
    /// `http://127.0.0.1:<port>`.
    pub server: String,
    /// The cluster's data dir (`--data-dir`), where `kubeconfig` is written.
    pub data: PathBuf,
}

impl KubeLiteUp {
    /// Start `kube-lite up --nodes <nodes>` with `extra` flags (e.g. `--runtime cri`), its data
    /// under `dir`, and wait until every node is Ready.
    pub async fn start(dir: &Path, nodes: usize, extra: &[&str]) -> KubeLiteUp {
        let data = dir.join("cluster");
        let port = free_port();
        let mut args: Vec<String> = vec![
            "up".into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--api-port".into(),
            port.to_string(),
            "--nodes".into(),
            nodes.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let proc = Proc::start("kube-lite", "kube-lite-up", &args, dir, &[]);
        let server = format!("http://127.0.0.1:{port}");
        let client = client::Client::new(&server, "test").expect("client");
        let api: Api<api::Node> = Api::all(client);
        wait_for(
            &format!("{nodes} Ready node(s)"),
            DEFAULT_TIMEOUT,
            || async {
                let l = api.list(&ListParams::default()).await.ok()?;
                (l.items.iter().filter(|n| n.is_ready()).count() == nodes).then_some(())
            },
        )
        .await;
        KubeLiteUp { proc, server, data }
    }

    /// The kubeconfig `kube-lite up` wrote.
    pub fn kubeconfig(&self) -> String {
        self.data.join("kubeconfig").display().to_string()
    }

    pub fn client(&self) -> client::Client {
        client::Client::new(&self.server, "test").expect("client")
    }
}
