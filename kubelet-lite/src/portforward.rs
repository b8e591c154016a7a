//! One `kubectl port-forward` session on the kubelet: SPDY/3.1 ([`api::spdy`]) inside a
//! WebSocket (`SPDY/3.1+portforward.k8s.io`, as kubectl 1.37 tunnels it), and for every
//! forwarded connection a TCP connection to the pod's IP and port. The HTTP side (lookup,
//! upgrade) is in [`crate::server`].
//!
//! The client opens two streams per connection, paired by their `requestID` header: `error`
//! (we write why forwarding failed, then close it) and `data` (bytes both ways). Every stream the
//! client opens gets a SYN_REPLY; pings are answered; a connection to the pod that is refused is
//! a message on the error stream. Closing: the client's FIN on a data stream shuts the pod
//! connection's write side; the pod's end of file ends the error stream and then the data
//! stream (FIN on both), which is how kubectl knows the connection is done. A pod port that
//! refuses is a message on the error stream, then both streams are reset (as the kubelet).
//!
//! Memory is bounded: frames are at most [`api::spdy::MAX_FRAME`], the bytes waiting for a pod
//! connection are a few frames per stream, and what goes to the client waits in one bounded
//! queue (a slow client slows the pod connections down).

use std::collections::HashMap;
use std::net::IpAddr;

use api::spdy::{self, Codec, FLAG_FIN, Frame};
use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// The WebSocket subprotocol kubectl offers for tunneled port-forward.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// Frames queued towards the client.
const OUT_DEPTH: usize = 64;
/// Chunks queued towards one pod connection.
const IN_DEPTH: usize = 8;
/// How much is read from a pod connection per DATA frame.
const CHUNK: usize = 32 * 1024;
/// Connections whose second stream has not come yet (more are refused).
const MAX_PENDING: usize = 1024;

/// The two streams of one forwarded connection, as far as they have come.
#[derive(Default)]
struct Pair {
    error: Option<u32>,
    data: Option<u32>,
    port: u16,
    started: bool,
}

/// Serve one session until the client goes, or `shutdown`.
pub async fn serve<S>(
    ws: WebSocketStream<S>,
    pod_ip: IpAddr,
    what: String,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut source) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Frame>(OUT_DEPTH);
    let writer = tokio::spawn(async move {
        let mut codec = Codec::new();
        while let Some(f) = out_rx.recv().await {
            let Ok(bytes) = codec.encode(&f) else {
                continue;
            };
            if sink.send(Message::Binary(bytes.into())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut codec = Codec::new();
    let mut buf = BytesMut::new();
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    // Client → pod: the sender of each data stream's pod connection.
    let mut to_pod: HashMap<u32, mpsc::Sender<Option<Bytes>>> = HashMap::new();
    tracing::info!(session = %what, "port-forward session started");
    'session: loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = source.next() => m,
        };
        let data = match msg {
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => continue,
        };
        buf.extend_from_slice(&data);
        loop {
            let frame = match codec.decode(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(session = %what, error = %e, "bad SPDY input; closing");
                    let _ = out_tx
                        .send(Frame::GoAway {
                            last_stream: 0,
                            status: spdy::PROTOCOL_ERROR,
                        })
                        .await;
                    break 'session;
                }
            };
            match frame {
                Frame::SynStream {
                    stream, headers, ..
                } => {
                    let _ = out_tx
                        .send(Frame::SynReply {
                            stream,
                            flags: 0,
                            headers: Vec::new(),
                        })
                        .await;
                    let kind = spdy::header(&headers, "streamtype").unwrap_or("");
                    let port = spdy::header(&headers, "port").and_then(|p| p.parse::<u16>().ok());
                    let cancel = Frame::RstStream {
                        stream,
                        status: spdy::CANCEL,
                    };
                    // As the kubelet: a bad port or stream type resets the stream.
                    let (Some(port), "error" | "data") = (port.filter(|p| *p > 0), kind) else {
                        let _ = out_tx.send(cancel).await;
                        continue;
                    };
                    // Paired by requestID; without one, an error stream and the data stream
                    // opened right after it (two ids later) belong together.
                    let id = match spdy::header(&headers, "requestid") {
                        Some(id) => id.to_string(),
                        None if kind == "error" => stream.to_string(),
                        None => stream.saturating_sub(2).to_string(),
                    };
                    if !pairs.contains_key(&id) && pairs.len() >= MAX_PENDING {
                        let _ = out_tx.send(cancel).await;
                        continue;
                    }
                    let p = pairs.entry(id.clone()).or_default();
                    p.port = port;
                    let slot = if kind == "error" {
                        &mut p.error
                    } else {
                        &mut p.data
                    };
                    if slot.is_some() {
                        let _ = out_tx.send(cancel).await;
                        continue;
                    }
                    *slot = Some(stream);
                    if let (Some(err), Some(data), false) = (p.error, p.data, p.started) {
                        p.started = true;
                        let (tx, rx) = mpsc::channel(IN_DEPTH);
                        to_pod.insert(data, tx);
                        tokio::spawn(forward(
                            pod_ip,
                            port,
                            data,
                            err,
                            rx,
                            out_tx.clone(),
                            what.clone(),
                        ));
                        pairs.remove(&id);
                    }
                }
                Frame::Data {
                    stream,
                    flags,
                    data,
                } => {
                    if let Some(tx) = to_pod.get(&stream) {
                        if !data.is_empty() && tx.send(Some(data)).await.is_err() {
                            to_pod.remove(&stream);
                            continue;
                        }
                        if flags & FLAG_FIN != 0 {
                            let _ = tx.send(None).await;
                            to_pod.remove(&stream);
                        }
                    }
                }
                Frame::RstStream { stream, .. } => {
                    // Dropping the sender ends that pod connection.
                    to_pod.remove(&stream);
                }
                Frame::Ping(id) => {
                    let _ = out_tx.send(Frame::Ping(id)).await;
                }
                Frame::GoAway { .. } => break 'session,
                _ => {}
            }
        }
    }
    drop(to_pod);
    drop(out_tx);
    let _ = writer.await;
    tracing::info!(session = %what, "port-forward session ended");
}

