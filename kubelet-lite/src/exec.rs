//! One `kubectl exec` session on the kubelet: a WebSocket speaking Kubernetes' channel protocol
//! ([`api::remotecommand`], `v5.channel.k8s.io` or `v4.channel.k8s.io`) ⇄ the runtime's
//! [`ExecIo`] channels ⇄ [`Runtime::exec`]. The HTTP side (query, lookup, upgrade) is in
//! [`crate::server`].
//!
//! Three loops share the connection: the reader hands stdin and resizes to the runtime (and
//! answers pings), the writer frames the command's output, and the session waits for the
//! command. When it is done and its output written, the outcome goes on the error channel and
//! the connection is closed normally (code 1000), which is how clients know the session is
//! over. A client that goes away abandons the session: the runtime's future is dropped, which
//! stops the command.
//!
//! Memory is bounded: incoming messages are limited to [`MAX_MESSAGE_BYTES`], and every channel
//! between the connection and the runtime holds a few messages at most, so a slow side slows
//! the other down rather than filling memory.

use std::sync::Arc;
use std::time::Duration;

use api::remotecommand::{
    self as rc, ClientFrame, Outcome, Protocol, parse_client_frame, status_bytes,
};
use bytes::Bytes;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use crate::runtime::{ExecIo, ExecRequest, ExecTarget, Runtime, TermSize};

/// The largest message a client may send (client-go sends stdin in 32 KiB pieces).
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// Messages waiting between the connection and the command, per direction and stream.
const CHANNEL_DEPTH: usize = 8;
/// How long the client has to answer our close with its own.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The WebSocket settings of an exec connection: bounded messages and write buffer.
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
        .write_buffer_size(64 * 1024)
        .max_write_buffer_size(MAX_MESSAGE_BYTES * 2)
}

/// Who runs the command, and where.
pub struct Session {
    pub runtime: Arc<dyn Runtime>,
    pub target: ExecTarget,
    pub request: ExecRequest,
    pub protocol: Protocol,
    /// `namespace/pod/container`, for log lines.
    pub what: String,
}

/// How the reader stopped.
#[derive(Debug)]
enum ReadEnd {
    /// The client closed the connection (or it broke).
    Gone(String),
    /// The client broke the protocol badly enough to end the session.
    Protocol(String),
}

impl std::fmt::Display for ReadEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadEnd::Gone(why) => write!(f, "client gone: {why}"),
            ReadEnd::Protocol(why) => write!(f, "protocol error: {why}"),
        }
    }
}

/// Run the session over an upgraded connection until the command is done or the client leaves;
/// ends early (killing the command) on `shutdown`.
pub async fn serve<S>(ws: WebSocketStream<S>, session: Session, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let Session {
        runtime,
        target,
        request,
        protocol,
        what,
    } = session;
    let (mut sink, stream) = ws.split();
    let (stdin_tx, stdin_rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let (stdout_tx, stdout_rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let (stderr_tx, stderr_rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let (resize_tx, resize_rx) = mpsc::channel::<TermSize>(CHANNEL_DEPTH);
    tracing::info!(session = %what, command = ?request.command, tty = request.tty,
        stdin = request.stdin, protocol = protocol.name(), "exec session started");

    // As the kubelet does: an empty message on the lowest channel the client reads, so it
    // knows the session is set up.
    let first = if request.stdout {
        rc::STDOUT
    } else if request.stderr {
        rc::STDERR
    } else {
        rc::ERROR
    };
    if let Err(e) = sink.send(binary(rc::frame(first, &[]))).await {
        tracing::debug!(session = %what, error = %e, "exec client gone before the start");
        return;
    }

    let command = request.command.clone();
    let io = ExecIo {
        stdin: stdin_rx,
        stdout: stdout_tx,
        stderr: stderr_tx,
        resize: resize_rx,
    };
    let stdin = request.stdin.then_some(stdin_tx);
    let resize = request.tty.then_some(resize_tx);
    let reader = read_loop(stream, protocol, stdin, resize);
    tokio::pin!(reader);
    let main = async {
        let exec = runtime.exec(&target, request, io);
        let (result, sink) = tokio::join!(exec, write_loop(sink, stdout_rx, stderr_rx));
        (result, sink)
    };
    let (result, sink) = tokio::select! {
        done = main => done,
        end = &mut reader => {
            tracing::info!(session = %what, reason = %end, "exec session abandoned: command stopped");
            return;
        }
        _ = shutdown.cancelled() => {
            tracing::info!(session = %what, "kubelet stopping: exec command stopped");
            return;
        }
    };
    let outcome = match result {
        Ok(code) => Outcome::Exited(code),
        Err(why) => Outcome::Failed(why),
    };
    tracing::info!(session = %what, outcome = ?outcome, "exec session done");
    let Ok(mut sink) = sink else {
        return;
    };
    let status = rc::frame(rc::ERROR, &status_bytes(&command, &outcome));
    let close = Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }));
    if sink.send(binary(status)).await.is_ok() && sink.send(close).await.is_ok() {
        // Read on until the client's close arrives, so the close handshake completes.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, &mut reader).await;
    }
}

