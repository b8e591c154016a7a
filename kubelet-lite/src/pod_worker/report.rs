//! What a worker reports: the pod status (a merge patch), the state file, the logs registry.

use super::*;

impl Worker {
    pub(super) fn save_state(&self) {
        let rec = PodRecord {
            uid: self.uid.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            pod_ip: self.ip.map(|i| i.to_string()).unwrap_or_default(),
            containers: self
                .containers
                .iter()
                .filter_map(|c| {
                    let r = c.running.as_ref()?;
                    Some((
                        c.name.clone(),
                        ProcRecord {
                            pid: r.pid,
                            pgid: r.pgid,
                            start_ticks: r.start_ticks,
                            boot_id: self.ctx.boot_id.clone(),
                            restart_count: c.restart_count,
                            started_at: Some(r.started_at),
                            shim_dir: r
                                .shim
                                .as_ref()
                                .map(|s| s.dir.display().to_string())
                                .unwrap_or_default(),
                        },
                    ))
                })
                .collect(),
        };
        if let Err(e) = self.ctx.state.save(&rec) {
            tracing::warn!(pod = %self.key(), error = %e, "cannot write the pod's state file");
        }
    }

    /// Tell the logs endpoint about this pod.
    pub(super) fn publish(&self) {
        let containers = self
            .containers
            .iter()
            .map(|c| {
                let log = c
                    .running
                    .as_ref()
                    .map(|r| r.log.clone())
                    .or_else(|| c.last_log.clone());
                let waiting_reason = match &c.current {
                    Current::Waiting { reason, .. } => reason.clone(),
                    _ => String::new(),
                };
                let exec = c.running.as_ref().map(|r| ExecTarget {
                    container_id: r.id.clone(),
                    env: c.probe_target.env.clone(),
                    working_dir: c.probe_target.working_dir.clone(),
                    cgroup: r.cgroup.clone(),
                    container_exit: Some(r.exit.clone()),
                });
                (
                    c.name.clone(),
                    ContainerEntry {
                        restart_count: c.restart_count,
                        log,
                        waiting_reason,
                        exec,
                    },
                )
            })
            .collect();
        self.ctx.registry.publish(
            &self.namespace,
            &self.name,
            PodEntry {
                uid: self.uid.clone(),
                ip: self.ip,
                containers,
            },
        );
    }

    /// Write the status if it differs from the stored one.
    pub(super) async fn write_status(&mut self, terminating: bool) {
        if self.terminal {
            return;
        }
        let views: Vec<ContainerView> = self.containers.iter().map(Container::view).collect();
        let facts = PodFactsForStatus {
            pod_ip: self.ip.map(|i| i.to_string()).unwrap_or_default(),
            host_ip: self.ctx.node_ip.clone(),
            sandbox_ready: self.ip.is_some(),
            start_time: self.start_time,
            terminating,
        };
        let old = self.pod.status.clone();
        let new = status::pod_status(&self.pod, old.as_ref(), &views, &facts, Time::now());
        let old_v = serde_json::to_value(&old).unwrap_or(Value::Null);
        let new_v = serde_json::to_value(&new).unwrap_or(Value::Null);
        let Some(diff) = status::merge_patch(&old_v, &new_v) else {
            if status::is_terminal(&new.phase) {
                self.terminal = true;
            }
            return;
        };
        let patch = json!({
            "metadata": {"resourceVersion": self.pod.metadata.resource_version},
            "status": diff,
        });
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        match api.patch_status(&self.name, &Patch::Merge(&patch)).await {
            Ok(p) => {
                tracing::debug!(pod = %self.key(), phase = %new.phase, "status written");
                if old.as_ref().map(|o| o.phase.as_str()) != Some(new.phase.as_str()) {
                    tracing::info!(pod = %self.key(), phase = %new.phase, "pod phase changed");
                }
                self.observe(Arc::new(p));
                if status::is_terminal(&new.phase) {
                    self.terminal = true;
                }
            }
            Err(e) if e.is_conflict() => {
                // Someone else wrote the pod since we last saw it: read it and try again.
                tracing::debug!(pod = %self.key(), "status conflict; re-reading the pod");
                match api.get_opt(&self.name).await {
                    Ok(Some(p)) if p.metadata.uid == self.uid => {
                        self.pod = Arc::new(p);
                        self.wake_at(Instant::now());
                    }
                    Ok(_) => {} // gone or replaced: the watch will say so
                    Err(_) => self.wake_at(Instant::now() + Duration::from_secs(1)),
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                tracing::warn!(pod = %self.key(), error = %e, "cannot write pod status; retrying");
                self.wake_at(Instant::now() + Duration::from_secs(1));
            }
        }
    }
}
