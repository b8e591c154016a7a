//! The client side of `port-forward`: one WebSocket to `pods/NAME/portforward` carrying SPDY/3.1
//! ([`api::spdy`], subprotocol `SPDY/3.1+portforward.k8s.io`, as kubectl 1.37), and for each
//! local connection two streams paired by `requestid` — `error` (half-closed at once; whatever
//! comes on it is why forwarding failed) and `data` (bytes both ways), as client-go does.
//!
//! Stream ids are odd and rising in the order their SYN_STREAMs are written (one lock covers
//! choosing the id and queueing the frame). Every queue is bounded: a slow side slows the other.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use api::spdy::{self, Codec, FLAG_FIN, Frame};
use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::errors::{Error, Result};

pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// How long the server has to accept a stream (client-go's `createStreamResponseTimeout`).
const STREAM_TIMEOUT: Duration = Duration::from_secs(30);
const DEPTH: usize = 16;
const CHUNK: usize = 32 * 1024;

/// What the server sends on one stream: bytes, then `None` at its end (FIN or reset).
type Inbox = mpsc::Receiver<Option<Bytes>>;

struct Slot {
    reply: Option<oneshot::Sender<()>>,
    inbox: mpsc::Sender<Option<Bytes>>,
}

/// One SPDY connection to the pod, shared by every forwarded connection.
pub struct Session {
    out: mpsc::Sender<Frame>,
    /// The next stream id, held while a SYN_STREAM is queued so ids rise in wire order.
    next_stream: Mutex<u32>,
    next_request: std::sync::atomic::AtomicU64,
    slots: Arc<std::sync::Mutex<HashMap<u32, Slot>>>,
    /// Cancelled when the connection ends.
    pub closed: tokio_util::sync::CancellationToken,
}

