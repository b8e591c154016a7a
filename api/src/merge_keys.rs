//! How strategic merge patches treat each list and map field: the `patchStrategy` and
//! `patchMergeKey` tags of the Kubernetes Go types (`core/v1/types.go`, `apps/v1/types.go`,
//! `meta/v1/types.go`), as one table for both sides of a patch — kubectl-lite computes patches
//! with it (`kubectl apply`, `edit`, `set image`), the API server applies them with it.
//!
//! Field names decide, except where two kinds' fields of one name differ: a Service's
//! `spec.ports` merge by `port` (a container's `ports` by `containerPort`), an EndpointSlice's
//! `ports` are replaced whole. [`list_strategy_at`] knows the kind and the path.

/// How a list field is patched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListStrategy {
    /// Replaced whole (the default: no `patchStrategy` tag).
    Replace,
    /// Merged element by element, elements identified by `key` (`patchStrategy:"merge"`,
    /// `patchMergeKey`). `retain_keys`: the elements also carry `$retainKeys`
    /// (`patchStrategy:"merge,retainKeys"`: changing a volume's source drops the old one).
    Merge {
        key: &'static str,
        retain_keys: bool,
    },
    /// A list of scalars merged as a set (`finalizers`).
    MergeScalars,
}

/// The strategy of a list field, by its JSON name.
pub fn list_strategy(field: &str) -> ListStrategy {
    let merge = |key| ListStrategy::Merge {
        key,
        retain_keys: false,
    };
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims" => merge("name"),
        "volumes" => ListStrategy::Merge {
            key: "name",
            retain_keys: true,
        },
        "ports" => merge("containerPort"),
        "volumeMounts" => merge("mountPath"),
        "conditions" | "addresses" => merge("type"),
        "ownerReferences" => merge("uid"),
        "hostAliases" | "podIPs" | "hostIPs" => merge("ip"),
        "topologySpreadConstraints" => merge("topologyKey"),
        "finalizers" => ListStrategy::MergeScalars,
        _ => ListStrategy::Replace,
    }
}

/// The strategy of the list at `path` (dotted from the object's root, without list indexes:
/// `spec.template.spec.containers`) in an object of `kind`.
pub fn list_strategy_at(kind: &str, path: &str) -> ListStrategy {
    match (kind, path) {
        ("Service", "spec.ports") => ListStrategy::Merge {
            key: "port",
            retain_keys: false,
        },
        ("EndpointSlice", "ports") => ListStrategy::Replace,
        _ => list_strategy(path.rsplit('.').next().unwrap_or(path)),
    }
}

/// The merge key of a list merged element by element; None for lists replaced whole and for
/// lists of scalars.
pub fn merge_key(field: &str) -> Option<&'static str> {
    match list_strategy(field) {
        ListStrategy::Merge { key, .. } => Some(key),
        _ => None,
    }
}

/// A list of scalars merged as a set.
pub fn is_set_list(field: &str) -> bool {
    list_strategy(field) == ListStrategy::MergeScalars
}

/// Maps whose patches carry `$retainKeys` (`patchStrategy:"retainKeys"`): a Deployment's
/// `strategy`, so that switching to `Recreate` drops `rollingUpdate`.
pub fn retains_keys(field: &str) -> bool {
    field == "strategy"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tags_of_the_kubernetes_types() {
        assert_eq!(merge_key("containers"), Some("name"));
        assert_eq!(merge_key("ports"), Some("containerPort"));
        assert_eq!(merge_key("volumeMounts"), Some("mountPath"));
        assert_eq!(merge_key("args"), None);
        assert!(is_set_list("finalizers"));
        assert!(!is_set_list("args"));
        assert_eq!(
            list_strategy("volumes"),
            ListStrategy::Merge {
                key: "name",
                retain_keys: true
            }
        );
        assert!(retains_keys("strategy"));
        let by = |k: &'static str| ListStrategy::Merge {
            key: k,
            retain_keys: false,
        };
        assert_eq!(list_strategy_at("Service", "spec.ports"), by("port"));
        assert_eq!(
            list_strategy_at("Deployment", "spec.template.spec.containers.ports"),
            by("containerPort")
        );
        assert_eq!(
            list_strategy_at("EndpointSlice", "ports"),
            ListStrategy::Replace
        );
        assert_eq!(list_strategy_at("Node", "status.addresses"), by("type"));
    }
}
