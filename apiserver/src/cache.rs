//! The watch cache, as Kubernetes' cacher: for each resource type, one kvstore watch keeps an
//! in-memory copy of every object and a window of recent events, and every client watch and
//! most lists are served from it. A thousand `kubectl get -w` or informers cost one kvstore
//! watch per resource type, not a thousand.
//!
//! - **State.** At start the cacher lists the type's prefix at revision R, then watches from
//!   R+1 (without previous values: the cache has them). Each kvstore event updates the objects
//!   and is appended to the history; progress notifications advance the cache's revision
//!   without events ("nothing changed up to here").
//! - **Watchers** subscribe under the same lock the events are applied under, so what they get
//!   first (a snapshot, or the history after their resourceVersion) and what they get next
//!   (the broadcast) neither overlap nor leave a gap. A watcher that falls too far behind the
//!   broadcast is ended, and resumes from the last resourceVersion it saw, as with Kubernetes.
//! - **History** is kept until the revisions are compacted (and at most [`MAX_HISTORY`] events);
//!   a watch from before the start of the history gets `410 Expired` ("too old resource
//!   version"), exactly as from a compacted kvstore.
//! - **Freshness.** Consistent reads (`resourceVersion` unset) first learn the store's current
//!   revision, then wait until the cache has caught up with it — asking the kvstore for a
//!   progress notification on the cache's watch rather than waiting for the periodic one.
//! - **Resync.** A broken kvstore watch is reopened from the cache's revision + 1; if that
//!   revision was compacted meanwhile, the cacher relists and ends every client watch (they
//!   resume, and get 410 if they are too far behind).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::ResourceInfo;
use api::resource::RESOURCES;
use futures::StreamExt;
use kvclient::proto::{ErrorCode, EventType};
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{ApiError, ApiResult};
use crate::storage::{self, Storage};

/// Events kept per resource type at most, whatever the compaction.
pub const MAX_HISTORY: usize = 100_000;
/// Messages a watcher may lag behind the broadcast before it is ended.
const BROADCAST_CAPACITY: usize = 4096;

/// One change, as the cache applied it.
#[derive(Debug)]
pub struct CacheEvent {
    pub rev: i64,
    pub key: String,
    /// The new object; for a deletion, the last state with the deletion's resourceVersion.
    pub obj: Arc<Value>,
    /// The object before this change (None when it was created).
    pub prev: Option<Arc<Value>>,
    pub deleted: bool,
}

/// What the cacher broadcasts to its watchers.
#[derive(Clone, Debug)]
pub enum Msg {
    Event(Arc<CacheEvent>),
    /// Nothing changed up to this revision (a bookmark, for watchers that want them).
    Progress(i64),
    /// The cache was rebuilt: every watcher must end (and its client resume).
    Reset,
}

struct State {
    ready: bool,
    /// The cache reflects every change up to this revision.
    rev: i64,
    objects: BTreeMap<String, Arc<Value>>,
    history: VecDeque<Arc<CacheEvent>>,
    /// Every event with a revision above this one is in `history`.
    history_start: i64,
    tx: broadcast::Sender<Msg>,
}

/// What a new watcher starts with.
pub struct Subscription {
    /// The current objects, when a snapshot was asked for.
    pub snapshot: Vec<Arc<Value>>,
    /// Events after the watcher's resourceVersion that happened before it subscribed.
    pub backlog: Vec<Arc<CacheEvent>>,
    /// The revision the snapshot (or backlog) is current at.
    pub rev: i64,
    pub rx: broadcast::Receiver<Msg>,
}

/// The cache of one resource type.
pub struct Cacher {
    pub info: &'static ResourceInfo,
    prefix: String,
    state: Mutex<State>,
    /// The cache's revision (0 until ready), for readers waiting for it to catch up.
    rev_tx: watch::Sender<i64>,
    /// The kvstore watch id, for progress requests (0 while not watching).
    watch_id: AtomicI64,
    last_progress_request: Mutex<Option<Instant>>,
    pub kv_watches_opened: AtomicU64,
    pub events_applied: AtomicU64,
    pub relists: AtomicU64,
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Cacher {
    fn new(info: &'static ResourceInfo) -> Self {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        Cacher {
            info,
            prefix: storage::prefix(info, None),
            state: Mutex::new(State {
                ready: false,
                rev: 0,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                history_start: 0,
                tx,
            }),
            rev_tx: watch::channel(0).0,
            watch_id: AtomicI64::new(0),
            last_progress_request: Mutex::new(None),
            kv_watches_opened: AtomicU64::new(0),
            events_applied: AtomicU64::new(0),
            relists: AtomicU64::new(0),
        }
    }

    pub fn ready(&self) -> bool {
        lock(&self.state).ready
    }

