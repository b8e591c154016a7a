//! Heartbeats as the node lifecycle controller sees them: the local time at which a node's
//! Lease `renewTime` or Ready `lastHeartbeatTime` last *changed* (Kubernetes' probeTimestamp),
//! so clock differences between machines never make a node look dead or alive.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use api::coordination::Lease;
use api::core::Node;

#[derive(Debug, Clone)]
struct Seen {
    heartbeat: Option<String>,
    lease_renew: Option<String>,
    probe: Instant,
}

#[derive(Default)]
pub struct HealthTracker {
    nodes: HashMap<String, Seen>,
}

/// Whether a node has been silent for longer than the grace period.
pub fn is_silent(last_probe: Instant, now: Instant, grace: Duration) -> bool {
    now.saturating_duration_since(last_probe) > grace
}

impl HealthTracker {
    pub fn retain_nodes<'a>(&mut self, names: impl Iterator<Item = &'a str>) {
        let keep: HashSet<&str> = names.collect();
        self.nodes.retain(|n, _| keep.contains(n.as_str()));
    }

    /// Record what the node and its Lease say now; true when the node is silent.
    pub fn observe(
        &mut self,
        node: &Node,
        lease: Option<&Lease>,
        now: Instant,
        grace: Duration,
    ) -> bool {
        let heartbeat = node
            .condition("Ready")
            .and_then(|c| c.last_heartbeat_time)
            .map(|t| t.to_string());
        let lease_renew = lease
            .and_then(|l| l.spec.renew_time)
            .map(|t| format!("{:?}", t.0));
        let seen = self
            .nodes
            .entry(node.metadata.name.clone())
            .or_insert(Seen {
                heartbeat: heartbeat.clone(),
                lease_renew: lease_renew.clone(),
                probe: now,
            });
        if seen.heartbeat != heartbeat || seen.lease_renew != lease_renew {
            seen.heartbeat = heartbeat;
            seen.lease_renew = lease_renew;
            seen.probe = now;
        }
        is_silent(seen.probe, now, grace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::coordination::LeaseSpec;
    use api::meta::MicroTime;

    #[test]
    fn silent_only_after_the_grace_period_without_changes() {
        let mut h = HealthTracker::default();
        let mut node = Node::default();
        node.metadata.name = "n".into();
        let t0 = Instant::now();
        let grace = Duration::from_secs(40);
        let lease = |s: i64| Lease {
            spec: LeaseSpec {
                renew_time: Some(MicroTime(chrono::DateTime::from_timestamp(s, 0).unwrap())),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(!h.observe(&node, Some(&lease(1)), t0, grace));
        assert!(!h.observe(&node, Some(&lease(1)), t0 + Duration::from_secs(30), grace));
        // The lease renews: the clock restarts even though 50 s passed since the first probe.
        assert!(!h.observe(&node, Some(&lease(2)), t0 + Duration::from_secs(50), grace));
        assert!(!h.observe(&node, Some(&lease(2)), t0 + Duration::from_secs(89), grace));
        assert!(h.observe(&node, Some(&lease(2)), t0 + Duration::from_secs(91), grace));
    }
}
