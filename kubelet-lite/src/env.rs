//! A container's environment and command line, as the kubelet builds them: `envFrom` and
//! `env` (literal, ConfigMap key, pod field, resource) resolved in Kubernetes' order, and
//! `$(VAR)` references expanded with Kubernetes' exact rules. Pure: ConfigMaps are fetched by
//! the caller and passed in, so everything here is unit-tested without a server.

use std::collections::{BTreeMap, BTreeSet};

use api::core::{ConfigMap, Container, Pod, ResourceFieldSelector};
use api::quantity::Quantity;

/// What a container's environment can refer to besides ConfigMaps.
#[derive(Clone, Debug, Default)]
pub struct PodFacts {
    /// The pod's IP (empty until allocated).
    pub pod_ip: String,
    /// The node's InternalIP.
    pub host_ip: String,
    /// Node allocatable CPU in millicores: what `limits.cpu` means when no limit is set.
    pub node_cpu_milli: i64,
    /// Node allocatable memory in bytes: what `limits.memory` means when no limit is set.
    pub node_memory: i64,
    /// Node allocatable ephemeral storage in bytes.
    pub node_ephemeral_storage: i64,
}

/// The ConfigMaps a container refers to, by name: `None` when the API server said not found.
pub type ConfigMaps = BTreeMap<String, Option<ConfigMap>>;

/// Why an environment could not be built. The container waits with reason
/// `CreateContainerConfigError` and the message Kubernetes gives, and is retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvError {
    ConfigMapNotFound {
        name: String,
    },
    KeyNotFound {
        namespace: String,
        name: String,
        key: String,
    },
    Field(String),
}

impl EnvError {
    pub fn reason(&self) -> &'static str {
        "CreateContainerConfigError"
    }
}

impl std::fmt::Display for EnvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvError::ConfigMapNotFound { name } => write!(f, "configmap {name:?} not found"),
            EnvError::KeyNotFound {
                namespace,
                name,
                key,
            } => write!(f, "couldn't find key {key} in ConfigMap {namespace}/{name}"),
            EnvError::Field(m) => f.write_str(m),
        }
    }
}

/// A resolved environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Variable → value. Later definitions win: `env` over `envFrom`, later entries over earlier.
    pub env: BTreeMap<String, String>,
    /// `envFrom` keys skipped because they are not valid variable names (reported as an event).
    pub skipped: Vec<String>,
}

/// Names of every ConfigMap the container's environment refers to (to fetch before [`resolve`]).
pub fn referenced_config_maps(c: &Container) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for ef in &c.env_from {
        if let Some(r) = &ef.config_map_ref {
            out.insert(r.name.clone());
        }
    }
    for e in &c.env {
        if let Some(r) = e
            .value_from
            .as_ref()
            .and_then(|v| v.config_map_key_ref.as_ref())
        {
            out.insert(r.name.clone());
        }
    }
    out
}

/// Kubernetes' `IsEnvVarName`: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
pub fn is_env_var_name(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    (ok(first) && !first.is_ascii_digit()) && chars.all(ok)
}