    /// The cache's revision (0 until the first list).
    pub fn revision(&self) -> i64 {
        *self.rev_tx.borrow()
    }

    /// (objects, history length, history start).
    pub fn sizes(&self) -> (usize, usize, i64) {
        let s = lock(&self.state);
        (s.objects.len(), s.history.len(), s.history_start)
    }

    /// Replace the whole state with a fresh list at `rev`, ending every watcher.
    fn reset(&self, objects: BTreeMap<String, Arc<Value>>, rev: i64) {
        let mut s = lock(&self.state);
        if s.ready {
            let _ = s.tx.send(Msg::Reset);
            let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
            s.tx = tx;
        }
        s.objects = objects;
        s.history.clear();
        s.history_start = rev;
        s.rev = rev;
        s.ready = true;
        self.rev_tx.send_replace(rev);
    }

    /// Apply one kvstore watch message's events.
    fn apply(&self, events: &[kvclient::proto::Event]) {
        let mut s = lock(&self.state);
        let mut max_rev = s.rev;
        for ev in events {
            let rev = ev.kv.mod_revision;
            if rev <= s.rev {
                continue; // already reflected (a re-opened watch may repeat nothing, but be safe)
            }
            let key = ev.kv.key.clone();
            let event = match ev.type_ {
                EventType::Put => match storage::decode(&ev.kv, rev) {
                    Ok(obj) => {
                        let obj = Arc::new(obj);
                        let prev = s.objects.insert(key.clone(), obj.clone());
                        CacheEvent {
                            rev,
                            key,
                            obj,
                            prev,
                            deleted: false,
                        }
                    }
                    Err(e) => {
                        tracing::warn!(key = %ev.kv.key, error = %e.status().message, "watch cache: undecodable object skipped");
                        max_rev = max_rev.max(rev);
                        continue;
                    }
                },
                EventType::Delete => {
                    let Some(prev) = s.objects.remove(&key) else {
                        max_rev = max_rev.max(rev);
                        continue;
                    };
                    let mut last = (*prev).clone();
                    storage::set_resource_version(&mut last, rev);
                    CacheEvent {
                        rev,
                        key,
                        obj: Arc::new(last),
                        prev: Some(prev),
                        deleted: true,
                    }
                }
            };
            let event = Arc::new(event);
            s.history.push_back(event.clone());
            while s.history.len() > MAX_HISTORY {
                if let Some(old) = s.history.pop_front() {
                    s.history_start = s.history_start.max(old.rev);
                }
            }
            let _ = s.tx.send(Msg::Event(event));
            max_rev = max_rev.max(rev);
            self.events_applied.fetch_add(1, Ordering::Relaxed);
        }
        if max_rev > s.rev {
            s.rev = max_rev;
            self.rev_tx.send_replace(max_rev);
        }
    }

    /// A progress notification: nothing for this type up to `rev`.
    fn progress(&self, rev: i64) {
        let mut s = lock(&self.state);
        if rev > s.rev {
            s.rev = rev;
            self.rev_tx.send_replace(rev);
        }
        let _ = s.tx.send(Msg::Progress(s.rev));
    }

    /// Revisions below `compacted` are gone from the store: drop them from the history too.
    pub fn compacted(&self, compacted: i64) {
        let mut s = lock(&self.state);
        while s.history.front().is_some_and(|e| e.rev < compacted) {
            s.history.pop_front();
        }
        s.history_start = s.history_start.max(compacted - 1).min(s.rev);
    }

