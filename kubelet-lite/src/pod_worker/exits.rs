//! Reaping container exits: record the termination, decide about a restart (policy, backoff).

use super::*;

impl Worker {
    /// Record the exits of containers that stopped since the last look.
    pub(super) fn reap_exits(&mut self) {
        let policy = self.policy();
        let restarts_allowed =
            !self.terminal && !self.stopping && self.pod.metadata.deletion_timestamp.is_none();
        let key = self.key();
        let mut changed = false;
        let mut oom_events = Vec::new();
        for c in &mut self.containers {
            let Some(exit) = c.running.as_ref().and_then(Running::exited) else {
                continue;
            };
            let Some(r) = c.running.take() else { continue };
            self.ctx.runtime.release(&r);
            let cgroup_oom = r.cgroup.as_ref().is_some_and(|cg| {
                let killed = cgroups::oom_kills(cg) > 0;
                cgroups::remove(cg);
                killed
            });
            let mut term = status::termination(
                exit.exit_code,
                exit.signal,
                Some(r.started_at),
                exit.finished_at,
                &self.ctx.runtime.status_id(&r.id),
            );
            if cgroup_oom {
                term.reason = "OOMKilled".into();
            } else if let Some(reason) = &exit.reason {
                term.reason = reason.clone();
            }
            let oom_killed = term.reason == "OOMKilled";
            tracing::info!(pod = %key, container = %c.name, pid = r.pid, exit_code = exit.exit_code,
                signal = exit.signal, oom_killed, "container exited");
            if oom_killed {
                oom_events.push(c.name.clone());
            }
            c.prev_term = c.last_term.take();
            c.last_term = Some(term);
            c.current = Current::Exited;
            c.last_log = Some(r.log.clone());
            c.probes = None;
            c.kill_at = None;
            if restarts_allowed && status::should_restart(&policy, exit.exit_code) {
                let ran_for = exit.finished.saturating_duration_since(r.started);
                let delay = c.backoff.exited(exit.finished, ran_for);
                tracing::info!(pod = %key, container = %c.name, delay = %go_duration(delay), "container will be restarted");
            }
            changed = true;
        }
        for name in oom_events {
            self.event_warning(
                Some(&name),
                "OOMKilled",
                format!("Container {name} was killed for using more memory than its limit"),
            );
        }
        if changed {
            self.save_state();
        }
    }
}
