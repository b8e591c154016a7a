//! The namespace controller: a deleted namespace is emptied — every object in it deleted — and
//! then finalized, which lets the API server remove it.

use std::sync::Arc;
use std::time::Duration;

use api::core::Namespace;
use api::resource::RESOURCES;
use client::client::Body;
use client::runtime::controller::Action;
use client::runtime::queue::WorkQueue;
use client::runtime::reflector::Change;
use reqwest::Method;
use serde_json::{Value, json};

use crate::context::{Ctx, Result};

pub struct NamespaceController {
    ctx: Ctx,
    pub queue: WorkQueue,
}

impl NamespaceController {
    pub fn new(ctx: Ctx) -> Arc<Self> {
        Arc::new(NamespaceController {
            ctx,
            queue: WorkQueue::default(),
        })
    }

    pub fn on_namespace(&self, c: &Change<Namespace>) {
        if let Change::Applied { new, .. } = c
            && new.metadata.deletion_timestamp.is_some()
        {
            self.queue.add(new.metadata.name.clone());
        }
    }

    pub async fn sync(self: Arc<Self>, name: String) -> Result<Action> {
        let Some(ns) = self.ctx.namespaces.get(&name) else {
            return Ok(Action::AwaitChange);
        };
        if ns.metadata.deletion_timestamp.is_none() {
            return Ok(Action::AwaitChange);
        }
        let mut remaining = 0;
        for info in RESOURCES.iter().filter(|r| r.namespaced) {
            let list: Value = self
                .ctx
                .client
                .request(Method::GET, &info.collection_path(Some(&name)), Body::None)
                .await?;
            for item in list["items"].as_array().into_iter().flatten() {
                remaining += 1;
                if item.pointer("/metadata/deletionTimestamp").is_some() {
                    continue;
                }
                let obj = item
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let body = json!({"propagationPolicy": "Background"});
                match self
                    .ctx
                    .client
                    .request::<Value>(
                        Method::DELETE,
                        &info.object_path(Some(&name), obj),
                        Body::Json(&body),
                    )
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if remaining > 0 {
            tracing::info!(namespace = %name, remaining, "waiting for the namespace to empty");
            return Ok(Action::RequeueAfter(Duration::from_secs(1)));
        }
        let mut body = serde_json::to_value(&*ns).unwrap_or_default();
        body["spec"]["finalizers"] = json!([]);
        let path = format!(
            "{}/finalize",
            api::resource::NAMESPACE.object_path(None, &name)
        );
        match self
            .ctx
            .client
            .request::<Value>(Method::PUT, &path, Body::Json(&body))
            .await
        {
            Ok(_) => tracing::info!(namespace = %name, "namespace finalized"),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        Ok(Action::AwaitChange)
    }
}