    /// The objects under `prefix` (a namespace's, or all) at the cache's revision, in key order,
    /// from key `start` (inclusive).
    pub fn snapshot(&self, prefix: &str, start: Option<&str>) -> (Vec<Arc<Value>>, i64) {
        let s = lock(&self.state);
        let from = start.unwrap_or(prefix).to_string();
        let items = s
            .objects
            .range(from..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect();
        (items, s.rev)
    }

    /// Subscribe with the current objects under `prefix` first.
    pub fn subscribe_snapshot(&self, prefix: &str) -> ApiResult<Subscription> {
        let s = lock(&self.state);
        if !s.ready {
            return Err(initializing());
        }
        let snapshot = s
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect();
        Ok(Subscription {
            snapshot,
            backlog: vec![],
            rev: s.rev,
            rx: s.tx.subscribe(),
        })
    }

    /// Subscribe to the events after `rv`; 410 Expired when the history no longer reaches back.
    pub fn subscribe_from(&self, rv: i64) -> ApiResult<Subscription> {
        let s = lock(&self.state);
        if !s.ready {
            return Err(initializing());
        }
        if rv < s.history_start {
            return Err(too_old(rv, s.history_start + 1));
        }
        let first = s.history.partition_point(|e| e.rev <= rv);
        Ok(Subscription {
            snapshot: vec![],
            backlog: s.history.range(first..).cloned().collect(),
            rev: s.rev.max(rv),
            rx: s.tx.subscribe(),
        })
    }

    /// Wait until the cache reflects revision `target`, asking the kvstore for a progress
    /// notification when it is behind. False if it did not catch up within `timeout`.
    pub async fn wait_fresh(&self, storage: &Storage, target: i64, timeout: Duration) -> bool {
        let mut rx = self.rev_tx.subscribe();
        let asked_at = Instant::now();
        let deadline = asked_at + timeout;
        loop {
            if *rx.borrow_and_update() >= target && self.ready() {
                return true;
            }
            self.request_progress(storage, asked_at).await;
            let wake = (Instant::now() + Duration::from_millis(250)).min(deadline);
            tokio::select! {
                r = rx.changed() => if r.is_err() { return false },
                _ = tokio::time::sleep_until(wake) => {}
            }
            if Instant::now() >= deadline {
                return *rx.borrow() >= target && self.ready();
            }
        }
    }

    /// Ask for a progress notification, unless one was asked for since `since`.
    async fn request_progress(&self, storage: &Storage, since: Instant) {
        let id = self.watch_id.load(Ordering::Relaxed);
        if id == 0 {
            return;
        }
        {
            let mut last = self
                .last_progress_request
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if last.is_some_and(|t| t >= since && now < t + Duration::from_millis(200)) {
                return;
            }
            *last = Some(now);
        }
        if let Err(e) = storage.kv().watch_progress(id).await {
            tracing::debug!(resource = self.info.plural, error = %e, "progress request failed");
        }
    }

    /// Keep the cache current until `shutdown`.
    async fn run(self: Arc<Self>, storage: Storage, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        'relist: loop {
            let listed = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = list_all(&storage, &self.prefix) => r,
            };
            let (objects, rev) = match listed {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(resource = self.info.plural, error = %e.status().message, "watch cache: list failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            if self.ready() {
                self.relists.fetch_add(1, Ordering::Relaxed);
            }
            self.reset(objects, rev);
            tracing::debug!(resource = self.info.plural, rev, "watch cache: listed");
            loop {
                let from = lock(&self.state).rev + 1;
                let opened = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = storage.watch(&self.prefix, from, false) => r,
                };
                let stream = match opened {
                    Ok(s) => s,
                    Err(e) if e.code() == Some(ErrorCode::Compacted) => continue 'relist,
                    Err(e) => {
                        tracing::warn!(resource = self.info.plural, error = %e, "watch cache: watch failed; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                };
                self.kv_watches_opened.fetch_add(1, Ordering::Relaxed);
                futures::pin_mut!(stream);
                loop {
                    let msg = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        m = stream.next() => m,
                    };
                    let msg = match msg {
                        Some(Ok(m)) => m,
                        Some(Err(e)) => {
                            tracing::debug!(resource = self.info.plural, error = %e, "watch cache: kvstore watch broke; reopening");
                            break;
                        }
                        None => break,
                    };
                    backoff = Duration::from_millis(100);
                    if msg.created {
                        self.watch_id.store(msg.watch_id, Ordering::Relaxed);
                        continue;
                    }
                    if msg.canceled {
                        self.watch_id.store(0, Ordering::Relaxed);
                        if msg.compact_revision > 0 {
                            continue 'relist;
                        }
                        break;
                    }
                    if msg.is_progress_notify() {
                        self.progress(msg.header.revision);
                    } else {
                        self.apply(&msg.events);
                    }
                }
                self.watch_id.store(0, Ordering::Relaxed);
            }
        }
    }
}

fn initializing() -> ApiError {
    ApiError::new(429, "TooManyRequests", "storage is (re)initializing")
}

/// Kubernetes' message for a watch from a compacted (or no longer cached) revision.
pub fn too_old(rv: i64, oldest: i64) -> ApiError {
    ApiError::gone(format!("too old resource version: {rv} ({oldest})"))
}

async fn list_all(
    storage: &Storage,
    prefix: &str,
) -> ApiResult<(BTreeMap<String, Arc<Value>>, i64)> {
    let (items, rev, _) = storage.list_matching(prefix, None, 0, 0, |_| true).await?;
    let mut out = BTreeMap::new();
    for obj in items {
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let info_key = key_of(prefix, ns, name);
        out.insert(info_key, Arc::new(obj));
    }
    Ok((out, rev))
}

/// The storage key of an object under a type's prefix.
fn key_of(prefix: &str, ns: &str, name: &str) -> String {
    if ns.is_empty() {
        format!("{prefix}{name}")
    } else {
        format!("{prefix}{ns}/{name}")
    }
}

/// The caches of every served resource type.
pub struct Caches {
    by_type: HashMap<(&'static str, &'static str), Arc<Cacher>>,
}

impl Caches {
    /// Start a cacher per resource type; they fill in the background.
    pub fn start(storage: &Storage, shutdown: &CancellationToken) -> Caches {
        let mut by_type = HashMap::new();
        for info in RESOURCES {
            let c = Arc::new(Cacher::new(info));
            tokio::spawn(c.clone().run(storage.clone(), shutdown.clone()));
            by_type.insert((info.group, info.plural), c);
        }
        Caches { by_type }
    }

