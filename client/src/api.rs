//! `Api<K>`: typed get/list/create/replace/patch/delete/watch for one kind in one namespace.

use std::marker::PhantomData;

use api::meta::{DeleteOptions, List, WatchEvent};
use api::{Resource, Status};
use futures::{Stream, StreamExt};
use reqwest::Method;
use serde_json::Value;

use crate::client::{Body, Client};
use crate::error::{Error, Result};
use crate::ndjson;

/// Query parameters of a list (and of the list a watch starts from).
#[derive(Clone, Debug, Default)]
pub struct ListParams {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<i64>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
}

impl ListParams {
    pub fn labels(mut self, s: &str) -> Self {
        self.label_selector = Some(s.to_string());
        self
    }
    pub fn fields(mut self, s: &str) -> Self {
        self.field_selector = Some(s.to_string());
        self
    }

    fn query(&self, q: &mut Vec<(String, String)>) {
        if let Some(s) = &self.label_selector {
            q.push(("labelSelector".into(), s.clone()));
        }
        if let Some(s) = &self.field_selector {
            q.push(("fieldSelector".into(), s.clone()));
        }
        if let Some(l) = self.limit {
            q.push(("limit".into(), l.to_string()));
        }
        if let Some(c) = &self.continue_token {
            q.push(("continue".into(), c.clone()));
        }
        if let Some(rv) = &self.resource_version {
            q.push(("resourceVersion".into(), rv.clone()));
        }
    }
}

/// Patch bodies, by content type.
pub enum Patch<'a> {
    /// RFC 7386 JSON merge patch.
    Merge(&'a Value),
    /// Kubernetes strategic merge patch.
    Strategic(&'a Value),
    /// RFC 6902 JSON patch (an array of operations).
    Json(&'a Value),
}

impl Patch<'_> {
    fn body(&self) -> Body<'_> {
        match self {
            Patch::Merge(v) => Body::Patch(v, "application/merge-patch+json"),
            Patch::Strategic(v) => Body::Patch(v, "application/strategic-merge-patch+json"),
            Patch::Json(v) => Body::Patch(v, "application/json-patch+json"),
        }
    }
}

/// A watch event, decoded.
#[derive(Clone, Debug)]
pub enum Event<K> {
    Added(K),
    Modified(K),
    Deleted(K),
    /// Nothing changed up to this resourceVersion (sent when bookmarks were asked for).
    Bookmark(String),
    /// The server ended the watch with an error, e.g. 410 Expired.
    Error(Box<Status>),
}

pub(crate) fn encode_query(q: &[(String, String)]) -> String {
    if q.is_empty() {
        return String::new();
    }
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in q {
        s.append_pair(k, v);
    }
    format!("?{}", s.finish())
}

/// Typed access to one kind, in one namespace (or cluster-wide).
pub struct Api<K> {
    client: Client,
    namespace: Option<String>,
    _k: PhantomData<fn() -> K>,
}

impl<K> Clone for Api<K> {
    fn clone(&self) -> Self {
        Api {
            client: self.client.clone(),
            namespace: self.namespace.clone(),
            _k: PhantomData,
        }
    }
}

impl<K: Resource> Api<K> {
    /// Objects in one namespace.
    pub fn namespaced(client: Client, ns: &str) -> Self {
        Api {
            client,
            namespace: Some(ns.to_string()),
            _k: PhantomData,
        }
    }

