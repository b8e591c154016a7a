//! Crash-loop backoff per container, as the kubelet's: the first restart is immediate, then
//! base, 2×base, … up to max; a container that ran long enough (10 min) starts over.

use std::time::{Duration, Instant};

/// How long a container must run before its backoff is forgotten.
pub const RESET_AFTER: Duration = Duration::from_secs(600);

#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    /// The delay the next restart after an exit gets; None until the first restart.
    next: Option<Duration>,
    /// The delay decided at the last exit, and until when it runs.
    last: Duration,
    until: Option<Instant>,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max: max.max(base),
            next: None,
            last: Duration::ZERO,
            until: None,
        }
    }

    /// The container exited at `finished` after running `ran_for`: decide how long the restart
    /// waits. Returns the delay (zero for an immediate restart).
    pub fn exited(&mut self, finished: Instant, ran_for: Duration) -> Duration {
        if ran_for >= RESET_AFTER {
            self.next = None;
        }
        let delay = match self.next {
            // Kubernetes restarts immediately the first time and records the base delay.
            None => Duration::ZERO,
            Some(d) => d,
        };
        self.next = Some(match self.next {
            None => self.base,
            Some(d) => d.saturating_mul(2).min(self.max),
        });
        self.last = delay;
        self.until = Some(finished + delay);
        delay
    }

    /// The delay being waited out at `now`, for the CrashLoopBackOff message; None when the
    /// container may start.
    pub fn waiting(&self, now: Instant) -> Option<Duration> {
        self.in_backoff(now).then_some(self.last)
    }

    /// When the container may start again (None: it never had to wait).
    pub fn ready_at(&self) -> Option<Instant> {
        self.until
    }

    pub fn in_backoff(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now < u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_base_to_max_after_an_immediate_first_restart() {
        let base = Duration::from_secs(10);
        let mut b = Backoff::new(base, Duration::from_secs(300));
        let t = Instant::now();
        let short = Duration::from_secs(1);
        let delays: Vec<u64> = (0..8).map(|_| b.exited(t, short).as_secs()).collect();
        assert_eq!(delays, vec![0, 10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn waiting_reports_the_delay_being_waited() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(300));
        let t = Instant::now();
        b.exited(t, Duration::ZERO);
        assert!(!b.in_backoff(t), "first restart is immediate");
        assert_eq!(b.waiting(t), None);
        b.exited(t, Duration::ZERO);
        assert!(b.in_backoff(t));
        assert_eq!(b.waiting(t), Some(Duration::from_secs(10)));
        assert_eq!(b.ready_at(), Some(t + Duration::from_secs(10)));
        assert!(!b.in_backoff(t + Duration::from_secs(10)));
        b.exited(t, Duration::ZERO);
        assert_eq!(b.waiting(t), Some(Duration::from_secs(20)));
        for _ in 0..10 {
            b.exited(t, Duration::ZERO);
        }
        assert_eq!(b.waiting(t), Some(Duration::from_secs(300)));
    }

    #[test]
    fn a_long_run_resets_the_backoff() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let t = Instant::now();
        for _ in 0..5 {
            b.exited(t, Duration::ZERO);
        }
        assert_eq!(b.exited(t, RESET_AFTER), Duration::ZERO);
        assert_eq!(b.exited(t, Duration::ZERO), Duration::from_secs(1));
    }
}
