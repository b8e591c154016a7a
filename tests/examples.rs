//! Every manifest in `examples/` is what the docs tell users to apply: each document must
//! decode into its kind with no unknown field and pass the API server's validation.

use api::codec::{decode_collecting_unknown, parse_documents};
use api::validation::FieldError;

fn check<T: serde::de::DeserializeOwned>(
    doc: &serde_json::Value,
    validate: fn(&T) -> Vec<FieldError>,
) -> Vec<String> {
    match decode_collecting_unknown::<T>(doc) {
        Ok((obj, unknown)) => {
            let mut problems: Vec<String> = unknown
                .into_iter()
                .map(|f| format!("unknown field {f}"))
                .collect();
            problems.extend(validate(&obj).iter().map(FieldError::cause_message));
            problems
        }
        Err(e) => vec![e.to_string()],
    }
}

/// A Service as the API server validates it: after its defaults (type, protocol, affinity).
fn defaulted_service(svc: &api::core::Service) -> Vec<FieldError> {
    let mut svc = svc.clone();
    api::defaults::default_service(&mut svc);
    api::validation::validate_service(&svc)
}

#[test]
fn every_example_manifest_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    // examples/ and examples/cri/ (the same apps written for a CRI node).
    let mut files: Vec<_> = [dir.clone(), dir.join("cri")]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).expect("examples dir").flatten())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        let docs = parse_documents(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(!docs.is_empty(), "{}: no documents", f.display());
        for doc in docs {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            let problems = match kind.as_str() {
                "Pod" => check(&doc, api::validation::validate_pod),
                "Deployment" => check(&doc, api::validation::validate_deployment),
                "ReplicaSet" => check(&doc, api::validation::validate_replica_set),
                "ConfigMap" => check(&doc, api::validation::validate_config_map),
                "Service" => check(&doc, defaulted_service),
                other => vec![format!("unexpected kind {other:?}")],
            };
            assert!(
                problems.is_empty(),
                "{} ({kind} {}): {problems:?}",
                f.display(),
                doc["metadata"]["name"]
            );
        }
    }
}
