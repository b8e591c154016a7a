//! What the cluster serves: the [`Resource`] trait for typed code, and [`RESOURCES`], the table
//! discovery, the API server's router and kubectl-lite's name resolution are all built from.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::meta::ObjectMeta;

/// Static facts about one kind, as the API discovery documents describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceInfo {
    pub kind: &'static str,
    /// URL segment: `pods`, `deployments`.
    pub plural: &'static str,
    pub singular: &'static str,
    /// `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// `all` for the kinds `kubectl get all` shows.
    pub categories: &'static [&'static str],
    /// Has a `status` subresource: main-resource writes keep status, status writes keep spec.
    pub has_status: bool,
    /// Has an autoscaling/v1 `scale` subresource.
    pub has_scale: bool,
}

impl ResourceInfo {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` or `deployments.apps`: how Kubernetes names the resource in error messages.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Pod` or `Deployment.apps`: how Kubernetes names the kind in validation errors.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// `pod` or `deployment.apps`: the lowercased kind and its group, as kubectl names a kind
    /// in its output (`deployment.apps/blog created`, `deployment.apps "blog" deleted`).
    pub fn kind_string(&self) -> String {
        let kind = self.kind.to_ascii_lowercase();
        if self.group.is_empty() {
            kind
        } else {
            format!("{kind}.{}", self.group)
        }
    }

    /// `deployment.apps/blog`: one object as `kubectl get -o name` and `apply` print it.
    pub fn qualified_name(&self, name: &str) -> String {
        format!("{}/{name}", self.kind_string())
    }

    /// URL path prefix of the group-version: `/api/v1` or `/apis/apps/v1`.
    pub fn group_version_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// The collection URL, in a namespace for namespaced kinds (all namespaces when `ns` is None).
    pub fn collection_path(&self, ns: Option<&str>) -> String {
        match ns {
            Some(ns) if self.namespaced => format!(
                "{}/namespaces/{}/{}",
                self.group_version_path(),
                ns,
                self.plural
            ),
            _ => format!("{}/{}", self.group_version_path(), self.plural),
        }
    }

    pub fn object_path(&self, ns: Option<&str>, name: &str) -> String {
        format!("{}/{}", self.collection_path(ns), name)
    }
}

macro_rules! info {
    ($kind:literal, $plural:literal, $singular:literal, $group:literal, $ns:literal,
     short: [$($short:literal),*], categories: [$($cat:literal),*], status: $st:literal, scale: $sc:literal) => {
        ResourceInfo {
            kind: $kind,
            plural: $plural,
            singular: $singular,
            group: $group,
            version: "v1",
            namespaced: $ns,
            short_names: &[$($short),*],
            categories: &[$($cat),*],
            has_status: $st,
            has_scale: $sc,
        }
    };
}

pub const POD: ResourceInfo = info!("Pod", "pods", "pod", "", true, short: ["po"], categories: ["all"], status: true, scale: false);
pub const CONFIG_MAP: ResourceInfo = info!("ConfigMap", "configmaps", "configmap", "", true, short: ["cm"], categories: [], status: false, scale: false);
pub const EVENT: ResourceInfo = info!("Event", "events", "event", "", true, short: ["ev"], categories: [], status: false, scale: false);
pub const NODE: ResourceInfo = info!("Node", "nodes", "node", "", false, short: ["no"], categories: [], status: true, scale: false);
pub const NAMESPACE: ResourceInfo = info!("Namespace", "namespaces", "namespace", "", false, short: ["ns"], categories: [], status: true, scale: false);
pub const REPLICA_SET: ResourceInfo = info!("ReplicaSet", "replicasets", "replicaset", "apps", true, short: ["rs"], categories: ["all"], status: true, scale: true);
pub const DEPLOYMENT: ResourceInfo = info!("Deployment", "deployments", "deployment", "apps", true, short: ["deploy"], categories: ["all"], status: true, scale: true);
pub const LEASE: ResourceInfo = info!("Lease", "leases", "lease", "coordination.k8s.io", true, short: [], categories: [], status: false, scale: false);
pub const SERVICE: ResourceInfo = info!("Service", "services", "service", "", true, short: ["svc"], categories: ["all"], status: true, scale: false);
pub const ENDPOINTS: ResourceInfo = info!("Endpoints", "endpoints", "endpoints", "", true, short: ["ep"], categories: [], status: false, scale: false);
pub const ENDPOINT_SLICE: ResourceInfo = info!("EndpointSlice", "endpointslices", "endpointslice", "discovery.k8s.io", true, short: [], categories: [], status: false, scale: false);

