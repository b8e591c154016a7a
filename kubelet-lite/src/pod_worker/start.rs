//! Starting containers: whether one should run now (restart policy, crash-loop backoff), its
//! environment and command, and the runtime call.

use super::*;

impl Worker {
    pub(super) async fn sync_container(&mut self, i: usize) {
        let now = Instant::now();
        let policy = self.policy();
        let pod_label = format!("{}_{}({})", self.name, self.namespace, self.uid);
        let c = &mut self.containers[i];
        if c.running.is_some() {
            return;
        }
        let want = match &c.current {
            Current::Running { .. } => true,
            Current::Exited => c
                .last_term
                .as_ref()
                .is_none_or(|t| status::should_restart(&policy, t.exit_code)),
            Current::Waiting { reason, .. } => match reason.as_str() {
                "ContainerCreating" | "CrashLoopBackOff" => true,
                _ => c.retry_at.is_none_or(|t| now >= t),
            },
        };
        if !want {
            if let Some(t) = c.retry_at {
                self.wake_at(t);
            }
            return;
        }
        if c.backoff.in_backoff(now) {
            let delay = c.backoff.waiting(now).unwrap_or_default();
            let name = c.name.clone();
            c.set_waiting(
                "CrashLoopBackOff",
                format!(
                    "back-off {} restarting failed container={name} pod={pod_label}",
                    go_duration(delay)
                ),
            );
            let until = c.backoff.ready_at();
            let first_time = c.backoff_event_for != until;
            c.backoff_event_for = until;
            if first_time {
                tracing::info!(pod = %self.key(), container = %name, delay = %go_duration(delay), "back-off restarting failed container");
                self.event_warning(
                    Some(&name),
                    "BackOff",
                    format!("Back-off restarting failed container {name} in pod {pod_label}"),
                );
            }
            if let Some(t) = until {
                self.wake_at(t);
            }
            return;
        }
        self.start_container(i).await;
    }

    /// A container cannot be created (config error …): wait, and try again soon.
    pub(super) fn container_error(&mut self, i: usize, reason: &str, message: String) {
        let base = self.ctx.restart_backoff_base;
        let key = self.key();
        let c = &mut self.containers[i];
        let name = c.name.clone();
        let first = !matches!(&c.current, Current::Waiting { reason: r, message: m } if r == reason && *m == message);
        c.set_waiting(reason, message.clone());
        // 1 s, 2 s, 4 s … up to the restart backoff base: quick to notice a fix.
        let delay = Duration::from_secs(1)
            .saturating_mul(1 << c.error_streak.min(10))
            .min(base.max(Duration::from_secs(1)));
        c.error_streak += 1;
        let at = Instant::now() + delay;
        c.retry_at = Some(at);
        self.wake_at(at);
        if first {
            tracing::warn!(pod = %key, container = %name, %reason, %message, "cannot create container");
        }
        // Image errors are named by their reason (`Error: ErrImageNeverPull`), the others by
        // what went wrong, as the kubelet's events.
        let shown = if reason.starts_with("ErrImage") {
            reason.to_string()
        } else {
            message
        };
        self.event_warning(Some(&name), "Failed", format!("Error: {shown}"));
    }

