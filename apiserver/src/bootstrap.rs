//! What a fresh cluster has: the `default`, `kube-system`, `kube-public` and `kube-node-lease`
//! namespaces, created at start-up when missing.

use api::meta::Time;
use serde_json::json;

use crate::error::ApiResult;
use crate::storage::{self, Storage};

pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

pub async fn ensure_namespaces(storage: &Storage) -> ApiResult<()> {
    for ns in SYSTEM_NAMESPACES {
        let key = storage::key(&api::resource::NAMESPACE, "", ns);
        if storage.get(&key).await?.is_some() {
            continue;
        }
        let obj = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": ns,
                "uid": uuid::Uuid::new_v4().to_string(),
                "creationTimestamp": Time::now(),
                "labels": {"kubernetes.io/metadata.name": ns},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        if storage.create(&key, &obj, 0).await?.is_some() {
            tracing::info!(namespace = ns, "created system namespace");
        }
    }
    Ok(())
}
