//! Following one object until something is true of it — what `rollout status`, `wait`,
//! `apply --wait` and `drain` do: GET it, then watch it (`fieldSelector=metadata.name=NAME`) from
//! that resourceVersion, checking each version as it arrives; a watch that ends early (server
//! timeout, `410 Gone`) starts over with a fresh GET. Never a polling loop with bare sleeps.

use std::time::Duration;

use api::ResourceInfo;
use futures::StreamExt;
use serde_json::Value;
use tokio::time::Instant;

use crate::context::{Context, query};
use crate::errors::{Error, Result};

/// What a check decides about the object's current version (`None`: it does not exist).
pub type Check<'a> = dyn FnMut(Option<&Value>) -> Result<bool> + Send + 'a;

/// kubectl's message when `--timeout` runs out.
pub fn timed_out() -> Error {
    Error::msg("timed out waiting for the condition")
}

/// Follow `name` until `check` returns true (Ok), fails (its error), or `deadline` passes
/// ([`timed_out`]).
pub async fn until(
    ctx: &Context,
    info: &ResourceInfo,
    namespace: &str,
    name: &str,
    deadline: Instant,
    check: &mut Check<'_>,
) -> Result<()> {
    let ns = info.namespaced.then_some(namespace);
    let path = info.object_path(ns, name);
    loop {
        let rv = match tokio::time::timeout_at(deadline, ctx.get(&path)).await {
            Err(_) => return Err(timed_out()),
            Ok(Err(e)) if e.is_not_found() => {
                if check(None)? {
                    return Ok(());
                }
                // Not there yet: watch the collection for its creation.
                let list = ctx
                    .get(&format!(
                        "{}{}",
                        info.collection_path(ns),
                        query(&[("fieldSelector", format!("metadata.name={name}"))])
                    ))
                    .await?;
                list["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("0")
                    .to_string()
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(obj)) => {
                if check(Some(&obj))? {
                    return Ok(());
                }
                obj["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("0")
                    .to_string()
            }
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(timed_out());
        }
        let q = query(&[
            ("fieldSelector", format!("metadata.name={name}")),
            ("resourceVersion", rv),
            (
                "timeoutSeconds",
                remaining.as_secs().clamp(1, 300).to_string(),
            ),
            ("watch", "true".to_string()),
        ]);
        let watch = async {
            let mut events = ctx
                .watch(&format!("{}{q}", info.collection_path(ns)), false)
                .await?;
            while let Some(ev) = events.next().await {
                let Ok(ev) = ev else { return Ok(false) };
                let done = match ev.type_.as_str() {
                    "ADDED" | "MODIFIED" => check(Some(&ev.object))?,
                    "DELETED" => check(None)?,
                    // Expired or otherwise broken: start over from a fresh GET.
                    "ERROR" => return Ok(false),
                    _ => false,
                };
                if done {
                    return Ok::<bool, Error>(true);
                }
            }
            Ok(false)
        };
        match tokio::time::timeout_at(deadline, watch).await {
            Err(_) => return Err(timed_out()),
            Ok(Ok(true)) => return Ok(()),
            Ok(Err(e)) => return Err(e),
            // The watch ended: look again, without spinning.
            Ok(Ok(false)) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