    pub(super) async fn start_container(&mut self, i: usize) {
        let key = self.key();
        let name = self.containers[i].name.clone();
        let Some(spec) = self
            .pod
            .spec
            .containers
            .iter()
            .find(|c| c.name == name)
            .cloned()
        else {
            return;
        };
        // The ConfigMaps the environment refers to, straight from the API server.
        let mut cms = ConfigMaps::new();
        let cm_api: Api<ConfigMap> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        for cm in env::referenced_config_maps(&spec) {
            match cm_api.get_opt(&cm).await {
                Ok(v) => {
                    cms.insert(cm, v);
                }
                Err(e) => {
                    return self.container_error(
                        i,
                        "CreateContainerConfigError",
                        format!("failed to sync configmap cache: {e}"),
                    );
                }
            }
        }
        let facts = PodFacts {
            pod_ip: self.ip.map(|i| i.to_string()).unwrap_or_default(),
            host_ip: self.ctx.node_ip.clone(),
            node_cpu_milli: self.ctx.allocatable.cpu_milli,
            node_memory: self.ctx.allocatable.memory,
            node_ephemeral_storage: self.ctx.allocatable.ephemeral_storage,
        };
        let resolved = match env::resolve(&self.pod, &spec, &facts, &cms) {
            Ok(r) => r,
            Err(e) => return self.container_error(i, e.reason(), e.to_string()),
        };
        if !resolved.skipped.is_empty() {
            self.event_warning(
                Some(&name),
                "InvalidEnvironmentVariableNames",
                format!(
                    "Keys [{}] from the EnvFrom configMap were skipped since they are considered invalid environment variable names.",
                    resolved.skipped.join(", ")
                ),
            );
        }
        let isolated = self.ctx.runtime.isolated();
        let argv = env::command_line(&spec, &resolved.env);
        if argv.is_empty() && self.ctx.runtime.needs_command() {
            return self.container_error(
                i,
                "CreateContainerError",
                "no command specified: kube-lite runs `command` + `args` on the host (there is no image entrypoint)".into(),
            );
        }
        let sandbox = self.ctx.dirs.pod(&self.uid);
        // A container of its own (CRI) gets its mounts and working directory from the runtime;
        // a host process gets them laid out in the pod's directory.
        let (working_dir, process_env, mounts) = if isolated {
            let mounts = match volumes::bind_mounts(&sandbox, &self.pod, &spec) {
                Ok(m) => m,
                Err(e) => return self.container_error(i, "CreateContainerError", e),
            };
            (
                std::path::PathBuf::from(&spec.working_dir),
                resolved.env.clone(),
                mounts,
            )
        } else {
            let working_dir = match crate::dirs::working_dir(&sandbox, &spec.working_dir) {
                Ok(w) => w,
                Err(e) => return self.container_error(i, "CreateContainerError", e),
            };
            let mount_env = match volumes::mount(&sandbox, &spec) {
                Ok(m) => m,
                Err(e) => return self.container_error(i, "CreateContainerError", e),
            };
            let mut process_env = std::collections::BTreeMap::new();
            process_env.extend(mount_env);
            process_env.insert("PATH".to_string(), self.ctx.path_env.clone());
            process_env.insert("HOME".to_string(), sandbox.display().to_string());
            process_env.insert("HOSTNAME".to_string(), self.name.clone());
            process_env.extend(resolved.env.clone());
            (working_dir, process_env, Vec::new())
        };
        let Some(image) = self.ensure_image(i, &spec).await else {
            return;
        };
        let (command, args) = env::command_and_args(&spec, &resolved.env);

        let c = &mut self.containers[i];
        if c.ever_started {
            c.restart_count += 1;
        }
        c.ever_started = true;
        c.error_streak = 0;
        c.retry_at = None;
        c.image_id = image.image_id.clone();
        let restart_count = c.restart_count;
        let run = ContainerSpec {
            pod_uid: self.uid.clone(),
            pod_key: key.clone(),
            container: name.clone(),
            argv,
            env: process_env.into_iter().collect(),
            working_dir,
            log_path: self.ctx.dirs.log_file(&self.uid, &name, restart_count),
            log_max_size: self.ctx.container_log_max_size,
            restart_count,
            cgroup: self.memory_cgroup(&spec, &name, restart_count),
        };
        let req = StartRequest {
            spec: run,
            pod: self.pod.clone(),
            container: spec.clone(),
            sandbox: self.sandbox.clone(),
            image_ref: image.image_ref,
            command,
            args,
            env: resolved.env.into_iter().collect(),
            mounts,
        };
        let started = self.ctx.runtime.start(&req, self.wake.clone()).await;
        let run = req.spec;
        if started.is_err()
            && let Some(cg) = &run.cgroup
        {
            cgroups::remove(cg);
        }
        match started {
            Ok(r) => {
                tracing::info!(pod = %key, container = %name, id = %r.id, restart_count,
                    argv = ?run.argv, "container started");
                self.event_normal(Some(&name), "Created", format!("Created container {name}"));
                self.event_normal(Some(&name), "Started", format!("Started container {name}"));
                let c = &mut self.containers[i];
                c.current = Current::Running {
                    started_at: r.started_at,
                    id: self.ctx.runtime.status_id(&r.id),
                };
                c.probes = Some(Probes::new(&spec, r.started));
                c.probe_target = prober::Target {
                    container_id: r.id.clone(),
                    pod_ip: self.ip.map(|i| i.to_string()).unwrap_or_default(),
                    ports: spec.ports.clone(),
                    env: run.env.clone(),
                    working_dir: run.working_dir.clone(),
                };
                if let Some(t) = c.probes.as_ref().and_then(Probes::next_due) {
                    self.wake_at(t);
                }
                let c = &mut self.containers[i];
                c.running = Some(r);
                self.save_state();
            }
            Err(msg) => {
                tracing::warn!(pod = %key, container = %name, error = %msg, "container failed to start");
                self.event_warning(Some(&name), "Failed", format!("Error: {msg}"));
                let policy = self.policy();
                let c = &mut self.containers[i];
                let now = Time::now();
                c.prev_term = c.last_term.take();
                c.last_term = Some(ContainerStateTerminated {
                    exit_code: 128,
                    reason: "StartError".into(),
                    message: msg,
                    started_at: Some(now),
                    finished_at: Some(now),
                    ..Default::default()
                });
                c.current = Current::Exited;
                if status::should_restart(&policy, 128) {
                    let at = Instant::now();
                    c.backoff.exited(at, Duration::ZERO);
                    let ready = c.backoff.ready_at().unwrap_or(at);
                    self.wake_at(ready);
                }
            }
        }
    }

    /// The memory cgroup for a container with a memory limit, where cgroups can be used; a
    /// Warning event where they cannot (say so rather than pretend).
    pub(super) fn memory_cgroup(
        &self,
        spec: &ApiContainer,
        name: &str,
        restart_count: i32,
    ) -> Option<std::path::PathBuf> {
        let limit = spec.resources.limits.get("memory")?;
        if !self.ctx.runtime.needs_command() || self.ctx.runtime.isolated() {
            return None; // the fake runtime runs nothing; a CRI runtime sets its own cgroups
        }
        let bytes = match limit.value() {
            Ok(b) if b > 0 => b,
            _ => return None,
        };
        let cgroup = format!("{}_{name}_{restart_count}", self.uid);
        match self.ctx.cgroups.create(&cgroup, bytes) {
            Ok(dir) => Some(dir),
            Err(reason) => {
                if restart_count == 0 {
                    self.event_warning(
                        Some(name),
                        "MemoryLimitNotEnforced",
                        format!(
                            "memory limit {} is not enforced: {reason} (see docs/process-runtime.md)",
                            limit.0
                        ),
                    );
                }
                None
            }
        }
    }
}