/// One forwarded connection: the pod's `port` ⇄ the data stream; failures on the error stream.
async fn forward(
    ip: IpAddr,
    port: u16,
    data: u32,
    error: u32,
    mut from_client: mpsc::Receiver<Option<Bytes>>,
    out: mpsc::Sender<Frame>,
    what: String,
) {
    let fin = |stream: u32| Frame::Data {
        stream,
        flags: FLAG_FIN,
        data: Bytes::new(),
    };
    let conn = tokio::net::TcpStream::connect((ip, port)).await;
    let conn = match conn {
        Ok(c) => c,
        Err(e) => {
            // Worded as the kubelet's (Go's dial error: "connect: connection refused").
            let reason = e.to_string();
            let reason = reason
                .split(" (os error")
                .next()
                .unwrap_or("")
                .to_lowercase();
            let msg = format!(
                "error forwarding port {port} to pod {what}: dial tcp {ip}:{port}: connect: {reason}"
            );
            tracing::info!(session = %what, %port, error = %e, "port-forward: cannot connect");
            let _ = out
                .send(Frame::Data {
                    stream: error,
                    flags: 0,
                    data: Bytes::from(msg),
                })
                .await;
            for stream in [data, error] {
                let _ = out
                    .send(Frame::RstStream {
                        stream,
                        status: spdy::CANCEL,
                    })
                    .await;
            }
            return;
        }
    };
    let (mut rd, mut wr) = conn.into_split();
    let up = async {
        while let Some(chunk) = from_client.recv().await {
            match chunk {
                Some(b) => {
                    if wr.write_all(&b).await.is_err() {
                        break;
                    }
                }
                None => break,
            }
        }
        let _ = wr.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let chunk = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                    if out
                        .send(Frame::Data {
                            stream: data,
                            flags: 0,
                            data: chunk,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    };
    // The pod's end of file ends the connection (the client is told with FIN), whatever the
    // client still sends.
    tokio::select! {
        _ = down => {}
        _ = async { up.await; std::future::pending::<()>().await } => {}
    }
    // As the kubelet: the error stream ends (nothing went wrong), then the data stream.
    let _ = out.send(fin(error)).await;
    let _ = out.send(fin(data)).await;
}