/// Build the environment of `container` in `pod`, in Kubernetes' order: `envFrom` sources
/// first, then `env` entries, each literal `value` expanded against what is defined so far.
pub fn resolve(
    pod: &Pod,
    container: &Container,
    facts: &PodFacts,
    config_maps: &ConfigMaps,
) -> Result<Resolved, EnvError> {
    let ns = pod.metadata.namespace.as_str();
    let mut out = Resolved::default();
    for ef in &container.env_from {
        let Some(r) = &ef.config_map_ref else {
            continue; // secretRef: kube-lite has no Secrets
        };
        let optional = r.optional.unwrap_or(false);
        let cm = match config_maps.get(&r.name) {
            Some(Some(cm)) => cm,
            _ if optional => continue,
            _ => {
                return Err(EnvError::ConfigMapNotFound {
                    name: r.name.clone(),
                });
            }
        };
        let mut invalid = Vec::new();
        for (k, v) in &cm.data {
            let name = format!("{}{k}", ef.prefix);
            if is_env_var_name(&name) {
                out.env.insert(name, v.clone());
            } else {
                invalid.push(name);
            }
        }
        out.skipped.extend(invalid);
    }
    for e in &container.env {
        let value = match (&e.value, &e.value_from) {
            (_, Some(from)) => {
                if let Some(r) = &from.config_map_key_ref {
                    let optional = r.optional.unwrap_or(false);
                    match config_maps.get(&r.name) {
                        Some(Some(cm)) => match cm.data.get(&r.key) {
                            Some(v) => v.clone(),
                            None if optional => continue,
                            None => {
                                return Err(EnvError::KeyNotFound {
                                    namespace: ns.to_string(),
                                    name: r.name.clone(),
                                    key: r.key.clone(),
                                });
                            }
                        },
                        _ if optional => continue,
                        _ => {
                            return Err(EnvError::ConfigMapNotFound {
                                name: r.name.clone(),
                            });
                        }
                    }
                } else if let Some(f) = &from.field_ref {
                    field_value(pod, facts, &f.field_path)?
                } else if let Some(r) = &from.resource_field_ref {
                    resource_value(pod, container, facts, r)?
                } else if from.secret_key_ref.is_some() {
                    return Err(EnvError::Field(format!(
                        "env {:?}: secretKeyRef is not supported by kube-lite (it has no Secrets)",
                        e.name
                    )));
                } else {
                    String::new()
                }
            }
            (Some(v), None) => expand(v, |name| out.env.get(name).cloned()),
            (None, None) => String::new(),
        };
        out.env.insert(e.name.clone(), value);
    }
    Ok(out)
}

/// The command line of a container: `command` + `args`, each expanded against the container's
/// environment. With no `command`, `args` alone is run (there is no image entrypoint).
pub fn command_line(container: &Container, env: &BTreeMap<String, String>) -> Vec<String> {
    container
        .command
        .iter()
        .chain(container.args.iter())
        .map(|s| expand(s, |name| env.get(name).cloned()))
        .collect()
}

/// `command` and `args` apart, each expanded against the container's environment: what an
/// image runtime is given (it falls back on the image's entrypoint and cmd).
pub fn command_and_args(
    container: &Container,
    env: &BTreeMap<String, String>,
) -> (Vec<String>, Vec<String>) {
    let expand_all = |v: &[String]| -> Vec<String> {
        v.iter()
            .map(|s| expand(s, |name| env.get(name).cloned()))
            .collect()
    };
    (expand_all(&container.command), expand_all(&container.args))
}

