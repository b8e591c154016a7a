//! `kubectl-lite port-forward` against a whole cluster (`kube-lite up`, pods as processes):
//! four connections at once through one forward, each sending 1 MiB to an echo server in the
//! pod and closing its side — the pod's answers come back whole and in order, and each
//! connection ends when the pod closes (half-close both ways, over SPDY in a WebSocket through
//! the API server and the kubelet); Ctrl-C stops it with exit code 0.

use std::io::{BufRead, BufReader};

use testkit::{DEFAULT_TIMEOUT, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ECHO: &str = r#"
import os, socket, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((os.environ["POD_IP"], 7000))
s.listen(16)
def serve(c):
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_carries_whole_streams_both_ways() {
    let dir = tempfile::tempdir().expect("tempdir");
    let up = testkit::up::KubeLiteUp::start(dir.path(), 1, &[]).await;
    let server = up.server.clone();
    let manifest = dir.path().join("echo.yaml");
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "echo"},
        "spec": {"containers": [{"name": "echo", "image": "python:3",
            "command": ["python3", "-c", ECHO],
            "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
            "ports": [{"containerPort": 7000}]}]}
    });
    std::fs::write(&manifest, pod.to_string()).expect("manifest");
    let kubectl = |args: &[&str]| {
        let mut all = vec!["--server", &server];
        all.extend_from_slice(args);
        testkit::run_cli("kubectl-lite", &all, &[], None)
    };
    let (code, out, err) = kubectl(&["apply", "-f", &manifest.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    wait_for("the echo pod Running", DEFAULT_TIMEOUT, || async {
        let (code, out, _) = kubectl(&["get", "pod", "echo"]);
        (code == 0 && out.contains("Running")).then_some(())
    })
    .await;

    let mut pf = std::process::Command::new(testkit::bin("kubectl-lite"))
        .args(["--server", &server, "port-forward", "pod/echo", ":7000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("spawn port-forward");
    let stdout = pf.stdout.take().expect("stdout");
    let (line_tx, mut line_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = line_tx.send(line);
        }
    });
    let first = tokio::time::timeout(DEFAULT_TIMEOUT, line_rx.recv())
        .await
        .expect("a Forwarding line in time")
        .expect("a Forwarding line");
    let local: u16 = first
        .strip_prefix("Forwarding from 127.0.0.1:")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {first}"));
    assert!(first.ends_with("-> 7000"), "{first}");

    // The echo server may still be starting: wait until one connection echoes.
    wait_for(
        "the echo server through the forward",
        DEFAULT_TIMEOUT,
        || async {
            let mut c = tokio::net::TcpStream::connect(("127.0.0.1", local))
                .await
                .ok()?;
            c.write_all(b"ping").await.ok()?;
            c.shutdown().await.ok()?;
            let mut back = Vec::new();
            tokio::time::timeout(std::time::Duration::from_secs(5), c.read_to_end(&mut back))
                .await
                .ok()?
                .ok()?;
            (back == b"ping").then_some(())
        },
    )
    .await;

    let conns = (0..4u8).map(|n| {
        tokio::spawn(async move {
            let sent: Vec<u8> = (0..(1usize << 20))
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(n))
                .collect();
            let c = tokio::net::TcpStream::connect(("127.0.0.1", local))
                .await
                .expect("connect");
            let (mut rd, mut wr) = c.into_split();
            let to_send = sent.clone();
            let writer = tokio::spawn(async move {
                wr.write_all(&to_send).await.expect("send");
                wr.shutdown().await.expect("close our side");
            });
            let mut back = Vec::new();
            tokio::time::timeout(DEFAULT_TIMEOUT, rd.read_to_end(&mut back))
                .await
                .expect("the pod's answer in time")
                .expect("read");
            writer.await.expect("writer");
            assert_eq!(back.len(), sent.len(), "connection {n}: length");
            assert!(back == sent, "connection {n}: the bytes differ");
        })
    });
    for c in conns {
        c.await.expect("a connection");
    }

    // Ctrl-C: stops, exit code 0.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pf.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    let deadline = tokio::time::Instant::now() + DEFAULT_TIMEOUT;
    let status = loop {
        if let Some(st) = pf.try_wait().expect("wait") {
            break st;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "port-forward did not stop on SIGINT"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
}
