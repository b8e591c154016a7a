//! The client side of `pods/NAME/exec` (client-go's `tools/remotecommand`): a WebSocket to the
//! API server speaking `v5.channel.k8s.io` (or `v4.channel.k8s.io`), with the local stdin,
//! stdout, stderr and terminal size on their channels ([`api::remotecommand`] frames them).
//!
//! The session ends when the server closes the connection; the error channel then says how the
//! command ended ([`Finished`]). Memory stays bounded: stdin is read in 32 KiB pieces through a
//! small channel, output is written as it arrives (a slow terminal slows the server down), and
//! the error channel is capped.

use std::io::Read;

use api::Status;
use api::remotecommand::{self as rc, Finished, Protocol, TerminalSize};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::errors::{Error, Result};

/// The most of the error channel that is kept (a status is a few hundred bytes).
const MAX_ERROR_BYTES: usize = 64 * 1024;
/// Stdin is read and sent in pieces of at most this size.
const STDIN_CHUNK: usize = 32 * 1024;

/// Where the session's streams go.
pub struct Streams<O, E> {
    /// Read on a thread of its own (a blocking read cannot be cancelled); `None`: no stdin.
    pub stdin: Option<Box<dyn Read + Send>>,
    pub stdout: Option<O>,
    /// `None` with a TTY (the server merges stderr into stdout).
    pub stderr: Option<E>,
    /// Terminal sizes to send (a TTY session), the current size first.
    pub resize: Option<mpsc::Receiver<TerminalSize>>,
}

/// The `ws://` URL of an API path on `server` (`http://host:port`).
pub fn websocket_url(server: &str, path_and_query: &str) -> Result<String> {
    let base = server.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        return Err(Error::msg(format!(
            "cannot stream to server {server:?}: not an http(s) URL"
        )));
    };
    Ok(format!("{ws}{path_and_query}"))
}

/// What a refused handshake means: the server's `Status` when it sent one.
pub(crate) fn handshake_error(e: WsError, host: &str) -> Error {
    match e {
        WsError::Http(resp) => {
            let body = resp.body().as_deref().unwrap_or_default();
            match serde_json::from_slice::<Status>(body) {
                Ok(s) if s.kind == "Status" => Error::Api(Box::new(s)),
                _ => Error::msg(format!(
                    "unable to upgrade connection: {}",
                    String::from_utf8_lossy(body).trim()
                )),
            }
        }
        WsError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            Error::ConnectionRefused {
                host: host.to_string(),
            }
        }
        other => Error::Unreachable(other.to_string()),
    }
}

