//! Lifecycle hooks: a container's `preStop` runs before it is sent SIGTERM (pod deletion), as
//! the kubelet does, inside the grace period: `exec` in the container, `httpGet`/`tcpSocket`
//! against the pod (through the prober's checks), `sleep`. Hooks of all containers run side
//! by side; a failed hook is a `FailedPreStopHook` event and the container is stopped anyway.
//! (A hook that hangs is cut off at the end of the grace period.)

use super::*;

impl Worker {
    /// Run the running containers' preStop hooks, each cut off at `deadline`; `false` when
    /// there were none.
    pub(super) async fn run_pre_stop_hooks(&self, deadline: Instant) -> bool {
        let mut hooks = Vec::new();
        for c in &self.containers {
            let Some(running) = &c.running else { continue };
            let Some(hook) = self
                .pod
                .spec
                .containers
                .iter()
                .find(|s| s.name == c.name)
                .and_then(|s| s.lifecycle_hooks())
                .and_then(|l| l.pre_stop)
            else {
                continue;
            };
            let name = c.name.clone();
            let target = c.probe_target.clone();
            let id = running.id.clone();
            let runtime = self.ctx.runtime.clone();
            hooks.push(async move {
                let budget = deadline.saturating_duration_since(Instant::now());
                let r =
                    tokio::time::timeout(budget, run_hook(&hook, &id, &target, &*runtime, budget))
                        .await
                        .unwrap_or_else(|_| Err("the grace period ended first".into()));
                (name, hook, r)
            });
        }
        if hooks.is_empty() {
            return false;
        }
        tracing::info!(pod = %self.key(), hooks = hooks.len(), "running preStop hooks");
        for (name, hook, r) in futures::future::join_all(hooks).await {
            match r {
                Ok(()) => tracing::info!(pod = %self.key(), container = %name, "preStop hook done"),
                Err(e) => {
                    let what = match &hook {
                        h if h.exec.is_some() => format!(
                            "Exec lifecycle hook ({:?})",
                            h.exec
                                .as_ref()
                                .map(|e| e.command.clone())
                                .unwrap_or_default()
                        ),
                        h if h.http_get.is_some() => "HTTP lifecycle hook".to_string(),
                        h if h.sleep.is_some() => "Sleep lifecycle hook".to_string(),
                        _ => "Lifecycle hook".to_string(),
                    };
                    let msg = format!(
                        "{what} for Container {name:?} in Pod {:?} failed - error: {e}",
                        format!("{}_{}({})", self.name, self.namespace, self.uid)
                    );
                    tracing::warn!(pod = %self.key(), container = %name, error = %e, "preStop hook failed");
                    self.event_warning(Some(&name), "FailedPreStopHook", msg);
                }
            }
        }
        true
    }
}

/// One hook, to its end (the caller bounds it).
async fn run_hook(
    hook: &api::core::LifecycleHandler,
    container_id: &str,
    target: &prober::Target,
    runtime: &dyn crate::runtime::Runtime,
    budget: Duration,
) -> Result<(), String> {
    if let Some(s) = &hook.sleep {
        if s.seconds < 0 {
            return Err(format!("invalid sleep duration {}s", s.seconds));
        }
        tokio::time::sleep(Duration::from_secs(s.seconds as u64)).await;
        return Ok(());
    }
    // exec, httpGet and tcpSocket are what probes do: one check, for as long as the grace
    // period lasts.
    let probe = api::core::Probe {
        exec: hook.exec.clone(),
        http_get: hook.http_get.clone(),
        tcp_socket: hook.tcp_socket.clone(),
        timeout_seconds: i32::try_from(budget.as_secs().max(1)).unwrap_or(i32::MAX),
        ..Default::default()
    };
    let t = prober::Target {
        container_id: container_id.to_string(),
        ..target.clone()
    };
    prober::check(&probe, &t, runtime).await
}