fn binary(data: Vec<u8>) -> Message {
    Message::Binary(Bytes::from(data))
}

/// Read the client's messages: stdin to the command, resizes to its terminal. Returns when the
/// client is gone or broke the protocol.
async fn read_loop<St>(
    mut stream: St,
    protocol: Protocol,
    mut stdin: Option<mpsc::Sender<Bytes>>,
    resize: Option<mpsc::Sender<TermSize>>,
) -> ReadEnd
where
    St: Stream<Item = Result<Message, WsError>> + Unpin,
{
    while let Some(msg) = stream.next().await {
        let data = match msg {
            Ok(Message::Binary(b)) => b,
            // Kubernetes reads text messages as their bytes.
            Ok(Message::Text(t)) => Bytes::from(t),
            Ok(Message::Close(_)) => return ReadEnd::Gone("closed by the client".into()),
            // Pings are answered by the WebSocket layer.
            Ok(_) => continue,
            Err(e) => return ReadEnd::Gone(e.to_string()),
        };
        match parse_client_frame(protocol, &data) {
            Ok(ClientFrame::Stdin(b)) => {
                let chunk = data.slice_ref(b);
                if chunk.is_empty() {
                    continue;
                }
                if let Some(tx) = &stdin
                    && tx.send(chunk).await.is_err()
                {
                    // The command no longer reads its input.
                    stdin = None;
                }
            }
            Ok(ClientFrame::Resize(size)) => {
                if let Some(tx) = &resize {
                    // A resize that does not fit is dropped: the next one supersedes it.
                    let _ = tx.try_send(TermSize {
                        width: size.width,
                        height: size.height,
                    });
                }
            }
            Ok(ClientFrame::Close(rc::STDIN)) => {
                // End of input: the command sees EOF.
                stdin = None;
            }
            Ok(ClientFrame::Close(_) | ClientFrame::Ignored(_) | ClientFrame::Empty) => {}
            Err(e) if e.is_fatal() => return ReadEnd::Protocol(e.to_string()),
            Err(e) => tracing::debug!(error = %e, "exec: message dropped"),
        }
    }
    ReadEnd::Gone("connection ended".into())
}

