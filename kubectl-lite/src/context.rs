//! Global flags → which API server to talk to and which namespace to use, resolved as kubectl
//! does: `--server` > `--kubeconfig` > `$KUBECONFIG` > `~/.kube/config` > `http://127.0.0.1:8080`;
//! the namespace from `-n`, else the context's, else `default`. One kube-lite addition: when
//! kubectl would find no kubeconfig at all, `.kube-lite/kubeconfig` (where `kube-lite up` writes
//! one) is used if it is there, so `kube-lite up --api-port 9000` needs no extra step. The [`Context`] then carries a
//! `client::Client` and the few request shapes the commands use (JSON, Tables, patches, watches,
//! streamed logs), with the client's errors turned into kubectl's.

use std::path::PathBuf;
use std::pin::Pin;

use api::meta::WatchEvent;
use client::client::{ACCEPT_TABLE, Body, RequestOptions};
use client::config::Kubeconfig;
use futures::{Stream, StreamExt};
use reqwest::Method;
use serde_json::Value;

use crate::errors::{Error, Result};

/// Where kubectl looks when nothing is configured.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// kubectl's `User-Agent` shape: `kubectl/v1.37.0 (linux/amd64) kubernetes/…`.
pub const USER_AGENT: &str = concat!("kubectl-lite/v", env!("CARGO_PKG_VERSION"));

/// Flags every command accepts (kubectl's `genericclioptions.ConfigFlags`).
#[derive(clap::Args, Clone, Debug, Default)]
#[command(next_help_heading = "Global options")]
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

/// The patch formats of `PATCH` requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// Kubernetes' strategic merge patch (lists merged by key).
    Strategic,
    /// RFC 7386 JSON merge patch.
    Merge,
    /// RFC 6902 JSON patch (a list of operations).
    Json,
}

impl PatchType {
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Strategic => "application/strategic-merge-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Json => "application/json-patch+json",
        }
    }
}

/// The events of a watch, in order; it ends when the server closes the stream.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent<Value>>> + Send>>;

/// What a command needs to do its work.
#[derive(Clone)]
pub struct Context {
    pub client: client::Client,
    /// The namespace to use when a manifest or flag names none.
    pub namespace: String,
    /// Set with `-n`: a manifest in another namespace is then an error, as in kubectl.
    pub namespace_explicit: bool,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("server", &self.client.base_url())
            .field("namespace", &self.namespace)
            .finish()
    }
}

/// The server and namespace, before any connection is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub server: String,
    pub namespace: String,
}

/// The kubeconfig `kube-lite up` writes (relative to the directory it runs in).
pub const LOCAL_KUBECONFIG: &str = ".kube-lite/kubeconfig";

/// The kubeconfig file to read: the one kubectl would read, else (when neither `--kubeconfig`
/// nor `$KUBECONFIG` is given and there is no `~/.kube/config`) kube-lite's own.
pub fn kubeconfig_path(args: &GlobalArgs) -> Option<PathBuf> {
    let found = Kubeconfig::default_path(args.kubeconfig.as_deref());
    let configured =
        args.kubeconfig.is_some() || std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty());
    if found.is_some() || configured {
        return found;
    }
    let local = PathBuf::from(LOCAL_KUBECONFIG);
    local.is_file().then_some(local)
}

/// The kubeconfig to use, if there is one.
pub fn load_kubeconfig(args: &GlobalArgs) -> Result<Option<Kubeconfig>> {
    match kubeconfig_path(args) {
        Some(p) => Ok(Some(Kubeconfig::load(&p)?)),
        None => Ok(None),
    }
}

impl Context {
    /// Read the kubeconfig kubectl would read and build the context.
    pub fn from_args(args: &GlobalArgs) -> Result<Context> {
        let kubeconfig = load_kubeconfig(args)?;
        let target = resolve(args, kubeconfig.as_ref())?;
        Context::new(&target.server, &target.namespace, args.namespace.is_some())
    }

