//! `kubectl exec` into a CRI container: the runtime's `Exec` call returns a URL on its streaming
//! server, which kubelet-lite dials as a WebSocket client speaking Kubernetes' channel
//! protocol `v4.channel.k8s.io` (what containerd 1.6's streaming server offers), relaying the
//! session's streams: stdin (channel 0) and resizes (4) to the runtime, stdout (1) and stderr
//! (2) back, and the exit status from the error channel (3).
//!
//! v4 cannot close one stream of a session, so the end of the client's stdin is not passed on
//! (a command reading stdin to its end, like `cat`, keeps waiting); v5 added that, and
//! containerd's streaming server does not speak it yet.

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::err;
use crate::runtime::{ExecIo, ExecRequest, ExecTarget};
use cri::v1;

/// The protocol spoken to the runtime's streaming server.
const PROTOCOL: &str = "v4.channel.k8s.io";

/// The exit code in an error-channel Status: `Success` → 0; a `NonZeroExitCode` failure → its
/// `ExitCode` cause; any other failure → `Err` with its message.
pub fn exit_code_of_status(bytes: &[u8]) -> Result<i32, String> {
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("invalid status from the container runtime: {e}"))?;
    if v.get("status").and_then(|s| s.as_str()) == Some("Success") {
        return Ok(0);
    }
    if v.get("reason").and_then(|s| s.as_str()) == Some("NonZeroExitCode")
        && let Some(code) = v
            .pointer("/details/causes")
            .and_then(|c| c.as_array())
            .and_then(|causes| {
                causes
                    .iter()
                    .find(|c| c.get("reason").and_then(|r| r.as_str()) == Some("ExitCode"))
            })
            .and_then(|c| c.get("message"))
            .and_then(|m| m.as_str())
            .and_then(|m| m.parse::<i32>().ok())
    {
        return Ok(code);
    }
    Err(v
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or("exec failed")
        .to_string())
}

/// Run `req` in the container through the runtime's streaming server; the command's exit code.
pub async fn exec(
    client: &cri::Client,
    target: &ExecTarget,
    req: ExecRequest,
    mut io: ExecIo,
) -> Result<i32, String> {
    let url = client
        .runtime()
        .exec(client.req(v1::ExecRequest {
            container_id: target.container_id.clone(),
            cmd: req.command.clone(),
            tty: req.tty,
            stdin: req.stdin,
            stdout: req.stdout,
            // With a TTY there is one output stream (the runtime refuses both).
            stderr: req.stderr && !req.tty,
        }))
        .await
        .map_err(err)?
        .into_inner()
        .url;
    let ws_url = match url.strip_prefix("http://") {
        Some(rest) => format!("ws://{rest}"),
        None => match url.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => url,
        },
    };
    let mut request = ws_url
        .into_client_request()
        .map_err(|e| format!("invalid streaming URL from the runtime: {e}"))?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(PROTOCOL));
    let (ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| format!("cannot reach the runtime's streaming server: {e}"))?;
    let (mut sink, mut stream) = ws.split();
    let mut stdin_open = req.stdin;
    let mut resize_open = true;
    let mut exit: Option<Result<i32, String>> = None;
    loop {
        tokio::select! {
            msg = stream.next() => {
                let data = match msg {
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "exec stream from the runtime ended");
                        break;
                    }
                };
                let Some((&channel, payload)) = data.split_first() else { continue };
                tracing::debug!(channel, len = payload.len(), "exec: frame from the runtime");
                let payload = bytes::Bytes::copy_from_slice(payload);
                match channel {
                    1 => { let _ = io.stdout.send(payload).await; }
                    2 => { let _ = io.stderr.send(payload).await; }
                    3 if !payload.is_empty() => exit = Some(exit_code_of_status(&payload)),
                    _ => {}
                }
            }
            data = io.stdin.recv(), if stdin_open => match data {
                Some(d) => {
                    let mut frame = Vec::with_capacity(d.len() + 1);
                    frame.push(0u8);
                    frame.extend_from_slice(&d);
                    if sink.send(Message::Binary(frame.into())).await.is_err() {
                        break;
                    }
                }
                None => stdin_open = false,
            },
            size = io.resize.recv(), if resize_open => match size {
                Some(s) => {
                    let mut frame = vec![4u8];
                    frame.extend_from_slice(
                        format!("{{\"Width\":{},\"Height\":{}}}", s.width, s.height).as_bytes(),
                    );
                    if sink.send(Message::Binary(frame.into())).await.is_err() {
                        break;
                    }
                }
                None => resize_open = false,
            },
        }
    }
    let _ = sink.close().await;
    exit.unwrap_or(Ok(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_from_status() {
        assert_eq!(exit_code_of_status(br#"{"status":"Success"}"#), Ok(0));
        let s = br#"{"status":"Failure","reason":"NonZeroExitCode","message":"command terminated with non-zero exit code","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        assert_eq!(exit_code_of_status(s), Ok(3));
        let s = br#"{"status":"Failure","message":"executable file not found"}"#;
        assert_eq!(
            exit_code_of_status(s),
            Err("executable file not found".into())
        );
        assert!(exit_code_of_status(b"\xff not json").is_err());
    }
}
