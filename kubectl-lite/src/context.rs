//! Global flags → which API server to talk to and which namespace to use, resolved as kubectl
//! does: `--server` > `--kubeconfig` > `$KUBECONFIG` > `~/.kube/config` > `http://127.0.0.1:8080`;
//! the namespace from `-n`, else the context's, else `default`.

use std::path::PathBuf;

use client::config::Kubeconfig;

use crate::errors::{Error, Result};
use crate::rest::Rest;

/// Where kubectl looks when nothing is configured.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Flags every command accepts (kubectl's `genericclioptions.ConfigFlags`).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct GlobalArgs {
    /// The address and port of the Kubernetes API server.
    #[arg(short = 's', long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// Path to the kubeconfig file to use for CLI requests.
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The name of the kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// If present, the namespace scope for this CLI request.
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

/// What a command needs to do its work.
#[derive(Clone, Debug)]
pub struct Context {
    pub rest: Rest,
    /// The namespace to use when a manifest or flag names none.
    pub namespace: String,
    /// Set with `-n`: a manifest in another namespace is then an error, as in kubectl.
    pub namespace_explicit: bool,
}

/// The server and namespace, before any connection is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub server: String,
    pub namespace: String,
}

impl Context {
    /// Read the kubeconfig kubectl would read and build the context.
    pub fn from_args(args: &GlobalArgs) -> Result<Context> {
        let path = Kubeconfig::default_path(args.kubeconfig.as_deref());
        let kubeconfig = match path {
            Some(p) => Some(Kubeconfig::load(&p)?),
            None => None,
        };
        let target = resolve(args, kubeconfig.as_ref())?;
        Ok(Context {
            rest: Rest::new(&target.server)?,
            namespace: target.namespace,
            namespace_explicit: args.namespace.is_some(),
        })
    }
}

/// Pure resolution of flags against a (possibly absent) kubeconfig.
pub fn resolve(args: &GlobalArgs, kubeconfig: Option<&Kubeconfig>) -> Result<Target> {
    let from_config = match (kubeconfig, args.context.as_deref()) {
        (None, Some(name)) => {
            return Err(Error::msg(format!(
                "context was not found for specified context: {name}"
            )));
        }
        (None, None) => None,
        // No current context: kubectl falls back to its defaults.
        (Some(k), None) if k.current_context.is_empty() => None,
        (Some(k), ctx) => Some(k.target(ctx).map_err(|e| match e {
            client::config::ConfigError::NoContext(name) => Error::msg(format!(
                "context was not found for specified context: {name}"
            )),
            other => Error::from(other),
        })?),
    };
    let server = args
        .server
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| from_config.as_ref().map(|t| t.server.clone()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_SERVER.to_string());
    let namespace = args
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| from_config.map(|t| t.namespace))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_string());
    Ok(Target { server, namespace })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Kubeconfig {
        let mut k = Kubeconfig::single("kube-lite", "http://10.0.0.1:6443");
        k.contexts[0].context.namespace = "team-a".into();
        let mut other = k.contexts[0].clone();
        other.name = "other".into();
        other.context.namespace = String::new();
        k.contexts.push(other);
        k
    }

    #[test]
    fn defaults_without_any_configuration() {
        let t = resolve(&GlobalArgs::default(), None).unwrap();
        assert_eq!(
            t,
            Target {
                server: DEFAULT_SERVER.into(),
                namespace: "default".into()
            }
        );
    }

    #[test]
    fn kubeconfig_then_flags() {
        let k = config();
        let t = resolve(&GlobalArgs::default(), Some(&k)).unwrap();
        assert_eq!(
            (t.server.as_str(), t.namespace.as_str()),
            ("http://10.0.0.1:6443", "team-a")
        );

        let args = GlobalArgs {
            server: Some("http://127.0.0.1:9999".into()),
            namespace: Some("blog".into()),
            ..Default::default()
        };
        let t = resolve(&args, Some(&k)).unwrap();
        assert_eq!(
            (t.server.as_str(), t.namespace.as_str()),
            ("http://127.0.0.1:9999", "blog")
        );

        let args = GlobalArgs {
            context: Some("other".into()),
            ..Default::default()
        };
        let t = resolve(&args, Some(&k)).unwrap();
        assert_eq!(
            t.namespace, "default",
            "a context without a namespace means default"
        );
    }

    #[test]
    fn unknown_contexts_are_errors() {
        let args = GlobalArgs {
            context: Some("nope".into()),
            ..Default::default()
        };
        let err = resolve(&args, Some(&config())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "context was not found for specified context: nope"
        );
        assert!(resolve(&args, None).is_err());
    }
}