    /// Every namespace (for lists and watches), or a cluster-scoped kind.
    pub fn all(client: Client) -> Self {
        Api {
            client,
            namespace: None,
            _k: PhantomData,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    fn collection(&self) -> String {
        K::INFO.collection_path(self.namespace.as_deref())
    }

    fn object(&self, name: &str) -> String {
        K::INFO.object_path(self.namespace.as_deref(), name)
    }

    pub async fn get(&self, name: &str) -> Result<K> {
        self.client
            .request(Method::GET, &self.object(name), Body::None)
            .await
    }

    /// `None` when the object does not exist.
    pub async fn get_opt(&self, name: &str) -> Result<Option<K>> {
        match self.get(name).await {
            Ok(o) => Ok(Some(o)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn list(&self, p: &ListParams) -> Result<List<K>> {
        let mut q = Vec::new();
        p.query(&mut q);
        self.client
            .request(
                Method::GET,
                &format!("{}{}", self.collection(), encode_query(&q)),
                Body::None,
            )
            .await
    }

    pub async fn create(&self, obj: &K) -> Result<K> {
        self.client
            .request_with(Method::POST, &self.collection(), obj)
            .await
    }

    /// PUT: fails with 409 Conflict when `obj`'s resourceVersion is stale.
    pub async fn replace(&self, name: &str, obj: &K) -> Result<K> {
        self.client
            .request_with(Method::PUT, &self.object(name), obj)
            .await
    }

    /// PUT to the `status` subresource: only status changes.
    pub async fn replace_status(&self, name: &str, obj: &K) -> Result<K> {
        self.client
            .request_with(Method::PUT, &format!("{}/status", self.object(name)), obj)
            .await
    }

    pub async fn patch(&self, name: &str, patch: &Patch<'_>) -> Result<K> {
        self.client
            .request(Method::PATCH, &self.object(name), patch.body())
            .await
    }

    pub async fn patch_status(&self, name: &str, patch: &Patch<'_>) -> Result<K> {
        self.client
            .request(
                Method::PATCH,
                &format!("{}/status", self.object(name)),
                patch.body(),
            )
            .await
    }

    /// DELETE with options. Returns the object when it is kept for a while (graceful deletion,
    /// finalizers) and `None` when it is gone.
    pub async fn delete(&self, name: &str, opts: &DeleteOptions) -> Result<Option<K>> {
        let body = serde_json::to_value(opts).map_err(|e| Error::Decode(e.to_string()))?;
        let v: Value = self
            .client
            .request(Method::DELETE, &self.object(name), Body::Json(&body))
            .await?;
        if v.get("kind").and_then(Value::as_str) == Some("Status") {
            return Ok(None);
        }
        let obj: K = serde_json::from_value(v).map_err(|e| Error::Decode(e.to_string()))?;
        Ok(Some(obj))
    }

    /// Watch changes after `resource_version` (`"0"` or empty: current objects first, as ADDED).
    pub async fn watch(
        &self,
        p: &ListParams,
        resource_version: &str,
        timeout_seconds: Option<u32>,
        bookmarks: bool,
    ) -> Result<impl Stream<Item = Result<Event<K>>> + Send + use<K>> {
        let mut q = vec![("watch".to_string(), "true".to_string())];
        let mut p = p.clone();
        p.resource_version = Some(resource_version.to_string());
        p.limit = None;
        p.continue_token = None;
        p.query(&mut q);
        if let Some(t) = timeout_seconds {
            q.push(("timeoutSeconds".into(), t.to_string()));
        }
        if bookmarks {
            q.push(("allowWatchBookmarks".into(), "true".into()));
        }
        let path = format!("{}{}", self.collection(), encode_query(&q));
        let resp = self
            .client
            .send(Method::GET, &path, Body::None, true)
            .await?;
        Ok(
            ndjson::decode::<WatchEvent<Value>, _, _>(resp.bytes_stream()).map(|r| {
                let ev = r.map_err(|e| Error::Transport(e.to_string()))?;
                decode_event::<K>(ev)
            }),
        )
    }
}

fn decode_event<K: Resource>(ev: WatchEvent<Value>) -> Result<Event<K>> {
    let obj =
        || serde_json::from_value::<K>(ev.object.clone()).map_err(|e| Error::Decode(e.to_string()));
    Ok(match ev.type_.as_str() {
        "ADDED" => Event::Added(obj()?),
        "MODIFIED" => Event::Modified(obj()?),
        "DELETED" => Event::Deleted(obj()?),
        "BOOKMARK" => Event::Bookmark(
            ev.object
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        ),
        "ERROR" => Event::Error(Box::new(
            serde_json::from_value(ev.object).map_err(|e| Error::Decode(e.to_string()))?,
        )),
        other => return Err(Error::Decode(format!("unknown watch event type {other:?}"))),
    })
}

impl Api<api::Pod> {
    /// Bind a pod to a node (`pods/binding`): what the scheduler does.
    pub async fn bind(&self, name: &str, node: &str) -> Result<()> {
        let ns = self.namespace.clone().unwrap_or_default();
        let body = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": ns},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        let _: Value = self
            .client
            .request(
                Method::POST,
                &format!("{}/binding", self.object(name)),
                Body::Json(&body),
            )
            .await?;
        Ok(())
    }
}