impl Session {
    /// Connect to `url` (`ws://…/pods/NAME/portforward`).
    pub async fn connect(url: &str, user_agent: &str) -> Result<Arc<Session>> {
        let mut req = url
            .into_client_request()
            .map_err(|e| Error::msg(format!("invalid port-forward URL {url:?}: {e}")))?;
        let h = req.headers_mut();
        h.insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(TUNNEL_PROTOCOL),
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
            .max_message_size(Some(spdy::MAX_FRAME + 64))
            .max_frame_size(Some(spdy::MAX_FRAME + 64));
        let (ws, resp) = tokio_tungstenite::connect_async_with_config(req, Some(config), true)
            .await
            .map_err(|e| crate::remotecommand::handshake_error(e, &host))?;
        let chosen = resp
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if chosen != TUNNEL_PROTOCOL {
            return Err(Error::msg(format!(
                "unable to upgrade connection: the server chose {chosen:?}, not {TUNNEL_PROTOCOL}"
            )));
        }
        let (mut sink, mut source) = ws.split();
        let (out, mut out_rx) = mpsc::channel::<Frame>(DEPTH);
        let closed = tokio_util::sync::CancellationToken::new();
        let slots: Arc<std::sync::Mutex<HashMap<u32, Slot>>> = Arc::default();
        // Writer: one SPDY frame per binary message.
        tokio::spawn(async move {
            let mut codec = Codec::new();
            while let Some(f) = out_rx.recv().await {
                let Ok(b) = codec.encode(&f) else { continue };
                if sink.send(Message::Binary(b.into())).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        // Reader: frames to their streams.
        {
            let (slots, closed, out) = (slots.clone(), closed.clone(), out.clone());
            tokio::spawn(async move {
                let mut codec = Codec::new();
                let mut buf = BytesMut::new();
                'conn: while let Some(Ok(msg)) = source.next().await {
                    let Message::Binary(b) = msg else {
                        if matches!(msg, Message::Close(_)) {
                            break;
                        }
                        continue;
                    };
                    buf.extend_from_slice(&b);
                    loop {
                        let frame = match codec.decode(&mut buf) {
                            Ok(Some(f)) => f,
                            Ok(None) => break,
                            Err(_) => break 'conn,
                        };
                        match frame {
                            Frame::SynReply { stream, .. } => {
                                let reply = slots
                                    .lock()
                                    .ok()
                                    .and_then(|mut s| s.get_mut(&stream)?.reply.take());
                                if let Some(r) = reply {
                                    let _ = r.send(());
                                }
                            }
                            Frame::Data {
                                stream,
                                flags,
                                data,
                            } => {
                                let inbox = slots
                                    .lock()
                                    .ok()
                                    .and_then(|s| Some(s.get(&stream)?.inbox.clone()));
                                if let Some(inbox) = inbox {
                                    if !data.is_empty() {
                                        let _ = inbox.send(Some(data)).await;
                                    }
                                    if flags & FLAG_FIN != 0 {
                                        let _ = inbox.send(None).await;
                                    }
                                }
                            }
                            Frame::RstStream { stream, .. } => {
                                let slot = slots.lock().ok().and_then(|mut s| s.remove(&stream));
                                if let Some(slot) = slot {
                                    let _ = slot.inbox.send(None).await;
                                }
                            }
                            Frame::Ping(id) => {
                                let _ = out.send(Frame::Ping(id)).await;
                            }
                            Frame::GoAway { .. } => break 'conn,
                            _ => {}
                        }
                    }
                }
                closed.cancel();
                // Every stream ends with the connection.
                if let Ok(mut s) = slots.lock() {
                    s.clear();
                }
            });
        }
        Ok(Arc::new(Session {
            out,
            next_stream: Mutex::new(1),
            next_request: Default::default(),
            slots,
            closed,
        }))
    }

    /// Open a stream with these headers and wait until the server accepts it.
    async fn open(&self, headers: spdy::Headers) -> Result<(u32, Inbox)> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let (inbox_tx, inbox) = mpsc::channel(DEPTH);
        let id = {
            let mut next = self.next_stream.lock().await;
            let id = *next;
            *next += 2;
            if let Ok(mut s) = self.slots.lock() {
                s.insert(
                    id,
                    Slot {
                        reply: Some(reply_tx),
                        inbox: inbox_tx,
                    },
                );
            }
            self.out
                .send(Frame::SynStream {
                    stream: id,
                    associated: 0,
                    priority: 0,
                    flags: 0,
                    headers,
                })
                .await
                .map_err(|_| Error::msg("lost connection to pod"))?;
            id
        };
        match tokio::time::timeout(STREAM_TIMEOUT, reply_rx).await {
            Ok(Ok(())) => Ok((id, inbox)),
            Ok(Err(_)) => Err(Error::msg("error creating stream: stream reset")),
            Err(_) => Err(Error::msg("error creating stream: timed out")),
        }
    }

    async fn send(&self, f: Frame) {
        let _ = self.out.send(f).await;
    }

    /// Forward one local connection to the pod's `port`; `Err` carries what the server said
    /// went wrong (the error stream's text).
    pub async fn forward(&self, conn: tokio::net::TcpStream, port: u16) -> Result<()> {
        let request = self
            .next_request
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_string();
        let headers = |kind: &str| {
            vec![
                ("streamtype".to_string(), kind.to_string()),
                ("port".to_string(), port.to_string()),
                ("requestid".to_string(), request.clone()),
            ]
        };
        let (error_id, mut errors) = self.open(headers("error")).await?;
        // Nothing is ever written on the error stream.
        self.send(Frame::Data {
            stream: error_id,
            flags: FLAG_FIN,
            data: Bytes::new(),
        })
        .await;
        let (data_id, mut inbox) = self.open(headers("data")).await?;
        let (mut rd, mut wr) = conn.into_split();
        let up = async {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let data = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                        self.send(Frame::Data {
                            stream: data_id,
                            flags: 0,
                            data,
                        })
                        .await;
                    }
                }
            }
            self.send(Frame::Data {
                stream: data_id,
                flags: FLAG_FIN,
                data: Bytes::new(),
            })
            .await;
        };
        let down = async {
            while let Some(Some(b)) = inbox.recv().await {
                if wr.write_all(&b).await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        };
        // The pod's side ends the connection.
        tokio::select! {
            _ = down => {}
            _ = async { up.await; std::future::pending::<()>().await } => {}
            _ = self.closed.cancelled() => {}
        }
        let mut message = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Some(b)) = errors.recv().await {
                message.extend_from_slice(&b);
            }
        })
        .await;
        if let Ok(mut s) = self.slots.lock() {
            s.remove(&error_id);
            s.remove(&data_id);
        }
        if message.is_empty() {
            Ok(())
        } else {
            Err(Error::msg(String::from_utf8_lossy(&message).into_owned()))
        }
    }
}
