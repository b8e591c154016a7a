//! When pods leave a tainted node, and how fast nodes may be emptied: toleration arithmetic and
//! the zone-state rate limiting Kubernetes uses so that a network partition does not empty the
//! whole cluster at once.

use std::time::{Duration, Instant};

use api::core::{Pod, Taint};
use chrono::{DateTime, Utc};

use super::{NOT_READY, UNREACHABLE};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneState {
    Normal,
    /// More than the unhealthy threshold of nodes are not ready: evict slowly (or not at all
    /// in small clusters).
    PartialDisruption,
    /// Every node is not ready: most likely the control plane is cut off; evict nothing.
    FullDisruption,
}

pub fn zone_state(nodes: usize, not_ready: usize, unhealthy_threshold: f64) -> ZoneState {
    if nodes == 0 || not_ready == 0 {
        ZoneState::Normal
    } else if not_ready == nodes {
        ZoneState::FullDisruption
    } else if not_ready as f64 / nodes as f64 >= unhealthy_threshold && not_ready > 2 {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    }
}

fn tolerates(t: &api::core::Toleration, taint: &Taint) -> bool {
    (t.effect.is_empty() || t.effect == taint.effect)
        && (t.key.is_empty() || t.key == taint.key)
        && match t.operator.as_str() {
            "Exists" => true,
            _ => t.value == taint.value,
        }
}

/// When the pod must leave a node with these NoExecute taints (None: it may stay forever).
/// A pod without its own toleration of the unreachable / not-ready taints gets the default.
pub fn eviction_deadline(pod: &Pod, taints: &[&Taint], default: Duration) -> Option<DateTime<Utc>> {
    let mut deadline: Option<DateTime<Utc>> = None;
    for taint in taints {
        let added = taint.time_added.map(|t| t.0).unwrap_or_else(Utc::now);
        let matching: Vec<&api::core::Toleration> = pod
            .spec
            .tolerations
            .iter()
            .filter(|t| tolerates(t, taint))
            .collect();
        let seconds = if matching.is_empty() {
            if taint.key == UNREACHABLE || taint.key == NOT_READY {
                Some(default.as_secs() as i64)
            } else {
                Some(0)
            }
        } else if matching.iter().any(|t| t.toleration_seconds.is_none()) {
            None
        } else {
            matching.iter().filter_map(|t| t.toleration_seconds).min()
        };
        if let Some(s) = seconds {
            let when = added + chrono::Duration::seconds(s.max(0));
            deadline = Some(deadline.map_or(when, |d| d.min(when)));
        }
    }
    deadline
}

/// A token bucket of one token, refilled at `rate` per second: nodes let through per second.
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: f64) -> Self {
        TokenBucket {
            rate,
            tokens: 1.0,
            last: Instant::now(),
        }
    }

    pub fn set_rate(&mut self, rate: f64) {
        self.refill();
        self.rate = rate;
    }

    fn refill(&mut self) {
        let dt = self.last.elapsed().as_secs_f64();
        self.last = Instant::now();
        self.tokens = (self.tokens + dt * self.rate).min(1.0);
    }

    pub fn try_take(&mut self) -> bool {
        self.refill();
        if self.rate > 0.0 && self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::core::Toleration;
    use api::meta::Time;

    fn taint(key: &str, added: i64) -> Taint {
        Taint {
            key: key.into(),
            effect: "NoExecute".into(),
            value: String::new(),
            time_added: Some(Time(DateTime::from_timestamp(added, 0).unwrap())),
        }
    }

    #[test]
    fn deadlines_follow_tolerations() {
        let t = taint(UNREACHABLE, 1000);
        let mut pod = Pod::default();
        let d = eviction_deadline(&pod, &[&t], Duration::from_secs(300)).unwrap();
        assert_eq!(d.timestamp(), 1300, "the default toleration");
        pod.spec.tolerations.push(Toleration {
            key: UNREACHABLE.into(),
            operator: "Exists".into(),
            effect: "NoExecute".into(),
            toleration_seconds: Some(5),
            ..Default::default()
        });
        assert_eq!(
            eviction_deadline(&pod, &[&t], Duration::from_secs(300))
                .unwrap()
                .timestamp(),
            1005
        );
        pod.spec.tolerations[0].toleration_seconds = None;
        assert_eq!(
            eviction_deadline(&pod, &[&t], Duration::from_secs(300)),
            None,
            "tolerated forever"
        );
        let other = taint("dedicated", 2000);
        assert_eq!(
            eviction_deadline(&Pod::default(), &[&other], Duration::from_secs(300))
                .unwrap()
                .timestamp(),
            2000,
            "untolerated: at once"
        );
    }

    #[test]
    fn zone_states() {
        assert_eq!(zone_state(10, 0, 0.55), ZoneState::Normal);
        assert_eq!(zone_state(2, 1, 0.55), ZoneState::Normal);
        assert_eq!(zone_state(10, 6, 0.55), ZoneState::PartialDisruption);
        assert_eq!(zone_state(3, 3, 0.55), ZoneState::FullDisruption);
    }

    #[test]
    fn bucket_limits_and_stops() {
        let mut b = TokenBucket::new(0.1);
        assert!(b.try_take());
        assert!(!b.try_take(), "the next node waits 10 s");
        b.set_rate(0.0);
        assert!(!b.try_take());
    }
}