/// Every kind the API server serves (`kubectl get all` lists the `all` ones in this order).
pub const RESOURCES: &[ResourceInfo] = &[
    POD,
    SERVICE,
    CONFIG_MAP,
    EVENT,
    NODE,
    NAMESPACE,
    REPLICA_SET,
    DEPLOYMENT,
    LEASE,
    ENDPOINTS,
    ENDPOINT_SLICE,
];

/// Find a kind by anything a user may type: plural, singular, kind, short name, or
/// `plural.group` (case-insensitive), as kubectl resolves `KIND` arguments.
pub fn lookup(name: &str) -> Option<&'static ResourceInfo> {
    let lower = name.to_ascii_lowercase();
    let (base, group) = match lower.split_once('.') {
        Some((b, g)) => (b.to_string(), Some(g.to_string())),
        None => (lower.clone(), None),
    };
    RESOURCES.iter().find(|r| {
        let names = base == r.plural
            || base == r.singular
            || base == r.kind.to_ascii_lowercase()
            || r.short_names.contains(&base.as_str());
        names && group.as_deref().is_none_or(|g| g == r.group)
    })
}

/// Find a kind by its apiVersion and kind, as a manifest names it.
pub fn lookup_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// A typed Kubernetes object.
pub trait Resource: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    const INFO: ResourceInfo;
    fn meta(&self) -> &ObjectMeta;
    fn meta_mut(&mut self) -> &mut ObjectMeta;
    /// Set `apiVersion` and `kind` to this type's.
    fn set_type_meta(&mut self);
    fn name(&self) -> &str {
        &self.meta().name
    }
    fn namespace(&self) -> &str {
        &self.meta().namespace
    }
}

macro_rules! resource {
    ($ty:ty, $info:expr) => {
        impl Resource for $ty {
            const INFO: ResourceInfo = $info;
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
            fn set_type_meta(&mut self) {
                self.api_version = Self::INFO.api_version();
                self.kind = Self::INFO.kind.to_string();
            }
        }
    };
}

resource!(crate::core::Pod, POD);
resource!(crate::core::ConfigMap, CONFIG_MAP);
resource!(crate::core::Event, EVENT);
resource!(crate::core::Node, NODE);
resource!(crate::core::Namespace, NAMESPACE);
resource!(crate::apps::ReplicaSet, REPLICA_SET);
resource!(crate::apps::Deployment, DEPLOYMENT);
resource!(crate::coordination::Lease, LEASE);
resource!(crate::core::Service, SERVICE);
resource!(crate::core::Endpoints, ENDPOINTS);
resource!(crate::discovery::EndpointSlice, ENDPOINT_SLICE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_by_every_name() {
        for n in ["po", "pod", "pods", "Pod", "PODS"] {
            assert_eq!(lookup(n).map(|r| r.kind), Some("Pod"), "{n}");
        }
        assert_eq!(lookup("deploy").map(|r| r.kind), Some("Deployment"));
        assert_eq!(
            lookup("deployments.apps").map(|r| r.kind),
            Some("Deployment")
        );
        assert_eq!(lookup("deployments.core"), None);
        assert_eq!(lookup("svc").map(|r| r.kind), Some("Service"));
        assert_eq!(lookup("ep").map(|r| r.kind), Some("Endpoints"));
        assert_eq!(lookup("endpoints").map(|r| r.kind), Some("Endpoints"));
        assert_eq!(
            lookup("endpointslices.discovery.k8s.io").map(|r| r.kind),
            Some("EndpointSlice")
        );
        assert_eq!(lookup("widgets"), None);
    }

    #[test]
    fn paths_follow_kubernetes() {
        assert_eq!(
            POD.collection_path(Some("default")),
            "/api/v1/namespaces/default/pods"
        );
        assert_eq!(
            DEPLOYMENT.object_path(Some("x"), "web"),
            "/apis/apps/v1/namespaces/x/deployments/web"
        );
        assert_eq!(NODE.collection_path(Some("ignored")), "/api/v1/nodes");
        assert_eq!(POD.collection_path(None), "/api/v1/pods");
        assert_eq!(DEPLOYMENT.qualified_plural(), "deployments.apps");
        assert_eq!(DEPLOYMENT.kind_string(), "deployment.apps");
        assert_eq!(POD.qualified_name("web-1"), "pod/web-1");
    }
}
