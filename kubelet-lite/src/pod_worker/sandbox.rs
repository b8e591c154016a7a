//! The pod's sandbox: with a runtime that makes them (CRI), a pod sandbox holding the pod's
//! network namespace and IP, made again (with every container) when it dies, as the kubelet
//! does after "SandboxChanged"; otherwise a loopback IP from the node's pod CIDR.

use super::*;

impl Worker {
    fn has_sandbox(&self) -> bool {
        self.sandbox.is_some() || self.ip.is_some()
    }

    /// Make sure the pod has a live sandbox; `false` when it has none yet (retry scheduled).
    pub(super) async fn ensure_sandbox(&mut self) -> bool {
        if let Some(sb) = self.sandbox.clone()
            && self.ctx.runtime.sandbox_ready(&sb).await == Ok(false)
        {
            tracing::info!(pod = %self.key(), sandbox = %sb.id, "pod sandbox is gone; making a new one");
            self.event_normal(
                None,
                "SandboxChanged",
                "Pod sandbox changed, it will be killed and re-created.".into(),
            );
            self.stop_all(Duration::ZERO);
            self.wait_all_exited(Instant::now() + KILL_WAIT).await;
            if let Err(e) = self.ctx.runtime.remove_sandbox(&sb).await {
                tracing::warn!(pod = %self.key(), sandbox = %sb.id, error = %e, "cannot remove a dead sandbox");
            }
            self.sandbox = None;
            self.ip = None;
        }
        if self.has_sandbox() {
            return true;
        }
        match self
            .ctx
            .runtime
            .run_sandbox(&self.pod, self.sandbox_attempts)
            .await
        {
            Ok(Some(sb)) => {
                self.sandbox_attempts = sb.attempt + 1;
                self.sandbox_failures = 0;
                // Host-network pods have the node's address.
                self.ip = sb.ip.parse().ok().or_else(|| self.ctx.node_ip.parse().ok());
                tracing::info!(pod = %self.key(), sandbox = %sb.id, ip = %sb.ip, "pod sandbox ready");
                self.sandbox = Some(sb);
                self.save_state();
                true
            }
            Ok(None) => {
                let r = self.ctx.ips().allocate(&self.uid);
                match r {
                    Ok(ip) => {
                        tracing::info!(pod = %self.key(), ip = %ip, "pod IP allocated");
                        self.ip = Some(IpAddr::V4(ip));
                        self.save_state();
                        true
                    }
                    Err(e) => {
                        tracing::warn!(pod = %self.key(), error = %e, "cannot allocate a pod IP");
                        self.event_warning(None, "FailedCreatePodSandBox", e);
                        self.wake_at(Instant::now() + Duration::from_secs(5));
                        false
                    }
                }
            }
            Err(e) => {
                let delay = Duration::from_secs(1 << self.sandbox_failures.min(5));
                self.sandbox_failures += 1;
                tracing::warn!(pod = %self.key(), error = %e, retry_in = ?delay, "cannot create the pod sandbox");
                self.event_warning(
                    None,
                    "FailedCreatePodSandBox",
                    format!("Failed to create pod sandbox: {e}"),
                );
                self.wake_at(Instant::now() + delay);
                false
            }
        }
    }
}
