//! The watcher hub: every applied batch of revisions is broadcast to watch streams, which catch
//! up from the history table first and resync from it whenever the broadcast cannot be trusted
//! (lagged, events not collected, snapshot installed).
//!
//! A watcher subscribes before it opens its history read, so every revision newer than what
//! the read saw arrives on the broadcast; revisions the read covered are skipped. Hence each
//! stream is revision-ordered, gapless and duplicate-free, one message per revision.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kvclient::proto::{Event, WatchCreateRequest, WatchResponse};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::Identity;
use crate::error::KvError;
use crate::mvcc::{KeyRange, RevisionEvents, Store};

/// How often an idle stream with `progress_notify` gets a progress message.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);
/// Events read from history per chunk while catching up.
const CATCH_UP_CHUNK: usize = 1000;
/// Batches the broadcast holds for slow watchers before they must resync from history.
const BROADCAST_CAPACITY: usize = 1024;

/// What the state machine publishes after each commit.
#[derive(Debug)]
pub enum Published {
    /// Revisions `from..=to` were written. `events` is `None` when nobody was watching at
    /// apply time (the events were not built): a watcher that needs them reads history.
    Applied {
        from: i64,
        to: i64,
        events: Option<Vec<RevisionEvents>>,
    },
    /// The store was replaced by a snapshot: every watcher resyncs from history.
    Reset,
}

pub struct WatchHub {
    tx: broadcast::Sender<Arc<Published>>,
    /// The newest revision published (set after the broadcast send).
    current: AtomicI64,
    next_id: AtomicI64,
    progress: Mutex<HashMap<i64, mpsc::Sender<()>>>,
}

impl WatchHub {
    pub fn new(current: i64) -> WatchHub {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        WatchHub {
            tx,
            current: AtomicI64::new(current),
            next_id: AtomicI64::new(1),
            progress: Mutex::new(HashMap::new()),
        }
    }

    /// Whether anyone could want the events of the next apply.
    pub fn has_watchers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Called by the state machine after its commit made revisions up to `revision` visible.
    pub fn publish(&self, from: i64, revision: i64, events: Option<Vec<RevisionEvents>>) {
        if revision >= from && self.tx.receiver_count() > 0 {
            let _ = self.tx.send(Arc::new(Published::Applied {
                from,
                to: revision,
                events,
            }));
        }
        self.current.store(revision, Ordering::Release);
    }

    /// After a snapshot install: everyone resyncs.
    pub fn reset(&self, revision: i64) {
        let _ = self.tx.send(Arc::new(Published::Reset));
        self.current.store(revision, Ordering::Release);
    }

    pub fn current(&self) -> i64 {
        self.current.load(Ordering::Acquire)
    }

    /// Ask stream `id` for a progress message; false if there is no such stream.
    pub fn request_progress(&self, id: i64) -> bool {
        let map = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&id) {
            Some(tx) => {
                // A full channel already holds a pending request, which covers this one.
                let _ = tx.try_send(());
                true
            }
            None => false,
        }
    }
}

/// Open a watch stream: validates the request, then runs the watcher in its own task. The
/// returned receiver yields newline-terminated JSON messages and ends with the stream.
pub fn start(
    hub: Arc<WatchHub>,
    store: Arc<Store>,
    ident: Arc<Identity>,
    req: WatchCreateRequest,
    shutdown: CancellationToken,
) -> Result<mpsc::Receiver<Result<Bytes, Infallible>>, KvError> {
    let kr = KeyRange::new(&req.key, req.range_end.as_deref(), req.prefix)?;
    if req.start_revision < 0 {
        return Err(KvError::bad_request("start_revision must not be negative"));
    }
    let id = hub.next_id.fetch_add(1, Ordering::Relaxed);
    let (out_tx, out_rx) = mpsc::channel(64);
    let (prog_tx, prog_rx) = mpsc::channel(1);
    hub.progress
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, prog_tx);
    let w = Watcher {
        id,
        kr,
        req,
        hub,
        store,
        ident,
        out: out_tx,
        next: 0,
    };
    tokio::spawn(w.run(prog_rx, shutdown));
    Ok(out_rx)
}

