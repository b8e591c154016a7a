//! kubeconfig files: where the API server is and which namespace to use, as kubectl reads them
//! (`--kubeconfig`, then `KUBECONFIG`, then `~/.kube/config`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Kubeconfig {
    #[serde(default, rename = "apiVersion")]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub clusters: Vec<NamedCluster>,
    #[serde(default)]
    pub users: Vec<NamedUser>,
    #[serde(default)]
    pub contexts: Vec<NamedContext>,
    #[serde(default)]
    pub current_context: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferences: Option<serde_yaml::Value>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NamedCluster {
    pub name: String,
    pub cluster: Cluster,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Cluster {
    pub server: String,
    #[serde(flatten)]
    pub other: serde_yaml::Mapping,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NamedUser {
    pub name: String,
    #[serde(default)]
    pub user: serde_yaml::Value,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NamedContext {
    pub name: String,
    pub context: Context,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Context {
    pub cluster: String,
    #[serde(default)]
    pub user: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read kubeconfig {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to parse kubeconfig {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_yaml::Error,
    },
    #[error("context {0:?} not found in kubeconfig")]
    NoContext(String),
    #[error("cluster {0:?} not found in kubeconfig")]
    NoCluster(String),
}

/// Where to connect and the default namespace, once a context is resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub server: String,
    pub namespace: String,
}

impl Kubeconfig {
    /// A kubeconfig with one cluster/context named `name` pointing at `server`.
    pub fn single(name: &str, server: &str) -> Self {
        Kubeconfig {
            api_version: "v1".into(),
            kind: "Config".into(),
            clusters: vec![NamedCluster {
                name: name.into(),
                cluster: Cluster {
                    server: server.into(),
                    other: Default::default(),
                },
            }],
            users: vec![NamedUser {
                name: "admin".into(),
                user: serde_yaml::Value::Mapping(Default::default()),
            }],
            contexts: vec![NamedContext {
                name: name.into(),
                context: Context {
                    cluster: name.into(),
                    user: "admin".into(),
                    namespace: "default".into(),
                },
            }],
            current_context: name.into(),
            preferences: None,
        }
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        serde_yaml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// The file kubectl would use: `explicit`, else the first of `$KUBECONFIG`, else `~/.kube/config`.
    pub fn default_path(explicit: Option<&Path>) -> Option<PathBuf> {
        if let Some(p) = explicit {
            return Some(p.to_owned());
        }
        if let Some(v) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
            return std::env::split_paths(&v).find(|p| p.exists());
        }
        let home = std::env::var_os("HOME")?;
        let p = PathBuf::from(home).join(".kube").join("config");
        p.exists().then_some(p)
    }

    /// Resolve a context (the current one when `context` is None).
    pub fn target(&self, context: Option<&str>) -> Result<Target, ConfigError> {
        let name = context.unwrap_or(&self.current_context);
        let ctx = self
            .contexts
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| ConfigError::NoContext(name.to_string()))?;
        let cluster = self
            .clusters
            .iter()
            .find(|c| c.name == ctx.context.cluster)
            .ok_or_else(|| ConfigError::NoCluster(ctx.context.cluster.clone()))?;
        Ok(Target {
            server: cluster.cluster.server.clone(),
            namespace: if ctx.context.namespace.is_empty() {
                "default".into()
            } else {
                ctx.context.namespace.clone()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_resolve() {
        let k = Kubeconfig::single("kube-lite", "http://127.0.0.1:8080");
        let text = serde_yaml::to_string(&k).unwrap();
        assert!(text.contains("current-context: kube-lite"));
        let back: Kubeconfig = serde_yaml::from_str(&text).unwrap();
        assert_eq!(
            back.target(None).unwrap(),
            Target {
                server: "http://127.0.0.1:8080".into(),
                namespace: "default".into()
            }
        );
        assert!(back.target(Some("nope")).is_err());
    }
}
