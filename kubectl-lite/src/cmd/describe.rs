//! `describe KIND [NAME_PREFIX…]`: fetch an object and what explains it — its Events
//! (`involvedObject` field selectors), a Deployment's ReplicaSets, a ReplicaSet's pods, a
//! Node's pods (`spec.nodeName`, not terminated) and Lease, a Service's EndpointSlices
//! (`kubernetes.io/service-name`) — and print the page `crate::describe`
//! lays out. As in kubectl, a name that matches no object exactly describes every object whose
//! name starts with it.

use api::ResourceInfo;
use api::resource::{ENDPOINT_SLICE, LEASE, POD};
use serde_json::Value;

use crate::builder::{self, Selection};
use crate::context::Context;
use crate::describe;
use crate::errors::{self, Error, Result};
use crate::printer;
use crate::util::{name_of, namespace_of, str_of};
use crate::workloads::owned_replica_sets;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  kubectl-lite describe pod web-1              # the pod, its containers and its events
  kubectl-lite describe deploy blog            # with its ReplicaSets
  kubectl-lite describe node worker-1          # with its pods and allocated resources
  kubectl-lite describe svc blog               # its IPs, ports and ready endpoints
  kubectl-lite describe pods blog              # every pod whose name starts with blog")]
pub struct Describe {
    /// `KIND [NAME_PREFIX…]` or `KIND/NAME`.
    #[arg(value_name = "RESOURCE")]
    pub args: Vec<String>,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Show the object's events.
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub show_events: bool,
}

impl Describe {
    pub async fn run(self, ctx: &Context) -> Result<()> {
        if self.args.is_empty() {
            return Err(Error::msg(
                "You must specify the type of resource to describe. Use \"kubectl-lite api-resources\" for a complete list of supported resources.",
            ));
        }
        let selections = builder::parse(&self.args)?;
        let mut errors = Vec::new();
        let mut first = true;
        for sel in &selections {
            let objects = match self.find(ctx, sel).await {
                Ok((objects, errs)) => {
                    errors.extend(errs);
                    objects
                }
                Err(e) if e.is_transport() => return Err(e),
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            if objects.is_empty() && sel.names.is_empty() && errors.is_empty() {
                printer::stderr(&printer::no_resources(
                    (sel.info.namespaced && !self.all_namespaces).then_some(ctx.namespace.as_str()),
                ));
            }
            for obj in objects {
                let page = match self.page(ctx, sel.info, &obj).await {
                    Ok(p) => p,
                    Err(e) if e.is_transport() => return Err(e),
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                };
                if first {
                    printer::stdout(&page);
                    first = false;
                } else {
                    printer::stdout(&format!("\n\n{page}"));
                }
            }
        }
        errors::collect(errors)
    }

    /// The objects of one selection: by name (or name prefix), or every one matching `-l`.
    async fn find(&self, ctx: &Context, sel: &Selection) -> Result<(Vec<Value>, Vec<Error>)> {
        let ns = (!self.all_namespaces).then_some(ctx.namespace.as_str());
        let mut params = Vec::new();
        if let Some(s) = &self.selector {
            params.push(("labelSelector", s.clone()));
        }
        if sel.names.is_empty() {
            return Ok((
                ctx.list(&sel.info.collection_path(ns), &params).await?,
                Vec::new(),
            ));
        }
        let mut out = Vec::new();
        let mut errors = Vec::new();
        let mut all: Option<Vec<Value>> = None;
        for name in &sel.names {
            match ctx.get(&sel.info.object_path(ns, name)).await {
                Ok(o) => out.push(o),
                Err(e) if e.is_not_found() => {
                    if all.is_none() {
                        all = Some(ctx.list(&sel.info.collection_path(ns), &params).await?);
                    }
                    let matching: Vec<Value> = all
                        .iter()
                        .flatten()
                        .filter(|o| name_of(o).starts_with(name.as_str()))
                        .cloned()
                        .collect();
                    if matching.is_empty() {
                        errors.push(e);
                    }
                    out.extend(matching);
                }
                Err(e) => return Err(e),
            }
        }
        Ok((out, errors))
    }

    /// The events about `obj`.
    async fn events(&self, ctx: &Context, info: &ResourceInfo, obj: &Value) -> Result<Vec<Value>> {
        if !self.show_events {
            return Ok(Vec::new());
        }
        let ns = namespace_of(obj);
        let mut fields = vec![
            format!("involvedObject.kind={}", info.kind),
            format!("involvedObject.name={}", name_of(obj)),
        ];
        if info.namespaced {
            fields.push(format!("involvedObject.namespace={ns}"));
            fields.push(format!(
                "involvedObject.uid={}",
                str_of(obj, "/metadata/uid")
            ));
        }
        let events = api::resource::EVENT.collection_path(info.namespaced.then_some(ns));
        ctx.list(&events, &[("fieldSelector", fields.join(","))])
            .await
    }

    async fn page(
        &self,
        ctx: &Context,
        info: &'static ResourceInfo,
        obj: &Value,
    ) -> Result<String> {
        let now = chrono::Utc::now();
        let events = self.events(ctx, info, obj).await?;
        let ns = namespace_of(obj).to_string();
        Ok(match info.kind {
            "Pod" => describe::pod(obj, &events, now),
            "Deployment" => {
                let target = builder::Object {
                    info,
                    namespace: ns,
                    name: name_of(obj).to_string(),
                    object: obj.clone(),
                };
                let owned = owned_replica_sets(ctx, &target).await.unwrap_or_default();
                let (old, new) = describe::split_replica_sets(obj, &owned);
                describe::deployment(obj, &old, new.as_ref(), &events, now)
            }
            "ReplicaSet" => {
                let selector = describe::selector_string(&obj["spec"]["selector"]);
                let uid = str_of(obj, "/metadata/uid");
                let pods: Vec<Value> = ctx
                    .list(
                        &POD.collection_path(Some(&ns)),
                        &[("labelSelector", selector)],
                    )
                    .await?
                    .into_iter()
                    .filter(|p| describe::controlled_by_uid(p, uid))
                    .collect();
                describe::replica_set(obj, &pods, &events, now)
            }
            "Node" => {
                let name = name_of(obj);
                // As kubectl: an error listing the node's pods fails the describe.
                let pods = ctx
                    .list(
                        &POD.collection_path(None),
                        &[(
                            "fieldSelector",
                            format!(
                                "spec.nodeName={name},status.phase!=Succeeded,status.phase!=Failed"
                            ),
                        )],
                    )
                    .await?;
                let lease = ctx
                    .get(&LEASE.object_path(Some("kube-node-lease"), name))
                    .await
                    .ok();
                describe::node(obj, &pods, lease.as_ref(), &events, now)
            }
            "ConfigMap" => describe::config_map(obj, &events, now),
            "Service" => {
                // As kubectl: slices that cannot be listed describe as none.
                let slices = ctx
                    .list(
                        &ENDPOINT_SLICE.collection_path(Some(&ns)),
                        &[(
                            "labelSelector",
                            format!("kubernetes.io/service-name={}", name_of(obj)),
                        )],
                    )
                    .await
                    .unwrap_or_default();
                describe::service(obj, &slices, &events, now)
            }
            "Endpoints" => describe::endpoints(obj, &events, now),
            "EndpointSlice" => describe::endpoint_slice(obj, &events, now),
            "Namespace" => describe::namespace(obj),
            _ => describe::generic(obj, &events, now),
        })
    }
}
