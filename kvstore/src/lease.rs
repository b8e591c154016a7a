//! Lease deadlines (in memory, like etcd's lessor) and the leader's expiry loop.
//!
//! Leases themselves (id, TTL, attached keys) live in the state machine. Deadlines do not: each
//! member sets `now + TTL` when it applies a grant or loads its store, and a member that
//! becomes leader refreshes every deadline to `now + TTL`, so a leader change never expires a
//! lease early. Only the leader acts on expiry, by proposing a revoke through Raft, so every
//! member deletes the keys at the same revision.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::command::{CmdResponse, Command};
use crate::mvcc::LeaseChange;
use crate::raft::RaftNode;

/// How often the leader looks for expired leases.
const CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// How long a revoke may be in flight before the loop proposes it again.
const RETRY_AFTER: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug)]
struct Timer {
    ttl: i64,
    deadline: Instant,
}

#[derive(Default)]
pub struct Leases {
    timers: Mutex<HashMap<i64, Timer>>,
}

fn deadline(now: Instant, ttl: i64) -> Instant {
    now + Duration::from_secs(ttl.max(0) as u64)
}

impl Leases {
    pub fn new() -> Leases {
        Leases::default()
    }

    fn timers(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Timer>> {
        self.timers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replace every timer with the given leases, each expiring TTL from now.
    pub fn load(&self, leases: &[(i64, i64)]) {
        let now = Instant::now();
        let mut t = self.timers();
        t.clear();
        for (id, ttl) in leases {
            t.insert(
                *id,
                Timer {
                    ttl: *ttl,
                    deadline: deadline(now, *ttl),
                },
            );
        }
    }

    /// Follow grants and revokes applied by the state machine.
    pub fn apply(&self, changes: &[LeaseChange]) {
        if changes.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut t = self.timers();
        for c in changes {
            match c {
                LeaseChange::Granted { id, ttl } => {
                    t.insert(
                        *id,
                        Timer {
                            ttl: *ttl,
                            deadline: deadline(now, *ttl),
                        },
                    );
                }
                LeaseChange::Revoked { id } => {
                    t.remove(id);
                }
            }
        }
    }

    /// On becoming leader: every lease gets its full TTL again.
    pub fn refresh_all(&self) {
        let now = Instant::now();
        for timer in self.timers().values_mut() {
            timer.deadline = deadline(now, timer.ttl);
        }
    }

    /// Reset a lease's deadline; its TTL, or `None` if there is no such lease.
    pub fn keep_alive(&self, id: i64) -> Option<i64> {
        let now = Instant::now();
        let mut t = self.timers();
        let timer = t.get_mut(&id)?;
        timer.deadline = deadline(now, timer.ttl);
        Some(timer.ttl)
    }

    /// Remaining seconds (rounded up) and granted TTL.
    pub fn time_to_live(&self, id: i64) -> Option<(i64, i64)> {
        let t = self.timers();
        let timer = t.get(&id)?;
        let left = timer.deadline.saturating_duration_since(Instant::now());
        Some((left.as_secs_f64().ceil() as i64, timer.ttl))
    }

    fn expired(&self, now: Instant) -> Vec<i64> {
        self.timers()
            .iter()
            .filter(|(_, t)| t.deadline <= now)
            .map(|(id, _)| *id)
            .collect()
    }
}

/// The leader's expiry loop: refresh deadlines when leadership is gained, then propose a
/// revoke for every expired lease. Ends when `shutdown` is cancelled.
pub async fn expiry_loop(leases: Arc<Leases>, node: Arc<RaftNode>, shutdown: CancellationToken) {
    let mut was_leader = false;
    let mut term = 0;
    let in_flight: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
    let mut tick = tokio::time::interval(CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (now_term, is_leader) = node.term();
        if !is_leader {
            was_leader = false;
            continue;
        }
        if !was_leader || now_term != term {
            leases.refresh_all();
            was_leader = true;
            term = now_term;
            continue;
        }
        let now = Instant::now();
        let expired = leases.expired(now);
        let mut pending: HashSet<i64> = HashSet::new();
        {
            let mut f = in_flight.lock().unwrap_or_else(|e| e.into_inner());
            f.retain(|_, since| now.duration_since(*since) < RETRY_AFTER);
            for id in expired {
                if let std::collections::hash_map::Entry::Vacant(v) = f.entry(id) {
                    v.insert(now);
                    pending.insert(id);
                }
            }
        }
        for id in pending {
            let node = node.clone();
            let in_flight = in_flight.clone();
            tokio::spawn(async move {
                tracing::debug!(lease = id, "lease expired, revoking");
                match node.propose(Command::LeaseRevoke { id }).await {
                    Ok(Ok(CmdResponse::LeaseRevoke { .. })) | Ok(Err(_)) => {
                        // Revoked, or already gone: forget it once applied.
                        in_flight
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&id);
                    }
                    other => {
                        tracing::warn!(lease = id, "revoking expired lease failed: {other:?}");
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_grants_keepalives_and_refresh() {
        let l = Leases::new();
        l.apply(&[LeaseChange::Granted { id: 1, ttl: 5 }]);
        assert_eq!(l.time_to_live(1), Some((5, 5)));
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(l.time_to_live(1), Some((2, 5)));
        assert_eq!(l.keep_alive(1), Some(5));
        assert_eq!(l.time_to_live(1), Some((5, 5)));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(l.expired(Instant::now()), [1]);
        l.refresh_all();
        assert!(l.expired(Instant::now()).is_empty());
        l.apply(&[LeaseChange::Revoked { id: 1 }]);
        assert_eq!(l.time_to_live(1), None);
        assert_eq!(l.keep_alive(1), None);
    }
}
