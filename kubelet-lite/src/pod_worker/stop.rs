//! Stopping: graceful termination on deletion, cleanup when the pod is gone, kubelet shutdown.

use super::*;

impl Worker {
    pub(super) fn grace_period(&self) -> Duration {
        let spec = self
            .pod
            .spec
            .termination_grace_period_seconds
            .unwrap_or(DEFAULT_GRACE);
        let deletion = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .unwrap_or(spec);
        Duration::from_secs(spec.min(deletion).max(0) as u64)
    }

    /// The pod is being deleted: stop its containers gracefully, then remove the object.
    pub(super) async fn terminate(
        &mut self,
        updates: &mut watch::Receiver<PodUpdate>,
        shutdown: &CancellationToken,
    ) -> Flow {
        self.next_wake = None;
        self.reap_exits();
        let mut gone = false;
        if self.any_running() {
            let started = Instant::now();
            let mut deadline = started + self.grace_period();
            tracing::info!(pod = %self.key(), grace = ?self.grace_period(), "stopping the pod's containers");
            for c in &self.containers {
                if c.running.is_some() {
                    self.event_normal(
                        Some(&c.name),
                        "Killing",
                        format!("Stopping container {}", c.name),
                    );
                }
            }
            // preStop hooks first, inside the grace period; SIGTERM then gets what is left (at
            // least 2 s when the hooks used it all, as the kubelet gives).
            let hooked = self.run_pre_stop_hooks(deadline).await;
            let now = Instant::now();
            if hooked && now + Duration::from_secs(2) > deadline {
                deadline = now + Duration::from_secs(2);
            }
            self.stop_all(deadline.saturating_duration_since(now));
            let mut killed_at: Option<Instant> = None;
            loop {
                self.reap_exits();
                if !self.any_running() {
                    break;
                }
                let now = Instant::now();
                if killed_at.is_none() && now >= deadline {
                    tracing::info!(pod = %self.key(), "grace period over; killing");
                    self.stop_all(Duration::ZERO);
                    killed_at = Some(now);
                }
                if killed_at.is_some_and(|k| now >= k + KILL_WAIT) {
                    tracing::error!(pod = %self.key(), "processes still there after SIGKILL; giving up on them");
                    break;
                }
                let until = killed_at.map_or(deadline, |k| k + KILL_WAIT);
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep_until(until.into()) => {}
                    r = updates.changed() => {
                        let latest = updates.borrow_and_update().clone();
                        match latest {
                            PodUpdate::Gone => gone = true,
                            PodUpdate::Present(p) => {
                                self.observe(p);
                                deadline = deadline.min(started + self.grace_period());
                            }
                        }
                        if (gone || r.is_err()) && killed_at.is_none() {
                            self.stop_all(Duration::ZERO);
                            killed_at = Some(Instant::now());
                        }
                    }
                    _ = shutdown.cancelled(), if killed_at.is_none() && deadline > Instant::now() + self.ctx.shutdown_grace => {
                        deadline = Instant::now() + self.ctx.shutdown_grace;
                    }
                }
            }
        }
        self.stop_sandbox().await;
        self.publish();
        if gone {
            return Flow::Gone;
        }
        if !self.delete_sent {
            self.write_status(true).await;
            let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
            let opts = DeleteOptions {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(self.uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match api.delete(&self.name, &opts).await {
                Ok(_) => {
                    tracing::info!(pod = %self.key(), "containers stopped; pod deleted");
                    self.delete_sent = true;
                }
                Err(e) if e.is_not_found() || e.is_conflict() => return Flow::Gone,
                Err(e) => {
                    tracing::warn!(pod = %self.key(), error = %e, "cannot delete the pod; retrying");
                    self.wake_at(Instant::now() + Duration::from_secs(1));
                }
            }
        }
        if shutdown.is_cancelled() {
            return Flow::Shutdown;
        }
        Flow::Continue
    }

    /// Wait until no container runs, or `until`.
    pub(super) async fn wait_all_exited(&mut self, until: Instant) {
        loop {
            self.reap_exits();
            if !self.any_running() || Instant::now() >= until {
                return;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(until.into()) => {}
            }
        }
    }

    /// The pod is gone from the API server: kill everything now and clean up.
    pub(super) async fn gone(&mut self) {
        self.stopping = true;
        self.reap_exits();
        if self.any_running() {
            tracing::info!(pod = %self.key(), "pod gone from the API server; killing its containers");
            self.stop_all(Duration::ZERO);
            self.wait_all_exited(Instant::now() + KILL_WAIT).await;
        }
        if self.any_running() {
            tracing::error!(pod = %self.key(), "containers did not exit after SIGKILL");
            self.save_state();
            return;
        }
        if let Some(sb) = self.sandbox.take()
            && let Err(e) = self.ctx.runtime.remove_sandbox(&sb).await
        {
            tracing::warn!(pod = %self.key(), sandbox = %sb.id, error = %e, "cannot remove the pod sandbox");
        }
        let ip = self.ctx.ips().release(&self.uid);
        self.ctx.state.remove(&self.uid);
        self.ctx
            .registry
            .remove(&self.namespace, &self.name, &self.uid);
        let dir = self.ctx.dirs.pod(&self.uid);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(pod = %self.key(), dir = %dir.display(), error = %e, "cannot remove the pod's sandbox");
        }
        tracing::info!(pod = %self.key(), ip = ?ip, "pod cleaned up");
    }

    /// The kubelet stops: stop the processes, keep the state (IP) for the next start.
    pub(super) async fn shutdown(&mut self) {
        self.stopping = true;
        self.reap_exits();
        if self.any_running() {
            tracing::info!(pod = %self.key(), "kubelet stopping; stopping the pod's containers");
            self.stop_all(self.ctx.shutdown_grace);
            self.wait_all_exited(Instant::now() + self.ctx.shutdown_grace)
                .await;
            if self.any_running() {
                self.stop_all(Duration::ZERO);
                self.wait_all_exited(Instant::now() + KILL_WAIT).await;
            }
        }
        self.stop_sandbox().await;
        self.save_state();
    }

    /// Stop the sandbox's processes and release its network, once its containers are done.
    pub(super) async fn stop_sandbox(&self) {
        if let Some(sb) = &self.sandbox
            && let Err(e) = self.ctx.runtime.stop_sandbox(sb).await
        {
            tracing::warn!(pod = %self.key(), sandbox = %sb.id, error = %e, "cannot stop the pod sandbox");
        }
    }
}