    pub fn new(server: &str, namespace: &str, namespace_explicit: bool) -> Result<Context> {
        let client = client::Client::new(server, USER_AGENT)
            .map_err(|e| match e {
                client::Error::Transport(m) => Error::msg(m),
                other => Error::from(other),
            })?
            // kubectl prints the server's warnings (unknown fields, deprecations) as they come.
            .with_warning_handler(crate::printer::warning);
        Ok(Context {
            client,
            namespace: namespace.to_string(),
            namespace_explicit,
        })
    }

    pub fn server(&self) -> &str {
        self.client.base_url()
    }

    async fn json(
        &self,
        method: Method,
        path: &str,
        body: Body<'_>,
        accept: Option<&str>,
    ) -> Result<Value> {
        let opts = RequestOptions {
            accept,
            streaming: false,
        };
        let resp = self.client.send_with(method, path, body, opts).await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Error::Unreachable(e.to_string()))?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::msg(format!(
                "failed to decode the API server's response: {e}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ))
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.json(Method::GET, path, Body::None, None).await
    }

    /// GET asking for a `meta.k8s.io/v1` Table (the server may still answer plain JSON).
    pub async fn get_table(&self, path: &str) -> Result<Value> {
        self.json(Method::GET, path, Body::None, Some(ACCEPT_TABLE))
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.json(Method::POST, path, Body::Json(body), None).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value> {
        self.json(Method::PUT, path, Body::Json(body), None).await
    }

    pub async fn patch(&self, path: &str, body: &Value, kind: PatchType) -> Result<Value> {
        self.json(
            Method::PATCH,
            path,
            Body::Patch(body, kind.content_type()),
            None,
        )
        .await
    }

    /// DELETE with a `DeleteOptions` body.
    pub async fn delete(&self, path: &str, options: &Value) -> Result<Value> {
        self.json(Method::DELETE, path, Body::Json(options), None)
            .await
    }

    /// `?watch=true`: a stream of events, ending when the server closes it. `table`: ask for
    /// the objects as one-row Tables (`get -w`).
    pub async fn watch(&self, path_and_query: &str, table: bool) -> Result<WatchStream> {
        let opts = RequestOptions {
            accept: table.then_some(ACCEPT_TABLE),
            streaming: true,
        };
        let resp = self
            .client
            .send_with(Method::GET, path_and_query, Body::None, opts)
            .await?;
        let events = client::ndjson::decode::<WatchEvent<Value>, _, _>(resp.bytes_stream());
        Ok(Box::pin(
            events.map(|r| r.map_err(|e| Error::Unreachable(e.to_string()))),
        ))
    }

    /// A GET whose body is streamed as it comes (`pods/NAME/log?follow=true`).
    pub async fn stream(&self, path_and_query: &str) -> Result<reqwest::Response> {
        let opts = RequestOptions {
            accept: Some("*/*"),
            streaming: true,
        };
        Ok(self
            .client
            .send_with(Method::GET, path_and_query, Body::None, opts)
            .await?)
    }

    /// Every item of a list, read in chunks of 500 as kubectl does.
    pub async fn list(&self, collection: &str, params: &[(&str, String)]) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut cont = String::new();
        loop {
            let mut q: Vec<(&str, String)> = params.to_vec();
            q.push(("limit", "500".to_string()));
            if !cont.is_empty() {
                q.push(("continue", cont.clone()));
            }
            let mut page = self.get(&format!("{collection}{}", query(&q))).await?;
            cont = page["metadata"]["continue"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if let Some(Value::Array(a)) = page.get_mut("items").map(Value::take) {
                items.extend(a);
            }
            if cont.is_empty() {
                return Ok(items);
            }
        }
    }
}

/// `?a=b&c=d`, percent-encoded; empty when there are no parameters.
pub fn query(params: &[(&str, String)]) -> String {
    if params.is_empty() {
        return String::new();
    }
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    format!("?{}", s.finish())
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

    #[test]
    fn query_strings_are_encoded() {
        assert_eq!(query(&[]), "");
        assert_eq!(
            query(&[
                ("labelSelector", "app=web,tier in (a)".into()),
                ("limit", "500".into())
            ]),
            "?labelSelector=app%3Dweb%2Ctier+in+%28a%29&limit=500"
        );
    }
}
