//! Setting up and refreshing the pod's volumes (ConfigMap files, emptyDirs).

use super::*;

impl Worker {
    /// Set up or refresh the pod's volumes when due (at start, then every `--sync-frequency`,
    /// and every 2 s while they fail): ConfigMap updates reach the files of running containers.
    pub(super) async fn sync_volumes(&mut self, sandbox: &std::path::Path) {
        if self.pod.spec.volumes.is_empty() {
            return;
        }
        let now = Instant::now();
        let every = if self.volume_error.is_some() {
            Duration::from_secs(2)
        } else {
            self.ctx.sync_frequency
        };
        if let Some(at) = self.volumes_synced.map(|t| t + every)
            && now < at
        {
            self.wake_at(at);
            return;
        }
        let cm_api: Api<ConfigMap> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let mut cms = std::collections::BTreeMap::new();
        for name in volumes::referenced_config_maps(&self.pod) {
            match cm_api.get_opt(&name).await {
                Ok(v) => {
                    cms.insert(name, v);
                }
                Err(e) => {
                    tracing::warn!(pod = %self.key(), configmap = %name, error = %e, "cannot read a volume's ConfigMap");
                    self.volumes_synced = Some(now);
                    self.wake_at(now + Duration::from_secs(2));
                    return;
                }
            }
        }
        let mut error = None;
        for vol in &self.pod.spec.volumes {
            let dir = volumes::volume_dir(sandbox, &vol.name);
            let files = match volumes::desired_files(vol, &cms) {
                Ok(f) => f,
                Err(msg) => {
                    error.get_or_insert(msg);
                    continue;
                }
            };
            let res = if vol.config_map.is_some() {
                volumes::write_atomic(&dir, &files)
            } else {
                std::fs::create_dir_all(&dir).map(|_| false)
            };
            match res {
                Ok(true) if self.volumes_synced.is_some() => {
                    tracing::info!(pod = %self.key(), volume = %vol.name, "volume updated");
                }
                Ok(_) => {}
                Err(e) => {
                    error.get_or_insert(format!(
                        "MountVolume.SetUp failed for volume {:?} : {e}",
                        vol.name
                    ));
                }
            }
        }
        if let Some(msg) = &error
            && self.volume_error.as_ref() != Some(msg)
        {
            tracing::warn!(pod = %self.key(), %msg, "cannot set up volumes");
            self.event_warning(None, "FailedMount", msg.clone());
        }
        self.volume_error = error;
        self.volumes_synced = Some(now);
        let every = if self.volume_error.is_some() {
            Duration::from_secs(2)
        } else {
            self.ctx.sync_frequency
        };
        self.wake_at(now + every);
    }
}
