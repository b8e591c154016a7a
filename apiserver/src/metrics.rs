//! `/metrics` in the Prometheus text format, with Kubernetes' metric names where there is one:
//! requests by verb, resource and code with their latency, registered watchers, and the watch
//! cache and compaction figures (which show, for instance, that a thousand watchers cost one
//! kvstore watch per resource type).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::cache::Caches;

/// Upper bounds of the request latency histogram (seconds), a subset of Kubernetes'.
const BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// (verb, group, resource, subresource).
type Series = (String, String, String, String);

#[derive(Default)]
pub struct Metrics {
    /// (series, code) → count.
    requests: Mutex<BTreeMap<(Series, u16), u64>>,
    /// series → latency.
    latency: Mutex<BTreeMap<Series, Histogram>>,
    /// (group, kind) → open client watches.
    watchers: Mutex<BTreeMap<(String, String), i64>>,
    pub watch_events_sent: AtomicU64,
    pub compactions: AtomicU64,
    pub compaction_failures: AtomicU64,
    pub compacted_revision: AtomicI64,
    /// Lists served from the watch cache and from the kvstore.
    pub lists_from_cache: AtomicU64,
    pub lists_from_storage: AtomicU64,
}

/// The labels of one request.
#[derive(Clone, Debug, Default)]
pub struct RequestLabels {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
}

impl RequestLabels {
    fn series(&self) -> Series {
        (
            self.verb.clone(),
            self.group.clone(),
            self.resource.clone(),
            self.subresource.clone(),
        )
    }
}

impl Metrics {
    pub fn observe(&self, l: &RequestLabels, code: u16, took: Duration) {
        {
            let mut r = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            *r.entry((l.series(), code)).or_default() += 1;
        }
        let secs = took.as_secs_f64();
        let mut h = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let h = h.entry(l.series()).or_default();
        if h.counts.is_empty() {
            h.counts = vec![0; BUCKETS.len()];
        }
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// A client watch opened; the guard counts it until dropped.
    pub fn watcher(self: &std::sync::Arc<Self>, group: &str, kind: &str) -> WatcherGuard {
        let key = (group.to_string(), kind.to_string());
        *self
            .watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default() += 1;
        WatcherGuard {
            metrics: self.clone(),
            key,
        }
    }

    /// Open client watches of one kind.
    pub fn watchers_of(&self, kind: &str) -> i64 {
        self.watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|((_, k), _)| k == kind)
            .map(|(_, n)| *n)
            .sum()
    }