/// Run one session: connect to `url` (from [`websocket_url`]), stream until the server closes,
/// and say how the command ended.
pub async fn stream<O, E>(url: &str, user_agent: &str, streams: Streams<O, E>) -> Result<Finished>
where
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    let mut req = url
        .into_client_request()
        .map_err(|e| Error::msg(format!("invalid exec URL {url:?}: {e}")))?;
    let offered = Protocol::SUPPORTED
        .iter()
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(", ");
    let h = req.headers_mut();
    h.insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_str(&offered).map_err(|e| Error::msg(e.to_string()))?,
    );
    if let Ok(v) = HeaderValue::from_str(user_agent) {
        h.insert("User-Agent", v);
    }
    let host = req
        .uri()
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let config = WebSocketConfig::default()
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20));
    let (ws, resp) = tokio_tungstenite::connect_async_with_config(req, Some(config), true)
        .await
        .map_err(|e| handshake_error(e, &host))?;
    let protocol = resp
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .and_then(Protocol::from_name)
        .ok_or_else(|| {
            Error::msg("unable to upgrade connection: the server chose no streaming protocol")
        })?;
    let (mut sink, mut source) = ws.split();
    let Streams {
        stdin,
        mut stdout,
        mut stderr,
        resize,
    } = streams;

    // Stdin on a thread: its pieces come through a small channel (backpressure), `None` at EOF.
    let (stdin_tx, mut stdin_rx) = mpsc::channel::<Bytes>(4);
    let reading_stdin = stdin.is_some();
    if let Some(mut input) = stdin {
        std::thread::spawn(move || {
            let mut buf = vec![0u8; STDIN_CHUNK];
            loop {
                match input.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let chunk = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                        if stdin_tx.blocking_send(chunk).is_err() {
                            break;
                        }
                    }
                }
            }
        });
    } else {
        drop(stdin_tx);
    }
    let mut resize = resize;

    let send_loop = async {
        let mut stdin_open = reading_stdin;
        loop {
            let msg = tokio::select! {
                chunk = stdin_rx.recv(), if stdin_open => match chunk {
                    Some(b) => rc::frame(rc::STDIN, &b),
                    None => {
                        stdin_open = false;
                        // v5: tell the server the input ended (v4 cannot say it).
                        if !protocol.supports_close() {
                            continue;
                        }
                        rc::close_frame(rc::STDIN)
                    }
                },
                size = async {
                    match resize.as_mut() {
                        Some(r) => r.recv().await,
                        None => std::future::pending().await,
                    }
                } => match size {
                    Some(s) => rc::resize_frame(s),
                    None => { resize = None; continue; }
                },
                else => break,
            };
            if sink.send(Message::Binary(Bytes::from(msg))).await.is_err() {
                break;
            }
        }
        // Nothing more to send; keep the sink alive until the reader is done.
        std::future::pending::<std::convert::Infallible>().await
    };

    let receive_loop = async {
        let mut error = Vec::new();
        while let Some(msg) = source.next().await {
            let data = match msg {
                Ok(Message::Binary(b)) => b,
                Ok(Message::Close(_)) => break,
                Ok(_) => continue,
                Err(e) => {
                    return Err(Error::Unreachable(format!(
                        "error reading the exec stream: {e}"
                    )));
                }
            };
            let Some((&channel, payload)) = data.split_first() else {
                continue;
            };
            let out_err = |e: std::io::Error| Error::msg(format!("cannot write the output: {e}"));
            match channel {
                rc::STDOUT => {
                    if let Some(o) = stdout.as_mut() {
                        o.write_all(payload).await.map_err(out_err)?;
                        o.flush().await.map_err(out_err)?;
                    }
                }
                rc::STDERR => {
                    if let Some(e) = stderr.as_mut() {
                        e.write_all(payload).await.map_err(out_err)?;
                        e.flush().await.map_err(out_err)?;
                    }
                }
                rc::ERROR => {
                    let room = MAX_ERROR_BYTES.saturating_sub(error.len());
                    error.extend_from_slice(
                        payload.get(..room.min(payload.len())).unwrap_or_default(),
                    );
                }
                _ => {}
            }
        }
        Ok(error)
    };

    let error = tokio::select! {
        r = receive_loop => r?,
        never = send_loop => match never {},
    };
    // No status is success (client-go reads an empty error stream as no error).
    Ok(if error.is_empty() {
        Finished::Exit(0)
    } else {
        rc::decode_status(&error)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_urls() {
        assert_eq!(
            websocket_url("http://127.0.0.1:8080/", "/api/v1/x?command=ls").unwrap(),
            "ws://127.0.0.1:8080/api/v1/x?command=ls"
        );
        assert_eq!(
            websocket_url("https://k:6443", "/p").unwrap(),
            "wss://k:6443/p"
        );
        assert!(websocket_url("unix:///x", "/p").is_err());
    }

    #[test]
    fn refused_handshakes_carry_the_servers_status() {
        let resp = |code: u16, body: &str| {
            let mut r =
                tokio_tungstenite::tungstenite::http::Response::new(Some(body.as_bytes().to_vec()));
            *r.status_mut() =
                tokio_tungstenite::tungstenite::http::StatusCode::from_u16(code).unwrap();
            WsError::Http(Box::new(r))
        };
        let e = handshake_error(
            resp(
                400,
                r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pod x does not have a host assigned","reason":"BadRequest","code":400}"#,
            ),
            "h:1",
        );
        assert_eq!(e.to_string(), "pod x does not have a host assigned");
        assert!(matches!(e, Error::Api(_)));
        let e = handshake_error(resp(502, "bad gateway ✗"), "h:1");
        assert_eq!(e.to_string(), "unable to upgrade connection: bad gateway ✗");
        let e = handshake_error(
            WsError::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            "h:1",
        );
        assert!(matches!(e, Error::ConnectionRefused { .. }));
    }

    /// A one-connection exec server: it echoes stdin on stdout until the v5 close signal,
    /// sends hostile extras, then `status` (if any) and closes.
    #[allow(clippy::result_large_err)] // tungstenite's handshake callback returns a response
    async fn serve_once(status: Option<Vec<u8>>) -> String {
        use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let pick = |req: &Request, mut resp: Response| {
                let offered = req
                    .headers()
                    .get("Sec-WebSocket-Protocol")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                assert_eq!(offered, "v5.channel.k8s.io, v4.channel.k8s.io");
                resp.headers_mut().insert(
                    "Sec-WebSocket-Protocol",
                    HeaderValue::from_static("v5.channel.k8s.io"),
                );
                Ok(resp)
            };
            let mut ws = tokio_tungstenite::accept_hdr_async(tcp, pick)
                .await
                .unwrap();
            let bin = |v: Vec<u8>| Message::Binary(Bytes::from(v));
            ws.send(bin(rc::frame(rc::STDOUT, b""))).await.unwrap();
            while let Some(Ok(m)) = ws.next().await {
                let Message::Binary(b) = m else { continue };
                if b[..] == rc::close_frame(rc::STDIN)[..] {
                    break;
                }
                if b.first() == Some(&rc::STDIN) {
                    ws.send(bin(rc::frame(rc::STDOUT, &b[1..]))).await.unwrap();
                }
            }
            ws.send(bin(rc::frame(rc::STDERR, "ünïcode ✓\n".as_bytes())))
                .await
                .unwrap();
            ws.send(bin(vec![])).await.unwrap();
            ws.send(bin(vec![77, 1, 2, 3])).await.unwrap();
            ws.send(Message::Text("text is ignored".into()))
                .await
                .unwrap();
            if let Some(s) = status {
                // In two pieces: the error channel is the concatenation of its messages.
                let (a, b) = s.split_at(s.len() / 2);
                ws.send(bin(rc::frame(rc::ERROR, a))).await.unwrap();
                ws.send(bin(rc::frame(rc::ERROR, b))).await.unwrap();
            }
            let _ = ws.close(None).await;
            while let Some(Ok(_)) = ws.next().await {}
        });
        format!("ws://{addr}/api/v1/namespaces/default/pods/p/exec?command=cat")
    }

    async fn run(url: &str, input: &'static [u8]) -> (Result<Finished>, String, String) {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let r = stream(
            url,
            "test",
            Streams {
                stdin: Some(Box::new(input)),
                stdout: Some(&mut out),
                stderr: Some(&mut err),
                resize: None,
            },
        )
        .await;
        (
            r,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    #[tokio::test]
    async fn a_session_streams_both_ways_and_ends_with_the_status() {
        let cmd = vec!["cat".to_string()];
        let url = serve_once(Some(rc::status_bytes(&cmd, &rc::Outcome::Exited(3)))).await;
        let (r, out, err) = run(&url, b"hello\nworld\n").await;
        assert_eq!(r.unwrap(), Finished::Exit(3));
        assert_eq!(out, "hello\nworld\n");
        assert_eq!(err, "ünïcode ✓\n");
        // No status at all is success, as in client-go.
        let url = serve_once(None).await;
        let (r, out, _) = run(&url, b"x").await;
        assert_eq!((r.unwrap(), out.as_str()), (Finished::Exit(0), "x"));
        // A garbled status is a protocol error, not a panic.
        let url = serve_once(Some(b"{\"status\":\"Fai\xff".to_vec())).await;
        let (r, _, _) = run(&url, b"").await;
        assert!(
            matches!(r.unwrap(), Finished::Error(m) if m.starts_with("error stream protocol error"))
        );
    }

    #[tokio::test]
    async fn nothing_listening_is_a_refused_connection() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let (r, _, _) = run(&format!("ws://127.0.0.1:{port}/x"), b"").await;
        assert!(matches!(r, Err(Error::ConnectionRefused { .. })), "{r:?}");
    }
}
