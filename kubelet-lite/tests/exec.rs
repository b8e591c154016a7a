//! `kubectl exec` at the kubelet, end to end: a kubelet-lite process (process runtime) against a
//! real control plane, and a WebSocket client speaking Kubernetes' channel protocols to its
//! `/exec/{namespace}/{pod}/{container}` endpoint — output on separate channels, exit codes,
//! stdin to EOF, a TTY, the container's environment, and the errors before any upgrade.

mod common;

use api::remotecommand::{Finished, TerminalSize};
use common::*;
use serde_json::json;
use testkit::ControlPlane;

fn exec_url(k: &Kubelet, container: &str, command: &[&str], query: &str) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for c in command {
        q.append_pair("command", c);
    }
    format!(
        "ws://127.0.0.1:{}/exec/default/box/{container}?{}&{query}",
        k.port,
        q.finish()
    )
}

const BOTH: &str = "v5.channel.k8s.io, v4.channel.k8s.io";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_commands_in_a_running_container() {
    let cp = ControlPlane::start().await;
    let k = start_kubelet(&cp, "node-x", 61, &[]);
    let client = cp.client();
    let mut pod = sh_pod("box", "echo ready; exec sleep 3600");
    pod["spec"]["containers"][0]["env"] = json!([{"name": "GREETING", "value": "héllo wörld"}]);
    create_pod(&client, "node-x", pod).await;
    wait_pod(&client, "box", "Running", |p| p.phase() == "Running").await;
    // The registry is published with the status: wait until exec finds the container running.
    let out = testkit::wait_for(
        "exec to reach the container",
        testkit::DEFAULT_TIMEOUT,
        || {
            let url = exec_url(&k, "box", &["true"], "output=1");
            async move { exec(&url, BOTH, Input::default()).await.ok() }
        },
    )
    .await;
    assert_eq!(out.finished, Some(Finished::Exit(0)));

    // stdout and stderr apart, and the exit code.
    let url = exec_url(
        &k,
        "box",
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        "output=1&error=1",
    );
    let s = exec(&url, BOTH, Input::default()).await.unwrap();
    assert_eq!((s.stdout.as_str(), s.stderr.as_str()), ("out\n", "err\n"));
    assert_eq!(s.finished, Some(Finished::Exit(3)));

    // stdin to EOF: cat echoes it and exits.
    let url = exec_url(&k, "box", &["cat"], "input=1&output=1&error=1");
    let s = exec(
        &url,
        BOTH,
        Input {
            stdin: Some(b"piped in\n"),
            close_stdin: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(s.stdout, "piped in\n");
    assert_eq!(s.finished, Some(Finished::Exit(0)));

    // The container's environment (multi-byte text intact), in its working directory.
    let url = exec_url(
        &k,
        "box",
        &["sh", "-c", "echo \"$GREETING\"; echo \"$HOSTNAME\"; pwd"],
        "stdout=true&stderr=true",
    );
    let s = exec(&url, BOTH, Input::default()).await.unwrap();
    let lines: Vec<&str> = s.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"héllo wörld"), "{s:?}");
    assert_eq!(lines.get(1), Some(&"box"));
    assert!(lines.get(2).is_some_and(|d| d.contains("/pods/")), "{s:?}");

    // A terminal: `tty` names a pseudo-terminal, its size is the client's.
    let url = exec_url(
        &k,
        "box",
        &["sh", "-c", "tty; read x; stty size"],
        "input=1&output=1&tty=1",
    );
    let s = exec(
        &url,
        BOTH,
        Input {
            resize: Some(TerminalSize {
                width: 120,
                height: 40,
            }),
            stdin: Some(b"go\n"),
            close_stdin: true,
        },
    )
    .await
    .unwrap();
    assert!(s.stdout.contains("/dev/pts/"), "{s:?}");
    assert!(s.stdout.contains("40 120"), "{s:?}");
    assert_eq!(s.finished, Some(Finished::Exit(0)));

    // The older protocol works as well (no close signal: stdin just is not asked for).
    let url = exec_url(&k, "box", &["sh", "-c", "exit 7"], "output=1");
    let s = exec(&url, "v4.channel.k8s.io", Input::default())
        .await
        .unwrap();
    assert_eq!(s.finished, Some(Finished::Exit(7)));

    // A command that cannot start is an error on the error channel, as runc words it.
    let url = exec_url(&k, "box", &["no-such-command-kl"], "output=1");
    let s = exec(&url, BOTH, Input::default()).await.unwrap();
    match s.finished {
        Some(Finished::Error(m)) => assert!(
            m.contains("exec: \"no-such-command-kl\": executable file not found in $PATH"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }

    // Errors come before the upgrade, as text.
    let url = exec_url(&k, "nope", &["true"], "output=1");
    let (code, body) = exec(&url, BOTH, Input::default()).await.unwrap_err();
    assert_eq!(code, 404);
    assert!(
        body.contains("container \"nope\" not found in pod default/box"),
        "{body}"
    );
    let url =
        exec_url(&k, "box", &["true"], "output=1").replace("/default/box/", "/default/ghost/");
    let (code, body) = exec(&url, BOTH, Input::default()).await.unwrap_err();
    assert_eq!(code, 404);
    assert!(body.contains("pod default/ghost not found"), "{body}");
    let url = exec_url(&k, "box", &["true"], "output=1");
    let (code, body) = exec(&url, "v3.channel.k8s.io", Input::default())
        .await
        .unwrap_err();
    assert_eq!(code, 400);
    assert!(body.contains("not supported"), "{body}");
    let url = exec_url(&k, "box", &["true"], "tty=0");
    let (code, body) = exec(&url, BOTH, Input::default()).await.unwrap_err();
    assert_eq!(code, 400);
    assert!(
        body.contains("you must specify at least 1 of stdin, stdout, stderr"),
        "{body}"
    );
    // A plain request (no upgrade) is told what it needs.
    let plain = exec_url(&k, "box", &["true"], "output=1").replace("ws://", "http://");
    let (code, body) = get(&plain).await.unwrap();
    assert_eq!(code, 400);
    assert!(body.contains("Upgrade request required"), "{body}");
}
