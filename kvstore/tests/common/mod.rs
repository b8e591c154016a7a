//! Test helpers: an in-process member on free loopback ports, and waiting with deadlines.

#![allow(dead_code)]

use std::future::Future;
use std::net::TcpListener;
use std::time::Duration;

use kvclient::KvClient;
use tokio_util::sync::CancellationToken;

/// A member running inside the test process (`kvstore::run` on port-0 listeners).
pub struct Member {
    pub url: String,
    pub client: KvClient,
    pub token: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub dir: tempfile::TempDir,
}

impl Member {
    pub async fn start() -> Member {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir).await
    }

    pub async fn start_in(dir: tempfile::TempDir) -> Member {
        let client_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", client_listener.local_addr().unwrap());
        let peer = format!("http://{}", peer_listener.local_addr().unwrap());
        let config = kvstore::Config {
            name: "m1".into(),
            data_dir: dir.path().join("data"),
            client_listener,
            peer_listener,
            advertise_client_url: url.clone(),
            advertise_peer_url: peer.clone(),
            initial_cluster: vec![("m1".into(), peer)],
        };
        let token = CancellationToken::new();
        let task = tokio::spawn(kvstore::run(config, token.clone()));
        let client = KvClient::new(vec![url.clone()]).unwrap();
        wait_healthy(&url, Duration::from_secs(20)).await;
        Member {
            url,
            client,
            token,
            task,
            dir,
        }
    }

    /// Stop cleanly and hand back the data directory.
    pub async fn stop(self) -> tempfile::TempDir {
        self.token.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("member stops in time")
            .expect("member task")
            .expect("member run");
        self.dir
    }
}

/// Poll `GET /health` until it answers `{"health":"true"}`, or panic at the deadline.
pub async fn wait_healthy(url: &str, within: Duration) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    eventually(within, || async {
        match http.get(format!("{url}/health")).send().await {
            Ok(r) if r.status().is_success() => r
                .text()
                .await
                .map(|t| t.contains("\"true\""))
                .unwrap_or(false),
            _ => false,
        }
    })
    .await
    .unwrap_or_else(|| panic!("{url} did not become healthy within {within:?}"));
}

/// Poll `check` every 20 ms until it holds; `None` if the deadline passed first.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> Option<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return Some(());
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
