//! Owner references: who controls an object, and the reference a controller puts on what it makes.

use api::meta::OwnerReference;
use api::{ObjectMeta, Resource};

/// The reference a controller sets on objects it creates (`controller: true`, and
/// `blockOwnerDeletion: true` so foreground deletion of the owner waits for them).
pub fn controller_ref<K: Resource>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::INFO.api_version(),
        kind: K::INFO.kind.to_string(),
        name: owner.meta().name.clone(),
        uid: owner.meta().uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `meta` is controlled by the object with this uid.
pub fn is_controlled_by(meta: &ObjectMeta, owner_uid: &str) -> bool {
    meta.controller_ref().is_some_and(|r| r.uid == owner_uid)
}

/// The `namespace/name` key of the controller of `meta` if it is of kind `kind`.
pub fn controller_key(meta: &ObjectMeta, kind: &str) -> Option<String> {
    meta.controller_ref()
        .filter(|r| r.kind == kind)
        .map(|r| format!("{}/{}", meta.namespace, r.name))
}