struct Watcher {
    id: i64,
    kr: KeyRange,
    req: WatchCreateRequest,
    hub: Arc<WatchHub>,
    store: Arc<Store>,
    ident: Arc<Identity>,
    out: mpsc::Sender<Result<Bytes, Infallible>>,
    /// The next revision this stream has to deliver; everything below it was delivered.
    next: i64,
}

/// Why a watcher stops.
enum Stop {
    /// The client went away or the server is stopping.
    Gone,
    /// The revision to deliver next was compacted: tell the client, then end.
    Compacted(i64),
}

impl Watcher {
    async fn run(mut self, mut progress: mpsc::Receiver<()>, shutdown: CancellationToken) {
        let res = tokio::select! {
            r = self.serve(&mut progress) => r,
            _ = shutdown.cancelled() => Err(Stop::Gone),
        };
        if let Err(Stop::Compacted(c)) = res {
            let msg = WatchResponse {
                header: self.ident.header(self.hub.current()),
                watch_id: self.id,
                canceled: true,
                compact_revision: c,
                cancel_reason: format!(
                    "mvcc: required revision has been compacted: revision {} is older than the compact revision {c}",
                    self.next
                ),
                ..Default::default()
            };
            let _ = self.send(&msg).await;
        }
        self.hub
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }

    async fn serve(&mut self, progress: &mut mpsc::Receiver<()>) -> Result<(), Stop> {
        let mut rx = self.hub.tx.subscribe();
        let (current, compact) = self.revisions().await?;
        self.send(&WatchResponse {
            header: self.ident.header(current),
            watch_id: self.id,
            created: true,
            ..Default::default()
        })
        .await?;
        self.next = if self.req.start_revision == 0 {
            current + 1
        } else {
            self.req.start_revision
        };
        if self.next < compact {
            return Err(Stop::Compacted(compact));
        }
        self.catch_up().await?;

        let mut pending_progress: Option<i64> = None;
        let mut last_sent = tokio::time::Instant::now();
        let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = self.out.closed() => return Err(Stop::Gone),
                msg = rx.recv() => match msg {
                    Ok(p) => {
                        if self.deliver(&p).await? {
                            last_sent = tokio::time::Instant::now();
                        } else if self.needs_resync(&p) {
                            rx = self.hub.tx.subscribe();
                            self.catch_up().await?;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        rx = self.hub.tx.subscribe();
                        self.catch_up().await?;
                    }
                    Err(broadcast::error::RecvError::Closed) => return Err(Stop::Gone),
                },
                Some(()) = progress.recv() => {
                    pending_progress = Some(self.hub.current());
                }
                _ = ticker.tick(), if self.req.progress_notify => {
                    if last_sent.elapsed() >= PROGRESS_INTERVAL {
                        self.send_progress().await?;
                        last_sent = tokio::time::Instant::now();
                    }
                }
            }
            if let Some(target) = pending_progress
                && self.next > target
            {
                self.send_progress().await?;
                last_sent = tokio::time::Instant::now();
                pending_progress = None;
            }
        }
    }

    /// Send the events of a published batch this stream has not delivered yet; true if a
    /// message was sent. A batch without events is left to [`Self::needs_resync`].
    async fn deliver(&mut self, p: &Published) -> Result<bool, Stop> {
        let Published::Applied {
            events: Some(revs), ..
        } = p
        else {
            return Ok(false);
        };
        let mut sent = false;
        for r in revs {
            if r.revision < self.next {
                continue;
            }
            if r.revision > self.next {
                // Revisions are consecutive; a hole means something was missed: catch up.
                self.catch_up().await?;
                if r.revision < self.next {
                    continue;
                }
            }
            let events: Vec<Event> = r
                .events
                .iter()
                .filter(|e| self.kr.contains(&e.kv.key))
                .map(|e| {
                    let mut e = e.clone();
                    if !self.req.prev_kv {
                        e.prev_kv = None;
                    }
                    e
                })
                .collect();
            self.next = r.revision + 1;
            if !events.is_empty() {
                self.send_events(r.revision, events).await?;
                sent = true;
            }
        }
        Ok(sent)
    }

    fn needs_resync(&self, p: &Published) -> bool {
        match p {
            Published::Applied {
                to, events: None, ..
            } => *to >= self.next,
            Published::Applied { .. } => false,
            Published::Reset => true,
        }
    }

    async fn revisions(&self) -> Result<(i64, i64), Stop> {
        let store = self.store.clone();
        let r = tokio::task::spawn_blocking(move || {
            store.read().map(|r| (r.revision(), r.compact_revision()))
        })
        .await;
        match r {
            Ok(Ok(v)) => Ok(v),
            _ => Err(Stop::Gone),
        }
    }

    /// Deliver history from `self.next` up to the store's current revision, in chunks.
    async fn catch_up(&mut self) -> Result<(), Stop> {
        loop {
            let store = self.store.clone();
            let kr = self.kr.clone();
            let (from, prev) = (self.next, self.req.prev_kv);
            let chunk = tokio::task::spawn_blocking(move || {
                let r = store.read()?;
                if from < r.compact_revision() {
                    return Ok(Err(r.compact_revision()));
                }
                let (groups, next) = r.history(&kr, from, prev, CATCH_UP_CHUNK)?;
                Ok::<_, KvError>(Ok((groups, next, r.revision())))
            })
            .await;
            let (groups, next, view_rev) = match chunk {
                Ok(Ok(Ok(v))) => v,
                Ok(Ok(Err(compact))) => return Err(Stop::Compacted(compact)),
                Ok(Err(e)) => {
                    tracing::warn!(watch_id = self.id, "watch catch-up failed: {e}");
                    return Err(Stop::Gone);
                }
                Err(_) => return Err(Stop::Gone),
            };
            for (rev, events) in groups {
                self.send_events(rev, events).await?;
            }
            self.next = self.next.max(next);
            if next > view_rev {
                return Ok(());
            }
        }
    }

    async fn send_events(&self, rev: i64, events: Vec<Event>) -> Result<(), Stop> {
        self.send(&WatchResponse {
            header: self.ident.header(rev),
            watch_id: self.id,
            events,
            ..Default::default()
        })
        .await
    }

    async fn send_progress(&self) -> Result<(), Stop> {
        self.send(&WatchResponse {
            header: self.ident.header(self.next - 1),
            watch_id: self.id,
            ..Default::default()
        })
        .await
    }

    async fn send(&self, msg: &WatchResponse) -> Result<(), Stop> {
        let mut line = serde_json::to_vec(msg).map_err(|_| Stop::Gone)?;
        line.push(b'\n');
        self.out
            .send(Ok(Bytes::from(line)))
            .await
            .map_err(|_| Stop::Gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;
    use crate::mvcc::Applier;
    use kvclient::proto::PutRequest;

    /// Apply a put as the state machine would, publishing events only if `with_events`.
    fn put(store: &Store, hub: &WatchHub, key: &str, with_events: bool) -> i64 {
        let (from, to, events) = {
            let mut tables = store.write();
            let mut a = Applier::new(&mut tables, with_events);
            let from = a.revision() + 1;
            a.apply(
                &Command::Put(PutRequest {
                    key: key.into(),
                    value: "v".into(),
                    ..Default::default()
                }),
                0,
            )
            .unwrap()
            .unwrap();
            let to = a.revision();
            (from, to, a.finish().unwrap().0)
        };
        hub.publish(from, to, with_events.then_some(events));
        to
    }

    async fn next_events(rx: &mut mpsc::Receiver<Result<Bytes, Infallible>>) -> (i64, usize) {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("message in time")
                .expect("stream open")
                .unwrap();
            let m: WatchResponse = serde_json::from_slice(&line).unwrap();
            if !m.events.is_empty() {
                return (m.header.revision, m.events.len());
            }
        }
    }

    async fn next_message(rx: &mut mpsc::Receiver<Result<Bytes, Infallible>>) -> WatchResponse {
        let line = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("message in time")
            .expect("stream open")
            .unwrap();
        serde_json::from_slice(&line).unwrap()
    }

    /// The periodic progress notification: an idle stream with `progress_notify` gets an empty
    /// message every [`PROGRESS_INTERVAL`] whose revision says "nothing up to here"; a stream
    /// with events does not, and one without the flag never does.
    #[tokio::test(start_paused = true)]
    async fn idle_streams_get_periodic_progress_notifications() {
        let store = Arc::new(Store::new());
        let hub = Arc::new(WatchHub::new(0));
        put(&store, &hub, "a", false);
        put(&store, &hub, "b", false);
        let open = |progress_notify| {
            start(
                hub.clone(),
                store.clone(),
                Arc::new(Identity::new(1, 1)),
                WatchCreateRequest {
                    key: "a".into(),
                    progress_notify,
                    ..Default::default()
                },
                CancellationToken::new(),
            )
            .unwrap()
        };
        let mut rx = open(true);
        let mut quiet = open(false);
        assert!(next_message(&mut rx).await.created);
        assert!(next_message(&mut quiet).await.created);
        let t0 = tokio::time::Instant::now();
        let m = next_message(&mut rx).await;
        assert!(m.is_progress_notify(), "{m:?}");
        assert_eq!(m.header.revision, 2);
        assert!(t0.elapsed() >= PROGRESS_INTERVAL - Duration::from_secs(1));
        // A write elsewhere moves the progress revision on.
        while !hub.has_watchers() {
            tokio::task::yield_now().await;
        }
        put(&store, &hub, "b", true);
        let m = next_message(&mut rx).await;
        assert!(m.is_progress_notify(), "{m:?}");
        assert_eq!(m.header.revision, 3);
        // An event resets the timer: the next message is the event.
        put(&store, &hub, "a", true);
        let m = next_message(&mut rx).await;
        assert_eq!((m.header.revision, m.events.len()), (4, 1));
        let m = next_message(&mut rx).await;
        assert!(m.is_progress_notify() && m.header.revision == 4, "{m:?}");
        // Without the flag: only the event, never a progress message.
        let m = next_message(&mut quiet).await;
        assert_eq!((m.header.revision, m.events.len()), (4, 1));
        tokio::time::sleep(PROGRESS_INTERVAL * 3).await;
        assert!(quiet.try_recv().is_err());
    }

    #[tokio::test]
    async fn resyncs_from_history_when_events_were_not_collected_or_store_reset() {
        let store = Arc::new(Store::new());
        let hub = Arc::new(WatchHub::new(0));
        put(&store, &hub, "a", false);
        let mut rx = start(
            hub.clone(),
            store.clone(),
            Arc::new(Identity::new(1, 1)),
            WatchCreateRequest {
                key: "a".into(),
                start_revision: 1,
                ..Default::default()
            },
            CancellationToken::new(),
        )
        .unwrap();
        assert_eq!(next_events(&mut rx).await, (1, 1));
        // Wait until the watcher is live (subscribed), then write without collected events.
        while !hub.has_watchers() {
            tokio::task::yield_now().await;
        }
        put(&store, &hub, "a", false);
        assert_eq!(next_events(&mut rx).await, (2, 1));
        put(&store, &hub, "a", true);
        assert_eq!(next_events(&mut rx).await, (3, 1));
        // A write the broadcast never carried, then a reset: the watcher reads history.
        {
            let mut tables = store.write();
            let mut a = Applier::new(&mut tables, false);
            a.apply(
                &Command::Put(PutRequest {
                    key: "a".into(),
                    ..Default::default()
                }),
                0,
            )
            .unwrap()
            .unwrap();
            a.finish().unwrap();
        }
        hub.reset(4);
        assert_eq!(next_events(&mut rx).await, (4, 1));
        put(&store, &hub, "a", true);
        assert_eq!(next_events(&mut rx).await, (5, 1));
    }
}
