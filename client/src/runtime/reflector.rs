//! A local cache of objects kept current from watcher events: one writer, many readers.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use api::Resource;
use tokio::sync::watch;

use super::key_of;
use super::watcher::Event;

/// A read handle on the cache. Cheap to clone.
pub struct Store<K> {
    map: Arc<RwLock<HashMap<String, Arc<K>>>>,
    ready: watch::Receiver<bool>,
}

impl<K> Clone for Store<K> {
    fn clone(&self) -> Self {
        Store {
            map: self.map.clone(),
            ready: self.ready.clone(),
        }
    }
}

impl<K: Resource> Store<K> {
    /// By `namespace/name` (or `name`).
    pub fn get(&self, key: &str) -> Option<Arc<K>> {
        self.map.read().ok()?.get(key).cloned()
    }

    pub fn list(&self) -> Vec<Arc<K>> {
        self.map
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Objects in one namespace.
    pub fn list_namespace(&self, ns: &str) -> Vec<Arc<K>> {
        self.map
            .read()
            .map(|m| {
                m.values()
                    .filter(|o| o.meta().namespace == ns)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.map.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wait until the first list has been loaded.
    pub async fn wait_ready(&self) {
        let mut r = self.ready.clone();
        let _ = r.wait_for(|v| *v).await;
    }

    /// [`Store::wait_ready`] as an owned future (to wait on many stores at once).
    pub fn wait_ready_owned(self) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(async move { self.wait_ready().await })
    }

    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }
}

/// The single writer of a [`Store`].
pub struct Writer<K> {
    map: Arc<RwLock<HashMap<String, Arc<K>>>>,
    ready: watch::Sender<bool>,
}

/// What an event changed, for change handlers.
pub enum Change<K> {
    Applied { old: Option<Arc<K>>, new: Arc<K> },
    Deleted(Arc<K>),
}

impl<K: Resource> Writer<K> {
    pub fn new() -> (Writer<K>, Store<K>) {
        let map = Arc::new(RwLock::new(HashMap::new()));
        let (tx, rx) = watch::channel(false);
        (
            Writer {
                map: map.clone(),
                ready: tx,
            },
            Store { map, ready: rx },
        )
    }

    /// Apply an event and return what changed (a relist becomes adds/updates/deletes).
    pub fn apply(&self, ev: Event<K>) -> Vec<Change<K>> {
        let Ok(mut map) = self.map.write() else {
            return vec![];
        };
        let mut changes = Vec::new();
        match ev {
            Event::Applied(k) => {
                let new = Arc::new(k);
                let old = map.insert(key_of(new.meta()), new.clone());
                changes.push(Change::Applied { old, new });
            }
            Event::Deleted(k) => {
                let key = key_of(k.meta());
                let gone = map.remove(&key).unwrap_or_else(|| Arc::new(k));
                changes.push(Change::Deleted(gone));
            }
            Event::Restarted(items) => {
                let mut fresh: HashMap<String, Arc<K>> = HashMap::with_capacity(items.len());
                for k in items {
                    fresh.insert(key_of(k.meta()), Arc::new(k));
                }
                for (key, old) in map.iter() {
                    if !fresh.contains_key(key) {
                        changes.push(Change::Deleted(old.clone()));
                    }
                }
                for (key, new) in fresh.iter() {
                    let old = map.get(key).cloned();
                    if old.as_ref().map(|o| &o.meta().resource_version)
                        != Some(&new.meta().resource_version)
                    {
                        changes.push(Change::Applied {
                            old,
                            new: new.clone(),
                        });
                    }
                }
                *map = fresh;
                drop(map);
                self.ready.send_replace(true);
            }
        }
        changes
    }
}
