//! TTL leases for events, as Kubernetes' etcd3 `leaseManager`: events expire `--event-ttl` after
//! their last write because their keys are attached to a kvstore lease. Granting one lease per
//! write would flood the store with leases, so a lease is shared by every write in a short
//! window: it is granted for `ttl + reuse`, and reused while it still has at least `ttl` to live
//! (and has fewer than [`MAX_KEYS_PER_LEASE`] writes), so every key lives at least `ttl` and at
//! most `ttl + reuse`.

use std::sync::Mutex;
use std::time::Duration;

use kvclient::KvClient;
use kvclient::proto::LeaseGrantRequest;
use tokio::time::Instant;

use crate::error::ApiResult;

/// Kubernetes' `LeaseMaxObjectCount` default.
pub const MAX_KEYS_PER_LEASE: u64 = 1000;
/// Kubernetes reuses a lease for 5% of the TTL (at most a minute).
const REUSE_PERCENT: u64 = 5;
const MAX_REUSE: Duration = Duration::from_secs(60);

#[derive(Clone, Copy)]
struct Current {
    id: i64,
    expires: Instant,
    uses: u64,
}

pub struct LeaseManager {
    ttl: Duration,
    reuse: Duration,
    current: Mutex<Option<Current>>,
    /// Serialises grants so concurrent writers share one new lease.
    grant: tokio::sync::Mutex<()>,
}

impl LeaseManager {
    pub fn new(ttl: Duration) -> Self {
        let ttl = ttl.max(Duration::from_secs(1));
        let reuse = (ttl * REUSE_PERCENT as u32 / 100).clamp(Duration::from_secs(1), MAX_REUSE);
        LeaseManager {
            ttl,
            reuse,
            current: Mutex::new(None),
            grant: tokio::sync::Mutex::new(()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn reusable(&self) -> Option<i64> {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let c = cur.as_mut()?;
        let left = c.expires.saturating_duration_since(Instant::now());
        if left >= self.ttl && c.uses < MAX_KEYS_PER_LEASE {
            c.uses += 1;
            Some(c.id)
        } else {
            None
        }
    }

    /// A lease id that keeps a key written now for at least the TTL.
    pub async fn lease(&self, kv: &KvClient) -> ApiResult<i64> {
        if let Some(id) = self.reusable() {
            return Ok(id);
        }
        let _g = self.grant.lock().await;
        if let Some(id) = self.reusable() {
            return Ok(id);
        }
        let granted_for = self.ttl + self.reuse;
        let started = Instant::now();
        let resp = kv
            .lease_grant(&LeaseGrantRequest {
                ttl: granted_for.as_secs().max(1) as i64,
                id: 0,
            })
            .await?;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(Current {
            id: resp.id,
            expires: started + Duration::from_secs(resp.ttl.max(0) as u64),
            uses: 1,
        });
        tracing::debug!(lease = resp.id, ttl = resp.ttl, "granted an event lease");
        Ok(resp.id)
    }

    /// The current lease is unusable (the store no longer has it): grant a new one next time.
    pub fn forget(&self) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuse_window_is_five_percent_within_bounds() {
        assert_eq!(
            LeaseManager::new(Duration::from_secs(3600)).reuse,
            Duration::from_secs(60)
        );
        assert_eq!(
            LeaseManager::new(Duration::from_secs(600)).reuse,
            Duration::from_secs(30)
        );
        assert_eq!(
            LeaseManager::new(Duration::from_secs(3)).reuse,
            Duration::from_secs(1)
        );
    }

    #[test]
    fn a_fresh_lease_is_reused_until_it_has_less_than_the_ttl_left() {
        let m = LeaseManager::new(Duration::from_secs(100));
        assert_eq!(m.reusable(), None);
        *m.current.lock().unwrap() = Some(Current {
            id: 7,
            expires: Instant::now() + Duration::from_secs(104),
            uses: 1,
        });
        assert_eq!(m.reusable(), Some(7));
        *m.current.lock().unwrap() = Some(Current {
            id: 7,
            expires: Instant::now() + Duration::from_secs(99),
            uses: 1,
        });
        assert_eq!(m.reusable(), None, "would expire before the TTL");
        *m.current.lock().unwrap() = Some(Current {
            id: 7,
            expires: Instant::now() + Duration::from_secs(104),
            uses: MAX_KEYS_PER_LEASE,
        });
        assert_eq!(m.reusable(), None, "full");
        m.forget();
        assert!(m.current.lock().unwrap().is_none());
    }
}
