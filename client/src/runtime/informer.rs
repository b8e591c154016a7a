//! An informer: a watcher feeding a reflector store, calling change handlers after each change
//! (handlers only map changes to work-queue keys; the work happens in controllers).

use std::sync::{Arc, Mutex};

use api::Resource;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::reflector::{Change, Store, Writer};
use super::watcher::watcher;
use crate::api::{Api, ListParams};

type Handler<K> = Box<dyn Fn(&Change<K>) + Send + Sync>;

pub struct Informer<K: Resource> {
    api: Api<K>,
    params: ListParams,
    writer: Writer<K>,
    store: Store<K>,
    handlers: Arc<Mutex<Vec<Handler<K>>>>,
}

impl<K: Resource> Informer<K> {
    pub fn new(api: Api<K>, params: ListParams) -> Self {
        let (writer, store) = Writer::new();
        Informer {
            api,
            params,
            writer,
            store,
            handlers: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Register a handler; call before [`Informer::run`].
    pub fn on_change(&self, f: impl Fn(&Change<K>) + Send + Sync + 'static) {
        if let Ok(mut h) = self.handlers.lock() {
            h.push(Box::new(f));
        }
    }

    /// Run until `shutdown`: keep the store current and call the handlers.
    pub async fn run(self, shutdown: CancellationToken) {
        let stream = watcher(self.api.clone(), self.params.clone());
        futures::pin_mut!(stream);
        loop {
            let ev = tokio::select! {
                _ = shutdown.cancelled() => return,
                ev = stream.next() => ev,
            };
            let Some(ev) = ev else { return };
            let changes = self.writer.apply(ev);
            if let Ok(handlers) = self.handlers.lock() {
                for c in &changes {
                    for h in handlers.iter() {
                        h(c);
                    }
                }
            }
        }
    }

    /// Spawn [`Informer::run`] and return the store.
    pub fn spawn(self, shutdown: CancellationToken) -> Store<K> {
        let store = self.store();
        tokio::spawn(self.run(shutdown));
        store
    }
}
