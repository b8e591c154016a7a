//! Leader election through a `coordination.k8s.io/v1` Lease, as client-go's `leaderelection`:
//! candidates try to acquire or renew the Lease every `retry_period`; a holder that has not
//! renewed for `lease_duration` (measured on the observer's clock, so clock skew between
//! machines does not matter) can be replaced. Only the leader runs the work.

use std::future::Future;
use std::time::{Duration, Instant};

use api::ObjectMeta;
use api::Resource;
use api::coordination::{Lease, LeaseSpec};
use api::meta::MicroTime;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::api::Api;
use crate::client::Client;

#[derive(Clone, Debug)]
pub struct LeaderElectionConfig {
    pub namespace: String,
    /// The Lease's name: one per elected role (`kube-scheduler`, `kube-controller-manager`).
    pub name: String,
    /// This candidate, unique among candidates.
    pub identity: String,
    pub lease_duration: Duration,
    /// A leader that cannot renew for this long steps down.
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaderElectionConfig {
    /// client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry.
    pub fn new(name: &str, identity: &str) -> Self {
        LeaderElectionConfig {
            namespace: "kube-system".into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// A default identity: host name plus a random suffix, so two candidates on one host differ.
pub fn default_identity() -> String {
    let host =
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "localhost".into());
    format!("{}_{}", host.trim(), &uuid_like())
}

fn uuid_like() -> String {
    format!("{:016x}", rand::random::<u64>())
}

struct Elector {
    api: Api<Lease>,
    cfg: LeaderElectionConfig,
    /// The last record seen, and when we saw it change.
    observed: Option<(LeaseSpec, Instant)>,
}

impl Elector {
    fn observe(&mut self, spec: &LeaseSpec) {
        let changed = self.observed.as_ref().is_none_or(|(s, _)| s != spec);
        if changed {
            self.observed = Some((spec.clone(), Instant::now()));
        }
    }

    /// One round of client-go's `tryAcquireOrRenew`. Ok(true): we hold the lease now.
    async fn try_acquire_or_renew(&mut self) -> crate::Result<bool> {
        let now = MicroTime::now();
        let secs = self.cfg.lease_duration.as_secs().max(1) as i32;
        let me = self.cfg.identity.clone();
        let Some(current) = self.api.get_opt(&self.cfg.name).await? else {
            let mut lease = Lease {
                metadata: ObjectMeta::namespaced(&self.cfg.namespace, &self.cfg.name),
                spec: LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(now),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                },
                ..Default::default()
            };
            lease.set_type_meta();
            return match self.api.create(&lease).await {
                Ok(l) => {
                    self.observe(&l.spec);
                    Ok(true)
                }
                Err(e) if e.is_already_exists() => Ok(false),
                Err(e) => Err(e),
            };
        };
        self.observe(&current.spec);
        let holder = current.spec.holder_identity.clone().unwrap_or_default();
        let held_by_other = !holder.is_empty() && holder != me;
        if held_by_other {
            let duration = Duration::from_secs(
                current.spec.lease_duration_seconds.unwrap_or(secs).max(1) as u64,
            );
            let seen = self
                .observed
                .as_ref()
                .map(|(_, t)| *t)
                .unwrap_or_else(Instant::now);
            if seen.elapsed() < duration {
                return Ok(false);
            }
        }
        let mut lease = current.clone();
        if holder != me {
            lease.spec.acquire_time = Some(now);
            lease.spec.lease_transitions = Some(current.spec.lease_transitions.unwrap_or(0) + 1);
        }
        lease.spec.holder_identity = Some(me);
        lease.spec.lease_duration_seconds = Some(secs);
        lease.spec.renew_time = Some(now);
        match self.api.replace(&self.cfg.name, &lease).await {
            Ok(l) => {
                self.observe(&l.spec);
                Ok(true)
            }
            Err(e) if e.is_conflict() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Give the lease up so another candidate can take over at once.
    async fn release(&mut self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.cfg.name).await
            && lease.spec.holder_identity.as_deref() == Some(self.cfg.identity.as_str())
        {
            lease.spec.holder_identity = None;
            lease.spec.lease_duration_seconds = Some(1);
            let _ = self.api.replace(&self.cfg.name, &lease).await;
        }
    }
}

/// Run `work` whenever this candidate is the leader, until `shutdown`. `work` gets a token that
/// is cancelled when leadership is lost; it should then stop acting. The returned receiver says
/// whether we lead right now (for health and metrics endpoints).
pub async fn run<F, Fut>(
    client: Client,
    cfg: LeaderElectionConfig,
    shutdown: CancellationToken,
    leading: watch::Sender<bool>,
    mut work: F,
) where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut el = Elector {
        api: Api::namespaced(client, &cfg.namespace),
        cfg: cfg.clone(),
        observed: None,
    };
    while !shutdown.is_cancelled() {
        // Candidate: try until we acquire.
        match el.try_acquire_or_renew().await {
            Ok(true) => {}
            Ok(false) => {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(cfg.retry_period) => continue,
                }
            }
            Err(e) => {
                tracing::debug!(lease = %cfg.name, error = %e, "leader election: cannot reach the lease");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(cfg.retry_period) => continue,
                }
            }
        }
        tracing::info!(lease = %format!("{}/{}", cfg.namespace, cfg.name), identity = %cfg.identity, "became leader");
        leading.send_replace(true);
        let lead = shutdown.child_token();
        let task = tokio::spawn(work(lead.clone()));
        // Leader: renew; step down when renewals fail for longer than the renew deadline.
        let mut last_renew = Instant::now();
        loop {
            tokio::select! {
                _ = lead.cancelled() => break,
                _ = tokio::time::sleep(cfg.retry_period) => {}
            }
            match el.try_acquire_or_renew().await {
                Ok(true) => last_renew = Instant::now(),
                Ok(false) => {
                    tracing::warn!(lease = %cfg.name, "leader election: lease taken by another candidate");
                    break;
                }
                Err(e) if last_renew.elapsed() < cfg.renew_deadline => {
                    tracing::debug!(lease = %cfg.name, error = %e, "leader election: renew failed; retrying");
                }
                Err(e) => {
                    tracing::warn!(lease = %cfg.name, error = %e, "leader election: could not renew within the deadline");
                    break;
                }
            }
        }
        lead.cancel();
        let _ = task.await;
        leading.send_replace(false);
        if shutdown.is_cancelled() {
            el.release().await;
            break;
        }
        tracing::info!(lease = %cfg.name, "stopped leading");
    }
}