/// Frame the command's output until both streams end; the sink back, or `Err` when the client
/// is gone.
async fn write_loop<Si>(
    mut sink: Si,
    mut stdout: mpsc::Receiver<Bytes>,
    mut stderr: mpsc::Receiver<Bytes>,
) -> Result<Si, WsError>
where
    Si: Sink<Message, Error = WsError> + Unpin,
{
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        let (channel, data) = tokio::select! {
            d = stdout.recv(), if out_open => match d {
                Some(d) => (rc::STDOUT, d),
                None => { out_open = false; continue; }
            },
            d = stderr.recv(), if err_open => match d {
                Some(d) => (rc::STDERR, d),
                None => { err_open = false; continue; }
            },
        };
        sink.send(binary(rc::frame(channel, &data))).await?;
    }
    Ok(sink)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::BoxFuture;
    use tokio_tungstenite::tungstenite::protocol::Role;

    /// A runtime whose exec echoes stdin to stdout (uppercased on stderr), reports resizes on
    /// stdout, and exits with the number of input bytes.
    struct Echo;

    impl Runtime for Echo {
        fn version(&self) -> String {
            "echo://test".into()
        }
        fn start<'a>(
            &'a self,
            _: &'a crate::runtime::StartRequest,
            _: Arc<tokio::sync::Notify>,
        ) -> BoxFuture<'a, Result<crate::runtime::Running, String>> {
            Box::pin(async { Err("no".to_string()) })
        }
        fn signal(&self, _: &crate::runtime::Running, _: crate::runtime::StopSignal) {}
        fn recover<'a>(
            &'a self,
            _: &'a crate::state::ProcRecord,
        ) -> BoxFuture<'a, crate::runtime::Recovered> {
            Box::pin(async { crate::runtime::Recovered::Gone { stopped: false } })
        }
        fn exec<'a>(
            &'a self,
            _: &'a ExecTarget,
            req: ExecRequest,
            mut io: ExecIo,
        ) -> BoxFuture<'a, Result<i32, String>> {
            Box::pin(async move {
                if req.command.first().map(String::as_str) == Some("nope") {
                    return Err("exec: \"nope\": executable file not found in $PATH".into());
                }
                let mut n = 0;
                loop {
                    // Resizes first: one sent before stdin's end is seen before it.
                    tokio::select! {
                        biased;
                        Some(s) = io.resize.recv() => {
                            let m = format!("{}x{}", s.width, s.height);
                            io.stdout.send(Bytes::from(m)).await.ok();
                        }
                        b = io.stdin.recv() => match b {
                            Some(b) => {
                                n += b.len();
                                io.stdout.send(b.clone()).await.ok();
                                io.stderr.send(Bytes::from(b.to_ascii_uppercase())).await.ok();
                            }
                            None => break,
                        },
                    }
                }
                Ok(n as i32)
            })
        }
    }

    fn session(command: &[&str], protocol: Protocol, tty: bool) -> Session {
        Session {
            runtime: Arc::new(Echo),
            target: ExecTarget::default(),
            request: ExecRequest {
                command: command.iter().map(|s| s.to_string()).collect(),
                tty,
                stdin: true,
                stdout: true,
                stderr: !tty,
            },
            protocol,
            what: "default/p/c".into(),
        }
    }

    /// A server session on one end of an in-memory pipe, a raw client on the other.
    async fn pair(
        s: Session,
    ) -> (
        WebSocketStream<tokio::io::DuplexStream>,
        tokio::task::JoinHandle<()>,
    ) {
        let (a, b) = tokio::io::duplex(4096);
        let server = WebSocketStream::from_raw_socket(a, Role::Server, Some(websocket_config()));
        let client = WebSocketStream::from_raw_socket(b, Role::Client, None);
        let (server, client) = tokio::join!(server, client);
        let task = tokio::spawn(serve(server, s, CancellationToken::new()));
        (client, task)
    }

    /// Every message until the server closes: (channel, data) pairs.
    async fn read_all(c: &mut WebSocketStream<tokio::io::DuplexStream>) -> Vec<(u8, Vec<u8>)> {
        let mut got = Vec::new();
        while let Some(m) = c.next().await {
            match m {
                Ok(Message::Binary(b)) => {
                    if let Some((ch, rest)) = b.split_first() {
                        got.push((*ch, rest.to_vec()));
                    }
                }
                Ok(Message::Close(_)) => {}
                Ok(_) => {}
                Err(_) => break,
            }
        }
        got
    }

    fn channel(got: &[(u8, Vec<u8>)], ch: u8) -> String {
        got.iter()
            .filter(|(c, _)| *c == ch)
            .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
            .collect()
    }

    #[tokio::test]
    async fn v5_stdin_close_ends_input_and_the_status_carries_the_exit_code() {
        let (mut c, task) = pair(session(&["cat"], Protocol::V5, false)).await;
        c.send(binary(rc::frame(rc::STDIN, b"hello")))
            .await
            .unwrap();
        // Hostile and odd messages in between: unknown channels, empty, text, resize without tty.
        c.send(binary(vec![9, 1, 2])).await.unwrap();
        c.send(binary(vec![])).await.unwrap();
        c.send(Message::Text("\u{0}é!".into())).await.unwrap();
        c.send(binary(rc::resize_frame(rc::TerminalSize {
            width: 1,
            height: 2,
        })))
        .await
        .unwrap();
        c.send(binary(rc::close_frame(rc::STDIN))).await.unwrap();
        let got = read_all(&mut c).await;
        task.await.unwrap();
        assert_eq!(
            got.first(),
            Some(&(rc::STDOUT, vec![])),
            "the start message"
        );
        assert_eq!(channel(&got, rc::STDOUT), "helloé!");
        assert_eq!(channel(&got, rc::STDERR), "HELLOé!");
        let status = got.iter().find(|(ch, _)| *ch == rc::ERROR).unwrap();
        assert_eq!(rc::decode_status(&status.1), rc::Finished::Exit(8));
    }

    #[tokio::test]
    async fn tty_resizes_reach_the_runtime_and_bad_ones_are_dropped() {
        let (mut c, task) = pair(session(&["sh"], Protocol::V5, true)).await;
        c.send(binary(rc::resize_frame(rc::TerminalSize {
            width: 80,
            height: 24,
        })))
        .await
        .unwrap();
        let mut huge = vec![rc::RESIZE];
        huge.extend(std::iter::repeat_n(b'{', rc::MAX_RESIZE_BYTES * 2));
        c.send(binary(huge)).await.unwrap();
        c.send(binary(b"\x04{\"Width\":\"\xc3\xa9\"}".to_vec()))
            .await
            .unwrap();
        c.send(binary(rc::close_frame(rc::STDIN))).await.unwrap();
        let got = read_all(&mut c).await;
        task.await.unwrap();
        assert_eq!(channel(&got, rc::STDOUT), "80x24");
        assert_eq!(channel(&got, rc::STDERR), "", "a tty merges stderr");
    }

    #[tokio::test]
    async fn a_failed_start_is_an_internal_error_status() {
        let (mut c, task) = pair(session(&["nope"], Protocol::V4, false)).await;
        let got = read_all(&mut c).await;
        task.await.unwrap();
        let status = got.iter().find(|(ch, _)| *ch == rc::ERROR).unwrap();
        match rc::decode_status(&status.1) {
            rc::Finished::Error(m) => assert!(m.contains("executable file not found"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_malformed_close_signal_ends_the_session() {
        let (mut c, task) = pair(session(&["cat"], Protocol::V5, false)).await;
        c.send(binary(vec![rc::CLOSE, 0, 0, 0])).await.unwrap();
        let got = read_all(&mut c).await;
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the session ends")
            .unwrap();
        assert!(
            got.iter().all(|(ch, _)| *ch != rc::ERROR),
            "no status: {got:?}"
        );
    }

    #[tokio::test]
    async fn v4_has_no_close_signal_but_a_closed_connection_ends_the_session() {
        let (mut c, task) = pair(session(&["cat"], Protocol::V4, false)).await;
        c.send(binary(rc::close_frame(rc::STDIN))).await.unwrap();
        c.send(binary(rc::frame(rc::STDIN, b"x"))).await.unwrap();
        // The server would wait for more input; closing the connection ends it.
        c.close(None).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the session ends")
            .unwrap();
    }

    #[tokio::test]
    async fn oversized_messages_break_the_connection_not_the_kubelet() {
        let (mut c, task) = pair(session(&["cat"], Protocol::V5, false)).await;
        let big = vec![0u8; MAX_MESSAGE_BYTES + 10];
        let _ = c.send(binary(big)).await;
        let _ = read_all(&mut c).await;
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the session ends")
            .unwrap();
    }
}
