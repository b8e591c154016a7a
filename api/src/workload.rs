//! Rules of Deployments and their ReplicaSets that the controller and the CLI share
//! (Kubernetes' `pkg/controller/deployment/util`): which template is a Deployment's, and which
//! of its ReplicaSets is the new one.

use std::borrow::Borrow;

use crate::annotations::POD_TEMPLATE_HASH;
use crate::apps::{Deployment, PodTemplateSpec, ReplicaSet};

/// Two pod templates are the same once the `pod-template-hash` label is left out (the
/// controller adds it to its ReplicaSets' templates).
pub fn templates_equal(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        t.metadata.labels.remove(POD_TEMPLATE_HASH);
        t
    };
    strip(a) == strip(b)
}

/// Which of `rss` is the Deployment's new ReplicaSet (`FindNewReplicaSet`): the oldest —
/// by creation time, then name — whose template is the Deployment's. Its index in `rss`.
pub fn new_replica_set<R: Borrow<ReplicaSet>>(d: &Deployment, rss: &[R]) -> Option<usize> {
    let mut order: Vec<usize> = (0..rss.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (rss[a].borrow(), rss[b].borrow());
        a.metadata
            .creation_timestamp
            .cmp(&b.metadata.creation_timestamp)
            .then(a.metadata.name.cmp(&b.metadata.name))
    });
    order
        .into_iter()
        .find(|&i| templates_equal(&rss[i].borrow().spec.template, &d.spec.template))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(name: &str, created: &str, image: &str, hash: &str) -> ReplicaSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": hash}},
                    "spec": {"containers": [{"name": "web", "image": image}]}}}
        }))
        .unwrap()
    }

    #[test]
    fn the_new_replica_set_is_the_oldest_with_the_template() {
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "web:2"}]}}}
        }))
        .unwrap();
        let rss = vec![
            rs("web-b", "2026-01-02T00:00:00Z", "web:2", "b"),
            rs("web-a", "2026-01-01T00:00:00Z", "web:1", "a"),
            rs("web-c", "2026-01-01T12:00:00Z", "web:2", "c"),
        ];
        assert_eq!(new_replica_set(&d, &rss), Some(2));
        assert!(templates_equal(
            &rss[0].spec.template,
            &rss[2].spec.template
        ));
        assert!(!templates_equal(
            &rss[0].spec.template,
            &rss[1].spec.template
        ));
        assert_eq!(new_replica_set(&d, &rss[..2]), Some(0));
        assert_eq!(new_replica_set::<ReplicaSet>(&d, &[]), None);
    }
}
