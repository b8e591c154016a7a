//! Well-known annotations and labels, by their Kubernetes names: what kubectl and the
//! controllers write on objects to remember things.

/// The manifest `kubectl apply` last applied (compact JSON), the *original* of its three-way
/// merge.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A Deployment's and its ReplicaSets' revision number (a decimal string), written by the
/// Deployment controller: `rollout history` lists it, `rollout undo --to-revision` picks it.
pub const REVISION: &str = "deployment.kubernetes.io/revision";

/// Why a revision was made (`rollout history`'s CHANGE-CAUSE), copied from the Deployment to
/// its new ReplicaSet.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// Set on the pod template by `kubectl rollout restart` (an RFC 3339 time): changing the
/// template starts a new rollout.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// kube-lite's: how a node's pods are networked, in words (`describe node` shows it): loopback
/// addresses of one machine (the process runtime), or a CNI bridge routed between nodes (CRI).
pub const POD_NETWORK: &str = "kube-lite.io/pod-network";

/// The label a Deployment adds to its ReplicaSets' selectors and pods, so that revisions never
/// share pods.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Deployment annotations the controller copies to ReplicaSets and `rollout undo` must not
/// copy back (kubectl's `annotationsToSkip`).
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
