//! Controller expectations, as Kubernetes' `ControllerExpectations`: after creating or deleting
//! N pods a controller waits until the watch has shown it all N before acting on that owner
//! again, so watch lag never makes it create or delete twice.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Expectations older than this are considered satisfied (a lost watch event must not wedge).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
struct Expected {
    add: i64,
    del: i64,
    set_at: Instant,
}

#[derive(Default)]
pub struct Expectations {
    map: Mutex<HashMap<String, Expected>>,
}

impl Expectations {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Expected>) -> R) -> R {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut m)
    }

    /// True when the controller may act on `key` again.
    pub fn satisfied(&self, key: &str) -> bool {
        self.with(|m| match m.get(key) {
            None => true,
            Some(e) => (e.add <= 0 && e.del <= 0) || e.set_at.elapsed() > EXPECTATIONS_TIMEOUT,
        })
    }

    pub fn expect(&self, key: &str, add: i64, del: i64) {
        self.with(|m| {
            m.insert(
                key.to_string(),
                Expected {
                    add,
                    del,
                    set_at: Instant::now(),
                },
            );
        });
    }

    fn adjust(&self, key: &str, add: i64, del: i64) {
        self.with(|m| {
            if let Some(e) = m.get_mut(key) {
                e.add += add;
                e.del += del;
            }
        });
    }

    /// The watch showed a pod this owner created (or a create failed and will not be seen).
    pub fn creation_observed(&self, key: &str) {
        self.adjust(key, -1, 0);
    }

    pub fn deletion_observed(&self, key: &str) {
        self.adjust(key, 0, -1);
    }

    pub fn forget(&self, key: &str) {
        self.with(|m| {
            m.remove(key);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn satisfied_once_everything_is_observed() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/rs"));
        e.expect("ns/rs", 2, 0);
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(e.satisfied("ns/rs"));
        e.expect("ns/rs", 0, 1);
        e.deletion_observed("ns/rs");
        assert!(e.satisfied("ns/rs"));
    }
}