/// The value of a `fieldRef`.
pub fn field_value(pod: &Pod, facts: &PodFacts, path: &str) -> Result<String, EnvError> {
    let m = &pod.metadata;
    let subscript = |prefix: &str| -> Option<String> {
        let rest = path
            .strip_prefix(prefix)?
            .strip_prefix('[')?
            .strip_suffix(']')?;
        let key = rest
            .strip_prefix('\'')
            .and_then(|r| r.strip_suffix('\''))
            .or_else(|| rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')))?;
        Some(key.to_string())
    };
    Ok(match path {
        "metadata.name" => m.name.clone(),
        "metadata.namespace" => m.namespace.clone(),
        "metadata.uid" => m.uid.clone(),
        "spec.nodeName" => pod.spec.node_name.clone(),
        "spec.serviceAccountName" => {
            if pod.spec.service_account_name.is_empty() {
                pod.spec.service_account.clone()
            } else {
                pod.spec.service_account_name.clone()
            }
        }
        "status.podIP" | "status.podIPs" => facts.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.clone(),
        _ => {
            if let Some(k) = subscript("metadata.labels") {
                m.labels.get(&k).cloned().unwrap_or_default()
            } else if let Some(k) = subscript("metadata.annotations") {
                m.annotations.get(&k).cloned().unwrap_or_default()
            } else {
                return Err(EnvError::Field(format!(
                    "unsupported fieldPath {path:?}: supported: metadata.name, metadata.namespace, \
                     metadata.uid, metadata.labels['<key>'], metadata.annotations['<key>'], \
                     spec.nodeName, spec.serviceAccountName, status.podIP, status.hostIP"
                )));
            }
        }
    })
}

fn ceil_div(a: i64, b: i64) -> i64 {
    if b <= 0 {
        return 0;
    }
    (a + b - 1).div_euclid(b)
}

/// The value of a `resourceFieldRef`, as the kubelet computes it: CPU rounds up to whole
/// divisors (cores by default), memory and storage to whole divisors (bytes by default); an unset
/// limit is the node's allocatable amount.
pub fn resource_value(
    pod: &Pod,
    container: &Container,
    facts: &PodFacts,
    sel: &ResourceFieldSelector,
) -> Result<String, EnvError> {
    let target = if sel.container_name.is_empty() || sel.container_name == container.name {
        container
    } else {
        pod.spec
            .containers
            .iter()
            .chain(pod.spec.init_containers.iter())
            .find(|c| c.name == sel.container_name)
            .ok_or_else(|| {
                EnvError::Field(format!(
                    "resourceFieldRef: container {:?} not found in pod",
                    sel.container_name
                ))
            })?
    };
    let (kind, res) = sel.resource.split_once('.').ok_or_else(|| {
        EnvError::Field(format!("unsupported container resource {:?}", sel.resource))
    })?;
    let bad = |q: &Quantity| EnvError::Field(format!("invalid quantity {:?}", q.0));
    let one = Quantity::new("1");
    let divisor = sel.divisor.as_ref().unwrap_or(&one);
    let map = match kind {
        "limits" => &target.resources.limits,
        "requests" => &target.resources.requests,
        _ => {
            return Err(EnvError::Field(format!(
                "unsupported container resource {:?}",
                sel.resource
            )));
        }
    };
    let node_default = match res {
        "cpu" => facts.node_cpu_milli,
        "memory" => facts.node_memory,
        "ephemeral-storage" => facts.node_ephemeral_storage,
        _ => {
            return Err(EnvError::Field(format!(
                "unsupported container resource {:?}",
                sel.resource
            )));
        }
    };
    let value = match map.get(res) {
        Some(q) if res == "cpu" => q.milli_value().map_err(|_| bad(q))?,
        Some(q) => q.value().map_err(|_| bad(q))?,
        None if kind == "limits" => node_default,
        None => 0,
    };
    Ok(if res == "cpu" {
        let d = divisor.milli_value().map_err(|_| bad(divisor))?;
        ceil_div(value, d).to_string()
    } else {
        let d = divisor.value().map_err(|_| bad(divisor))?;
        ceil_div(value, d).to_string()
    })
}

/// Kubernetes' `$(VAR)` expansion (`third_party/forked/golang/expansion`):
/// `$(VAR)` becomes the variable's value, or stays `$(VAR)` when it is undefined;
/// `$$` is an escaped `$` (so `$$(VAR)` is the literal `$(VAR)`); any other `$` is literal.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let chars: Vec<char> = input.chars().collect();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '$' || i + 1 >= chars.len() {
            out.push(c);
            i += 1;
            continue;
        }
        match chars[i + 1] {
            '$' => {
                out.push('$');
                i += 2;
            }
            '(' => match chars[i + 2..].iter().position(|&c| c == ')') {
                Some(len) => {
                    let name: String = chars[i + 2..i + 2 + len].iter().collect();
                    match lookup(&name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(&name);
                            out.push(')');
                        }
                    }
                    i += 3 + len;
                }
                None => {
                    out.push_str("$(");
                    i += 2;
                }
            },
            other => {
                out.push('$');
                out.push(other);
                i += 2;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::core::{
        ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource,
        ObjectFieldSelector, ResourceRequirements,
    };
    use api::{ObjectMeta, Pod};

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn expansion_follows_kubernetes() {
        let f = vars(&[("PORT", "8000"), ("IP", "127.1.0.2"), ("EMPTY", "")]);
        let cases = [
            ("$(PORT)", "8000"),
            ("--bind=$(IP):$(PORT)", "--bind=127.1.0.2:8000"),
            ("$(UNKNOWN)", "$(UNKNOWN)"),
            ("$$(PORT)", "$(PORT)"),
            ("$$$(PORT)", "$8000"),
            ("$$", "$"),
            ("$", "$"),
            ("a$", "a$"),
            ("$x", "$x"),
            ("$(PORT", "$(PORT"),
            ("$()", "$()"),
            ("$(EMPTY)x", "x"),
            ("$(PORT)$(PORT)", "80008000"),
            ("héllo $(PORT) wörld", "héllo 8000 wörld"),
            ("$é", "$é"),
            ("${PORT}", "${PORT}"),
            ("$(PORT))", "8000)"),
            ("((($(PORT", "((($(PORT"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &f), want, "{input}");
        }
    }

    fn pod() -> Pod {
        let mut p = Pod {
            metadata: ObjectMeta::namespaced("default", "web-abc"),
            ..Default::default()
        };
        p.metadata.uid = "u-1".into();
        p.metadata.labels.insert("app".into(), "web".into());
        p.metadata.annotations.insert("team".into(), "blue".into());
        p.spec.node_name = "worker-1".into();
        p
    }

    fn cm(name: &str, data: &[(&str, &str)]) -> Option<ConfigMap> {
        Some(ConfigMap {
            metadata: ObjectMeta::namespaced("default", name),
            data: data
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        })
    }

    fn lit(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        }
    }

    fn from(name: &str, src: EnvVarSource) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(src),
        }
    }

    fn key_ref(cm: &str, key: &str, optional: Option<bool>) -> EnvVarSource {
        EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: cm.into(),
                key: key.into(),
                optional,
            }),
            ..Default::default()
        }
    }

    fn field(path: &str) -> EnvVarSource {
        EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: "v1".into(),
                field_path: path.into(),
            }),
            ..Default::default()
        }
    }

    fn facts() -> PodFacts {
        PodFacts {
            pod_ip: "127.11.0.2".into(),
            host_ip: "127.0.0.1".into(),
            node_cpu_milli: 4000,
            node_memory: 8 << 30,
            node_ephemeral_storage: 100 << 30,
        }
    }

    #[test]
    fn env_from_then_env_with_expansion_and_overrides() {
        let c = Container {
            name: "web".into(),
            env_from: vec![
                EnvFromSource {
                    prefix: "CFG_".into(),
                    config_map_ref: Some(ConfigMapEnvSource {
                        name: "blog".into(),
                        optional: None,
                    }),
                    secret_ref: None,
                },
                EnvFromSource {
                    prefix: String::new(),
                    config_map_ref: Some(ConfigMapEnvSource {
                        name: "absent".into(),
                        optional: Some(true),
                    }),
                    secret_ref: None,
                },
            ],
            env: vec![
                lit("PORT", "8000"),
                lit("URL", "http://$(POD_IP):$(PORT)/$(CFG_TITLE)"),
                from("POD_IP", field("status.podIP")),
                lit("URL2", "$(POD_IP):$(PORT) $(LATER)"),
                from("TITLE", key_ref("blog", "TITLE", None)),
                from("NOPE", key_ref("blog", "missing", Some(true))),
                from("NOPE2", key_ref("absent", "x", Some(true))),
                lit("LATER", "late"),
                lit("CFG_TITLE", "overridden"),
            ],
            ..Default::default()
        };
        let mut cms = ConfigMaps::new();
        cms.insert(
            "blog".into(),
            cm("blog", &[("TITLE", "Hi"), ("bad=key", "x")]),
        );
        cms.insert("absent".into(), None);
        let r = resolve(&pod(), &c, &facts(), &cms).unwrap();
        let get = |k: &str| r.env.get(k).map(String::as_str);
        assert_eq!(get("CFG_TITLE"), Some("overridden"));
        assert_eq!(get("PORT"), Some("8000"));
        // POD_IP is defined after URL: not expanded there, as in Kubernetes.
        assert_eq!(get("URL"), Some("http://$(POD_IP):8000/Hi"));
        assert_eq!(get("URL2"), Some("127.11.0.2:8000 $(LATER)"));
        assert_eq!(get("TITLE"), Some("Hi"));
        assert_eq!(get("NOPE"), None);
        assert_eq!(get("NOPE2"), None);
        assert_eq!(r.skipped, vec!["CFG_bad=key".to_string()]);
        assert_eq!(
            referenced_config_maps(&c).into_iter().collect::<Vec<_>>(),
            vec!["absent".to_string(), "blog".to_string()]
        );
    }

    #[test]
    fn missing_config_maps_and_keys_are_config_errors() {
        let c = Container {
            name: "web".into(),
            env: vec![from("X", key_ref("cfg", "x", None))],
            ..Default::default()
        };
        let mut cms = ConfigMaps::new();
        cms.insert("cfg".into(), None);
        let e = resolve(&pod(), &c, &facts(), &cms).unwrap_err();
        assert_eq!(e.to_string(), "configmap \"cfg\" not found");
        assert_eq!(e.reason(), "CreateContainerConfigError");
        cms.insert("cfg".into(), cm("cfg", &[("y", "1")]));
        let e = resolve(&pod(), &c, &facts(), &cms).unwrap_err();
        assert_eq!(
            e.to_string(),
            "couldn't find key x in ConfigMap default/cfg"
        );
        cms.insert("cfg".into(), cm("cfg", &[("x", "1")]));
        assert_eq!(resolve(&pod(), &c, &facts(), &cms).unwrap().env["X"], "1");

        let c = Container {
            name: "web".into(),
            env_from: vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "gone".into(),
                    optional: Some(false),
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let e = resolve(&pod(), &c, &facts(), &ConfigMaps::new()).unwrap_err();
        assert_eq!(e.to_string(), "configmap \"gone\" not found");
    }

    #[test]
    fn field_refs() {
        let p = pod();
        let f = facts();
        let v = |path: &str| field_value(&p, &f, path).unwrap();
        assert_eq!(v("metadata.name"), "web-abc");
        assert_eq!(v("metadata.namespace"), "default");
        assert_eq!(v("metadata.uid"), "u-1");
        assert_eq!(v("metadata.labels['app']"), "web");
        assert_eq!(v("metadata.labels['none']"), "");
        assert_eq!(v("metadata.annotations['team']"), "blue");
        assert_eq!(v("spec.nodeName"), "worker-1");
        assert_eq!(v("spec.serviceAccountName"), "");
        assert_eq!(v("status.podIP"), "127.11.0.2");
        assert_eq!(v("status.hostIP"), "127.0.0.1");
        assert!(field_value(&p, &f, "spec.bogus").is_err());
    }

    #[test]
    fn resource_field_refs_round_like_kubernetes() {
        let mut c = Container {
            name: "web".into(),
            resources: ResourceRequirements {
                requests: [
                    ("cpu".to_string(), Quantity::new("250m")),
                    ("memory".to_string(), Quantity::new("64Mi")),
                ]
                .into_iter()
                .collect(),
                limits: [("memory".to_string(), Quantity::new("128Mi"))]
                    .into_iter()
                    .collect(),
                claims: vec![],
            },
            ..Default::default()
        };
        c.name = "web".into();
        let mut p = pod();
        p.spec.containers = vec![c.clone()];
        let f = facts();
        let v = |res: &str, divisor: Option<&str>| {
            resource_value(
                &p,
                &c,
                &f,
                &ResourceFieldSelector {
                    container_name: String::new(),
                    resource: res.into(),
                    divisor: divisor.map(Quantity::new),
                },
            )
            .unwrap()
        };
        assert_eq!(v("requests.cpu", None), "1"); // 250m rounds up to one core
        assert_eq!(v("requests.cpu", Some("1m")), "250");
        assert_eq!(v("requests.memory", None), (64u64 << 20).to_string());
        assert_eq!(v("requests.memory", Some("1Mi")), "64");
        assert_eq!(v("limits.memory", Some("1Mi")), "128");
        assert_eq!(v("limits.cpu", None), "4"); // unset limit: node allocatable
        assert_eq!(v("limits.cpu", Some("1m")), "4000");
        assert_eq!(v("requests.ephemeral-storage", None), "0");
        let bad = ResourceFieldSelector {
            container_name: "other".into(),
            resource: "limits.cpu".into(),
            divisor: None,
        };
        assert!(resource_value(&p, &c, &f, &bad).is_err());
    }

    #[test]
    fn command_line_expands_command_and_args() {
        let c = Container {
            name: "web".into(),
            command: vec!["python3".into(), "-m".into(), "http.server".into()],
            args: vec!["$(PORT)".into(), "--bind".into(), "$$(POD_IP)".into()],
            ..Default::default()
        };
        let env: BTreeMap<String, String> = [("PORT".to_string(), "80".to_string())].into();
        assert_eq!(
            command_line(&c, &env),
            vec!["python3", "-m", "http.server", "80", "--bind", "$(POD_IP)"]
        );
        let args_only = Container {
            args: vec!["sh".into(), "-c".into(), "echo $(PORT)".into()],
            ..Default::default()
        };
        assert_eq!(command_line(&args_only, &env), vec!["sh", "-c", "echo 80"]);
    }

    #[test]
    fn env_var_names() {
        for ok in ["A", "a_b", "A.B", "-x", "_1"] {
            assert!(is_env_var_name(ok), "{ok}");
        }
        for bad in ["", "1A", "a=b", "a b", "é"] {
            assert!(!is_env_var_name(bad), "{bad}");
        }
    }
}