    pub fn render(&self, caches: &Caches) -> String {
        let mut out = String::new();
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        out.push_str("# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, group, resource, subresource and HTTP response code.\n# TYPE apiserver_request_total counter\n");
        for (((verb, group, resource, sub), code), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "apiserver_request_total{{code=\"{code}\",group=\"{}\",resource=\"{}\",subresource=\"{}\",verb=\"{}\",version=\"v1\"}} {n}",
                esc(group),
                esc(resource),
                esc(sub),
                esc(verb)
            );
        }
        out.push_str("# HELP apiserver_request_duration_seconds Response latency distribution in seconds for each verb, group, resource and subresource.\n# TYPE apiserver_request_duration_seconds histogram\n");
        for ((verb, group, resource, sub), h) in self
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let labels = format!(
                "group=\"{}\",resource=\"{}\",subresource=\"{}\",verb=\"{}\",version=\"v1\"",
                esc(group),
                esc(resource),
                esc(sub),
                esc(verb)
            );
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "apiserver_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}",
                    h.counts.get(i).copied().unwrap_or(0)
                );
            }
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        out.push_str("# HELP apiserver_registered_watchers Number of currently registered watchers for a given resources\n# TYPE apiserver_registered_watchers gauge\n");
        for ((group, kind), n) in self
            .watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "apiserver_registered_watchers{{group=\"{}\",kind=\"{}\",version=\"v1\"}} {n}",
                esc(group),
                esc(kind)
            );
        }
        let _ = writeln!(
            out,
            "# HELP apiserver_watch_events_total Number of events sent in watch clients\n# TYPE apiserver_watch_events_total counter\napiserver_watch_events_total {}",
            self.watch_events_sent.load(Ordering::Relaxed)
        );
        let mut caches: Vec<_> = caches.all().collect();
        caches.sort_by_key(|c| (c.info.group, c.info.plural));
        out.push_str("# HELP apiserver_storage_objects Number of stored objects at the time of last check split by kind.\n# TYPE apiserver_storage_objects gauge\n");
        for c in &caches {
            let _ = writeln!(
                out,
                "apiserver_storage_objects{{resource=\"{}\"}} {}",
                c.info.qualified_plural(),
                c.sizes().0
            );
        }
        out.push_str("# HELP apiserver_watch_cache_kvstore_watches_total kvstore watches the watch cache opened (one per resource type, plus re-opens after a broken stream).\n# TYPE apiserver_watch_cache_kvstore_watches_total counter\n");
        for c in &caches {
            let _ = writeln!(
                out,
                "apiserver_watch_cache_kvstore_watches_total{{resource=\"{}\"}} {}",
                c.info.qualified_plural(),
                c.kv_watches_opened.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP apiserver_watch_cache_events_received_total Counter of events received in watch cache broken by resource type.\n# TYPE apiserver_watch_cache_events_received_total counter\n");
        for c in &caches {
            let _ = writeln!(
                out,
                "apiserver_watch_cache_events_received_total{{resource=\"{}\"}} {}",
                c.info.qualified_plural(),
                c.events_applied.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP apiserver_watch_cache_initializations_total Counter of watch cache initializations broken by resource type.\n# TYPE apiserver_watch_cache_initializations_total counter\n");
        for c in &caches {
            let _ = writeln!(
                out,
                "apiserver_watch_cache_initializations_total{{resource=\"{}\"}} {}",
                c.info.qualified_plural(),
                c.relists.load(Ordering::Relaxed) + u64::from(c.ready())
            );
        }
        out.push_str("# HELP apiserver_watch_cache_resource_version Current resource version of watch cache broken by resource type.\n# TYPE apiserver_watch_cache_resource_version gauge\n");
        for c in &caches {
            let _ = writeln!(
                out,
                "apiserver_watch_cache_resource_version{{resource=\"{}\"}} {}",
                c.info.qualified_plural(),
                c.revision()
            );
        }
        out.push_str("# HELP apiserver_watch_cache_history_events Events kept in the watch cache's history window.\n# TYPE apiserver_watch_cache_history_events gauge\n");
        for c in &caches {
            let _ = writeln!(
                out,
                "apiserver_watch_cache_history_events{{resource=\"{}\"}} {}",
                c.info.qualified_plural(),
                c.sizes().1
            );
        }
        let _ = writeln!(
            out,
            "# HELP apiserver_list_served_total Lists served, by source.\n# TYPE apiserver_list_served_total counter\napiserver_list_served_total{{source=\"cache\"}} {}\napiserver_list_served_total{{source=\"storage\"}} {}",
            self.lists_from_cache.load(Ordering::Relaxed),
            self.lists_from_storage.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP apiserver_storage_compactions_total Compactions of the kvstore by this API server.\n# TYPE apiserver_storage_compactions_total counter\napiserver_storage_compactions_total {}",
            self.compactions.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP apiserver_storage_compaction_failures_total Failed compactions.\n# TYPE apiserver_storage_compaction_failures_total counter\napiserver_storage_compaction_failures_total {}",
            self.compaction_failures.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP apiserver_storage_compacted_revision The revision the kvstore was last compacted to.\n# TYPE apiserver_storage_compacted_revision gauge\napiserver_storage_compacted_revision {}",
            self.compacted_revision.load(Ordering::Relaxed)
        );
        out
    }
}

pub struct WatcherGuard {
    metrics: std::sync::Arc<Metrics>,
    key: (String, String),
}

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        if let Some(n) = self
            .metrics
            .watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&self.key)
        {
            *n -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_watchers_are_counted() {
        let m = std::sync::Arc::new(Metrics::default());
        let l = RequestLabels {
            verb: "list".into(),
            resource: "pods".into(),
            ..Default::default()
        };
        m.observe(&l, 200, Duration::from_millis(30));
        m.observe(&l, 200, Duration::from_millis(3));
        let g = m.watcher("", "Pod");
        let _g2 = m.watcher("", "Pod");
        assert_eq!(m.watchers_of("Pod"), 2);
        drop(g);
        assert_eq!(m.watchers_of("Pod"), 1);
        let caches = Caches::empty();
        let text = m.render(&caches);
        assert!(text.contains("apiserver_request_total{code=\"200\",group=\"\",resource=\"pods\",subresource=\"\",verb=\"list\",version=\"v1\"} 2"), "{text}");
        assert!(text.contains("apiserver_request_duration_seconds_bucket{group=\"\",resource=\"pods\",subresource=\"\",verb=\"list\",version=\"v1\",le=\"0.005\"} 1"), "{text}");
        assert!(
            text.contains(
                "apiserver_registered_watchers{group=\"\",kind=\"Pod\",version=\"v1\"} 1"
            )
        );
    }
}
