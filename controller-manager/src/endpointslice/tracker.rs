//! What the controller last wrote to each Service's slices, so that it never plans from a
//! cache that has not seen those writes yet (Kubernetes' `EndpointSliceTracker`): slices are
//! created with `generateName`, so a sync on a stale cache would create a second slice where
//! the server would not notice anything wrong.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::discovery::EndpointSlice;

/// How long an expectation is kept when the cache never shows it (someone else deleted or
/// changed the slice meanwhile): then the cache is trusted again.
const EXPECTATION_TTL: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Expect {
    /// The resourceVersion written (None: deleted).
    rv: Option<u64>,
    at: Instant,
}

#[derive(Debug, Default)]
pub struct Tracker {
    /// Service key → slice name → what was written.
    written: Mutex<HashMap<String, HashMap<String, Expect>>>,
}

impl Tracker {
    fn record(&self, svc: &str, slice: &str, rv: Option<u64>) {
        if let Ok(mut w) = self.written.lock() {
            w.entry(svc.to_string()).or_default().insert(
                slice.to_string(),
                Expect {
                    rv,
                    at: Instant::now(),
                },
            );
        }
    }

    /// A slice was created or updated at this resourceVersion.
    pub fn wrote(&self, svc: &str, slice: &EndpointSlice) {
        self.record(
            svc,
            &slice.metadata.name,
            Some(slice.metadata.resource_version_u64()),
        );
    }

    pub fn deleted(&self, svc: &str, slice: &str) {
        self.record(svc, slice, None);
    }

    /// Whether the cache (`cached`: the Service's slices in it) is behind this controller's
    /// own writes. Expectations the cache has met, or that are too old, are dropped.
    pub fn is_stale(&self, svc: &str, cached: &[Arc<EndpointSlice>]) -> bool {
        let Ok(mut w) = self.written.lock() else {
            return false;
        };
        let Some(expects) = w.get_mut(svc) else {
            return false;
        };
        expects.retain(|name, e| {
            let seen = cached.iter().find(|s| &s.metadata.name == name);
            let met = match (e.rv, seen) {
                (Some(rv), Some(s)) => s.metadata.resource_version_u64() >= rv,
                (Some(_), None) => false,
                (None, seen) => seen.is_none(),
            };
            !met && e.at.elapsed() < EXPECTATION_TTL
        });
        let stale = !expects.is_empty();
        if !stale {
            w.remove(svc);
        }
        stale
    }

    /// The Service is gone: nothing more to expect.
    pub fn forget(&self, svc: &str) {
        if let Ok(mut w) = self.written.lock() {
            w.remove(svc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(name: &str, rv: u64) -> Arc<EndpointSlice> {
        let mut s = EndpointSlice::default();
        s.metadata.name = name.into();
        s.metadata.resource_version = rv.to_string();
        Arc::new(s)
    }

    #[test]
    fn stale_until_the_cache_shows_our_writes() {
        let t = Tracker::default();
        assert!(!t.is_stale("default/web", &[]));
        t.wrote("default/web", &slice("web-a", 10));
        assert!(t.is_stale("default/web", &[]), "created, not cached yet");
        assert!(
            t.is_stale("default/web", &[slice("web-a", 9)]),
            "older version"
        );
        assert!(!t.is_stale("default/web", &[slice("web-a", 10)]));
        t.deleted("default/web", "web-a");
        assert!(
            t.is_stale("default/web", &[slice("web-a", 10)]),
            "deleted, still cached"
        );
        assert!(!t.is_stale("default/web", &[]));
    }
}
