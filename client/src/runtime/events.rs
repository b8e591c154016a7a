//! Records core/v1 Events about objects, as client-go's `EventRecorder` with its correlator:
//! a repeat of the same event within ten minutes bumps `count` instead of creating a new one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::core::{Event, EventSource, ObjectReference};
use api::meta::{MicroTime, Time};
use api::{ObjectMeta, Resource};

use crate::api::{Api, Patch};
use crate::client::Client;

/// A reference to an object, for `involvedObject`.
pub fn object_ref<K: Resource>(obj: &K) -> ObjectReference {
    ObjectReference {
        kind: K::INFO.kind.to_string(),
        namespace: obj.meta().namespace.clone(),
        name: obj.meta().name.clone(),
        uid: obj.meta().uid.clone(),
        api_version: K::INFO.api_version(),
        resource_version: obj.meta().resource_version.clone(),
        field_path: String::new(),
    }
}

/// A recently written event: (name, namespace, count, when).
type Seen = (String, String, i32, Instant);

#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: String,
    host: String,
    seen: Arc<Mutex<HashMap<String, Seen>>>,
    /// Events waiting to be written; full means dropped, as client-go's broadcaster does.
    queue: tokio::sync::mpsc::Sender<Pending>,
}

/// An event waiting to be written.
struct Pending {
    obj: ObjectReference,
    type_: String,
    reason: String,
    message: String,
}

const CORRELATION_WINDOW: Duration = Duration::from_secs(600);
/// client-go's broadcaster queue length.
const QUEUE_LENGTH: usize = 1000;
/// Events written at once.
const WRITERS: usize = 4;

impl Recorder {
    /// `component` is the reporter (`default-scheduler`, `kubelet`, …); `host` the node, if any.
    /// Must be called inside a Tokio runtime: it starts the tasks that write the events.
    pub fn new(client: Client, component: &str, host: &str) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel::<Pending>(QUEUE_LENGTH);
        let rec = Recorder {
            client,
            component: component.to_string(),
            host: host.to_string(),
            seen: Arc::new(Mutex::new(HashMap::new())),
            queue: tx,
        };
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..WRITERS {
            let (this, rx) = (rec.clone(), rx.clone());
            tokio::spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some(p) = next else { return };
                    if let Err(e) = this.write(&p.obj, &p.type_, &p.reason, &p.message).await {
                        tracing::debug!(error = %e, reason = %p.reason, "failed to record event");
                    }
                }
            });
        }
        rec
    }

    /// A Normal event.
    pub fn normal(&self, obj: &ObjectReference, reason: &str, message: impl Into<String>) {
        self.record(obj, "Normal", reason, message.into());
    }

    /// A Warning event.
    pub fn warning(&self, obj: &ObjectReference, reason: &str, message: impl Into<String>) {
        self.record(obj, "Warning", reason, message.into());
    }

    /// Record in the background: an event that cannot be written (or does not fit in the
    /// queue) is logged, never fatal — events are best-effort, as in Kubernetes.
    pub fn record(&self, obj: &ObjectReference, type_: &str, reason: &str, message: String) {
        let p = Pending {
            obj: obj.clone(),
            type_: type_.to_string(),
            reason: reason.to_string(),
            message,
        };
        if self.queue.try_send(p).is_err() {
            tracing::debug!(%reason, "event queue full; dropping the event");
        }
    }

    /// Write the event now (create, or bump the count of a recent identical one).
    pub async fn write(
        &self,
        obj: &ObjectReference,
        type_: &str,
        reason: &str,
        message: &str,
    ) -> crate::Result<()> {
        // Events about cluster-scoped objects live in "default", as in Kubernetes.
        let ns = if obj.namespace.is_empty() {
            "default"
        } else {
            obj.namespace.as_str()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        let key = format!(
            "{}/{}/{}/{}/{}/{}",
            obj.kind, ns, obj.name, obj.uid, reason, message
        );
        let now = Time::now();
        let previous = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.retain(|_, v| v.3.elapsed() < CORRELATION_WINDOW);
            seen.get(&key).cloned()
        };
        if let Some((name, ns_seen, count, _)) = previous {
            let patch = serde_json::json!({"count": count + 1, "lastTimestamp": now});
            if Api::<Event>::namespaced(self.client.clone(), &ns_seen)
                .patch(&name, &Patch::Merge(&patch))
                .await
                .is_ok()
            {
                self.remember(key, name, ns_seen, count + 1);
                return Ok(());
            }
        }
        let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let mut ev = Event {
            metadata: ObjectMeta::namespaced(ns, format!("{}.{:x}", obj.name, nanos)),
            involved_object: obj.clone(),
            reason: reason.to_string(),
            message: message.to_string(),
            source: EventSource {
                component: self.component.clone(),
                host: self.host.clone(),
            },
            first_timestamp: Some(now),
            last_timestamp: Some(now),
            count: 1,
            type_: type_.to_string(),
            event_time: Some(MicroTime::now()),
            reporting_component: self.component.clone(),
            reporting_instance: if self.host.is_empty() {
                self.component.clone()
            } else {
                self.host.clone()
            },
            ..Default::default()
        };
        ev.set_type_meta();
        let created = api.create(&ev).await?;
        self.remember(key, created.metadata.name, ns.to_string(), 1);
        Ok(())
    }

    fn remember(&self, key: String, name: String, ns: String, count: i32) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.insert(key, (name, ns, count, Instant::now()));
    }
}