    /// No caches (every read goes to the kvstore).
    pub fn empty() -> Caches {
        Caches {
            by_type: HashMap::new(),
        }
    }

    pub fn get(&self, info: &ResourceInfo) -> Option<&Arc<Cacher>> {
        self.by_type.get(&(info.group, info.plural))
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Cacher>> {
        self.by_type.values()
    }

    /// After a compaction to `rev`.
    pub fn compacted(&self, rev: i64) {
        for c in self.by_type.values() {
            c.compacted(rev);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvclient::proto::{Event as KvEvent, KeyValue};
    use serde_json::json;

    fn put(key: &str, rev: i64, v: Value) -> KvEvent {
        KvEvent {
            type_: EventType::Put,
            kv: KeyValue {
                key: key.into(),
                mod_revision: rev,
                value: v.to_string(),
                ..Default::default()
            },
            prev_kv: None,
        }
    }

    fn del(key: &str, rev: i64) -> KvEvent {
        KvEvent {
            type_: EventType::Delete,
            kv: KeyValue {
                key: key.into(),
                mod_revision: rev,
                ..Default::default()
            },
            prev_kv: None,
        }
    }

    fn cm(name: &str, v: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default"}, "data": {"k": v}})
    }

    #[test]
    fn events_update_objects_history_and_subscribers() {
        let c = Cacher::new(&api::resource::CONFIG_MAP);
        c.reset(BTreeMap::new(), 10);
        let k = "/registry/configmaps/default/a";
        let mut early = c.subscribe_from(10).unwrap();
        c.apply(&[put(k, 11, cm("a", "1"))]);
        c.apply(&[
            put(k, 12, cm("a", "2")),
            put("/registry/configmaps/x/b", 12, cm("b", "1")),
        ]);
        c.apply(&[del(k, 13)]);
        assert_eq!(c.revision(), 13);
        let (snap, rev) = c.snapshot("/registry/configmaps/", None);
        assert_eq!((snap.len(), rev), (1, 13));
        assert_eq!(snap[0]["metadata"]["resourceVersion"], "12");

        // Resume after 11: the modification, the other namespace's add, the deletion.
        let sub = c.subscribe_from(11).unwrap();
        let seen: Vec<(i64, bool)> = sub.backlog.iter().map(|e| (e.rev, e.deleted)).collect();
        assert_eq!(seen, [(12, false), (12, false), (13, true)]);
        let deleted = &sub.backlog[2];
        assert_eq!(deleted.obj["metadata"]["resourceVersion"], "13");
        assert_eq!(deleted.obj["data"]["k"], "2", "the last state");

        // A subscriber from before got the same events live.
        let mut revs = vec![];
        while let Ok(Msg::Event(e)) = early.rx.try_recv() {
            revs.push(e.rev);
        }
        assert_eq!(revs, [11, 12, 12, 13]);
    }

    #[test]
    fn compaction_trims_history_and_old_watches_expire() {
        let c = Cacher::new(&api::resource::CONFIG_MAP);
        c.reset(BTreeMap::new(), 10);
        for rev in 11..=20 {
            c.apply(&[put("/registry/configmaps/default/a", rev, cm("a", "x"))]);
        }
        assert!(c.subscribe_from(10).is_ok());
        assert_eq!(
            c.subscribe_from(9).err().map(|e| e.status().code),
            Some(410)
        );
        c.compacted(15);
        let err = c.subscribe_from(13).err().unwrap();
        assert_eq!(
            (err.status().code, err.status().reason.as_str()),
            (410, "Expired")
        );
        assert_eq!(err.status().message, "too old resource version: 13 (15)");
        let sub = c.subscribe_from(14).unwrap();
        assert_eq!(sub.backlog.first().map(|e| e.rev), Some(15));
        assert_eq!(c.sizes().1, 6);
    }

    #[test]
    fn progress_moves_the_revision_and_reaches_subscribers() {
        let c = Cacher::new(&api::resource::POD);
        c.reset(BTreeMap::new(), 5);
        let mut sub = c.subscribe_snapshot("/registry/pods/").unwrap();
        c.progress(9);
        assert_eq!(c.revision(), 9);
        assert!(matches!(sub.rx.try_recv(), Ok(Msg::Progress(9))));
        c.reset(BTreeMap::new(), 12);
        assert!(matches!(sub.rx.try_recv(), Ok(Msg::Reset)));
    }
}
