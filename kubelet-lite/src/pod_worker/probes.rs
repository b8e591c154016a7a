//! Running due probes and acting on them (readiness, or a kill for a failed liveness/startup probe).

use super::*;

impl Worker {
    /// Run the probes that are due; act on what they say (readiness, or a restart).
    pub(super) async fn run_probes(&mut self) {
        for i in 0..self.containers.len() {
            let now = Instant::now();
            let key = self.key();
            let c = &mut self.containers[i];
            let Some(running) = &c.running else { continue };
            if let Some(at) = c.kill_at {
                if now >= at {
                    tracing::info!(pod = %key, container = %c.name, "grace period over; killing");
                    self.ctx.runtime.stop(running, Duration::ZERO);
                    c.kill_at = None;
                } else {
                    self.wake_at(at);
                }
                continue;
            }
            let Some(due) = c.probes.as_ref().map(|p| p.due(now)) else {
                continue;
            };
            let target = c.probe_target.clone();
            let name = c.name.clone();
            for (kind, probe) in due {
                let result = prober::check(&probe, &target, self.ctx.runtime.as_ref()).await;
                if let Err(msg) = &result {
                    tracing::debug!(pod = %self.key(), container = %name, probe = kind.title(), %msg, "probe failed");
                    self.event_warning(
                        Some(&name),
                        "Unhealthy",
                        format!("{} probe failed: {msg}", kind.title()),
                    );
                }
                let Some(p) = self.containers[i].probes.as_mut() else {
                    break;
                };
                match p.record(kind, result.is_ok(), Instant::now()) {
                    Action::None => {}
                    Action::Ready(ready) => {
                        tracing::info!(pod = %self.key(), container = %name, ready, "container readiness changed");
                    }
                    Action::Restart => {
                        self.kill_for_probe(i, kind, &probe);
                        break;
                    }
                }
            }
            if let Some(t) = self.containers[i]
                .probes
                .as_ref()
                .and_then(Probes::next_due)
            {
                self.wake_at(t);
            }
        }
    }

    /// A failed liveness or startup probe: SIGTERM now, SIGKILL after the grace period; the
    /// exit is then a restart like any other (restart policy, backoff).
    pub(super) fn kill_for_probe(&mut self, i: usize, kind: Kind, probe: &api::core::Probe) {
        let name = self.containers[i].name.clone();
        let what = if kind == Kind::Startup {
            "startup"
        } else {
            "liveness"
        };
        tracing::info!(pod = %self.key(), container = %name, probe = what, "probe failed its threshold; killing the container");
        self.event_normal(
            Some(&name),
            "Killing",
            format!("Container {name} failed {what} probe, will be restarted"),
        );
        let grace = probe
            .termination_grace_period_seconds
            .or(self.pod.spec.termination_grace_period_seconds)
            .unwrap_or(DEFAULT_GRACE)
            .max(0) as u64;
        let at = Instant::now() + Duration::from_secs(grace);
        let c = &mut self.containers[i];
        if let Some(r) = &c.running {
            self.ctx.runtime.stop(r, Duration::from_secs(grace));
        }
        if let Some(p) = c.probes.as_mut() {
            p.stop();
        }
        c.kill_at = Some(at);
        self.wake_at(at);
    }
}
