//! A pod's QoS class, as Kubernetes computes it (`GetPodQOS`): only cpu and memory count, summed
//! over the containers and init containers, quantities compared by value (`1` equals `1000m`).
//! - BestEffort: no cpu or memory request or limit anywhere;
//! - Guaranteed: every container limits both cpu and memory, and the summed requests equal
//!   the summed limits for each of them (a request left out is its limit, as the API server
//!   defaults it);
//! - Burstable: everything else.

use std::collections::BTreeMap;

use super::PodSpec;

/// The resources QoS looks at.
const QOS_RESOURCES: [&str; 2] = ["cpu", "memory"];

impl PodSpec {
    pub fn qos_class(&self) -> &'static str {
        let mut requests: BTreeMap<&str, i64> = BTreeMap::new();
        let mut limits: BTreeMap<&str, i64> = BTreeMap::new();
        let mut guaranteed = true;
        for c in self.containers.iter().chain(&self.init_containers) {
            let res = &c.resources;
            for name in QOS_RESOURCES {
                let milli = |m: &BTreeMap<String, crate::quantity::Quantity>| {
                    m.get(name)
                        .and_then(|q| q.milli_value().ok())
                        .filter(|v| *v > 0)
                };
                // A request left out is the limit (the API server's defaulting), so a spec gives
                // the same class before and after it is stored.
                if let Some(v) = milli(&res.requests).or_else(|| milli(&res.limits)) {
                    *requests.entry(name).or_default() += v;
                }
                match milli(&res.limits) {
                    Some(v) => *limits.entry(name).or_default() += v,
                    None => guaranteed = false,
                }
            }
        }
        if requests.is_empty() && limits.is_empty() {
            return "BestEffort";
        }
        if guaranteed
            && requests.len() == limits.len()
            && requests.iter().all(|(k, v)| limits.get(k) == Some(v))
        {
            return "Guaranteed";
        }
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use crate::core::PodSpec;

    fn spec(containers: serde_json::Value) -> PodSpec {
        serde_json::from_value(serde_json::json!({ "containers": containers })).unwrap()
    }

    #[test]
    fn classes_as_kubernetes_computes_them() {
        assert_eq!(
            spec(serde_json::json!([{"name": "a"}])).qos_class(),
            "BestEffort"
        );
        assert_eq!(spec(serde_json::json!([])).qos_class(), "BestEffort");
        // Only cpu and memory count.
        assert_eq!(
            spec(serde_json::json!([{"name": "a", "resources": {"limits": {"ephemeral-storage": "1Gi"}}}]))
                .qos_class(),
            "BestEffort"
        );
        let g = serde_json::json!([{"name": "a", "resources": {
            "requests": {"cpu": "1", "memory": "1Gi"},
            "limits": {"cpu": "1000m", "memory": "1024Mi"}}}]);
        assert_eq!(spec(g).qos_class(), "Guaranteed");
        // Limits without requests: the requests default to them.
        let l = serde_json::json!([{"name": "a", "resources": {
            "limits": {"cpu": "1", "memory": "1Gi"}}}]);
        assert_eq!(spec(l).qos_class(), "Guaranteed");
        // A request below its limit.
        let lo = serde_json::json!([{"name": "a", "resources": {
            "requests": {"cpu": "500m"}, "limits": {"cpu": "1", "memory": "1Gi"}}}]);
        assert_eq!(spec(lo).qos_class(), "Burstable");
        let b = serde_json::json!([{"name": "a", "resources": {"requests": {"cpu": "100m"}}}]);
        assert_eq!(spec(b).qos_class(), "Burstable");
        // One container without limits makes the pod Burstable.
        let mixed = serde_json::json!([
            {"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                "limits": {"cpu": "1", "memory": "1Gi"}}},
            {"name": "b"}]);
        assert_eq!(spec(mixed).qos_class(), "Burstable");
    }

    #[test]
    fn totals_as_kubernetes_counts_them() {
        let mut s = spec(serde_json::json!([
            {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                "limits": {"cpu": "200m"}}},
            {"name": "b", "resources": {"requests": {"cpu": "250m"}}}]));
        s.init_containers = spec(serde_json::json!([
            {"name": "init", "resources": {"requests": {"cpu": "1", "memory": "16Mi"}}}]))
        .containers;
        s.overhead
            .insert("cpu".into(), crate::quantity::Quantity::new("10m"));
        let r = s.resources();
        // The init container's cpu is the larger; overhead on top of requests, and of the cpu
        // limit (there is one) but not of the memory limit (there is none).
        assert_eq!((r.requests.cpu_milli, r.requests.memory), (1010, 64 << 20));
        assert_eq!((r.limits.cpu_milli, r.limits.memory), (210, 0));
        assert_eq!(s.requests(), r.requests);
    }
}
