//! The `--leader-elect*` flags shared by the scheduler and the controller manager, with
//! kube-scheduler's names and defaults.

use std::time::Duration;

use super::leader_election::{LeaderElectionConfig, default_identity};

#[derive(clap::Args, Clone, Debug)]
pub struct LeaderElectFlags {
    /// Elect a leader through a Lease before acting, so several replicas can run (one acts).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub leader_elect: bool,
    /// Seconds a leader may go without renewing before another candidate takes over.
    #[arg(long, default_value_t = 15)]
    pub leader_elect_lease_duration: u64,
    /// Seconds a leader keeps trying to renew before it steps down.
    #[arg(long, default_value_t = 10)]
    pub leader_elect_renew_deadline: u64,
    /// Seconds between attempts to acquire or renew.
    #[arg(long, default_value_t = 2)]
    pub leader_elect_retry_period: u64,
    /// Namespace of the Lease.
    #[arg(long, default_value = "kube-system")]
    pub leader_elect_resource_namespace: String,
}

impl LeaderElectFlags {
    /// The election config for `lease` (None when election is off).
    pub fn config(&self, lease: &str) -> Option<LeaderElectionConfig> {
        self.leader_elect.then(|| {
            let mut c = LeaderElectionConfig::new(lease, &default_identity());
            c.namespace = self.leader_elect_resource_namespace.clone();
            c.lease_duration = Duration::from_secs(self.leader_elect_lease_duration.max(1));
            c.renew_deadline = Duration::from_secs(self.leader_elect_renew_deadline.max(1));
            c.retry_period = Duration::from_secs(self.leader_elect_retry_period.max(1));
            c
        })
    }
}
