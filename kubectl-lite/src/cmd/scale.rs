//! `scale --replicas=N KIND/NAME`: a JSON merge patch `{"spec":{"replicas":N}}` to the
//! object's `scale` subresource, as kubectl sends. `--current-replicas` is a precondition;
//! `--timeout` waits until the controller reports N replicas.

use std::time::Duration;

use serde_json::{Value, json};

use crate::builder::{self, Query};
use crate::context::{Context, PatchType};
use crate::errors::{self, Error, Result};
use crate::manifest::FilenameArgs;
use crate::printer;
use crate::util::parse_duration;
use crate::watch;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  kubectl-lite scale deploy/blog --replicas=5
  kubectl-lite scale deploy/blog --current-replicas=5 --replicas=2")]
pub struct Scale {
    /// `deployment/NAME`, `replicaset NAME…`.
    #[arg(value_name = "RESOURCE")]
    pub args: Vec<String>,
    #[command(flatten)]
    pub files: FilenameArgs,
    /// The new number of replicas.
    #[arg(long, value_name = "COUNT")]
    pub replicas: Option<i64>,
    /// Only scale if the current number of replicas is this (-1: any).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_name = "COUNT")]
    pub current_replicas: i64,
    /// Only scale if the object's resourceVersion is still this.
    #[arg(long, value_name = "VERSION")]
    pub resource_version: Option<String>,
    /// Every object of the kinds given.
    #[arg(long)]
    pub all: bool,
    /// The objects matching this label selector.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Wait this long for the new number of replicas to be reported (0: don't wait).
    #[arg(long, default_value = "0s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// Output format: `name` prints only `kind.group/name`.
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,
}

impl Scale {
    pub async fn run(self, ctx: &Context) -> Result<()> {
        let name_only = crate::printer::name_only(self.output.as_deref())?;
        let replicas = match self.replicas {
            Some(r) if r >= 0 => r,
            _ => {
                return Err(Error::msg(
                    "The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0",
                ));
            }
        };
        if self.current_replicas < -1 {
            return Err(Error::msg(
                "The --current-replicas must specify an integer of -1 or greater",
            ));
        }
        let (objects, mut errors) = builder::objects(
            ctx,
            Query {
                args: &self.args,
                files: Some(&self.files),
                selector: self.selector.as_deref(),
                all: self.all,
                all_namespaces: false,
            },
        )
        .await?;
        if objects.is_empty() && errors.is_empty() {
            return Err(Error::msg("no objects passed to scale"));
        }
        if self.resource_version.is_some() && objects.len() > 1 {
            return Err(Error::msg(
                "cannot use --resource-version with multiple resources",
            ));
        }
        for o in &objects {
            if !o.info.has_scale {
                errors.push(Error::msg(format!(
                    "{} {:?} cannot be scaled: it has no scale subresource",
                    o.info.qualified_plural(),
                    o.name
                )));
                continue;
            }
            let path = format!("{}/scale", o.path());
            if self.current_replicas >= 0 {
                let scale = ctx.get(&path).await?;
                let current = scale["spec"]["replicas"].as_i64().unwrap_or(0);
                if current != self.current_replicas {
                    errors.push(Error::msg(format!(
                        "Expected replicas to be {}, was {current}",
                        self.current_replicas
                    )));
                    continue;
                }
            }
            let mut patch = json!({"spec": {"replicas": replicas}});
            if let Some(rv) = &self.resource_version {
                patch["metadata"] = json!({"resourceVersion": rv});
            }
            match ctx.patch(&path, &patch, PatchType::Merge).await {
                Ok(_) => {
                    let line = o.info.qualified_name(&o.name);
                    printer::stdout(&if name_only {
                        format!("{line}\n")
                    } else {
                        format!("{line} scaled\n")
                    });
                }
                Err(e) if e.is_transport() => return Err(e),
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            }
            if !self.timeout.is_zero() {
                let deadline = crate::util::deadline(self.timeout);
                let mut synced = |obj: Option<&Value>| -> Result<bool> {
                    let Some(obj) = obj else {
                        return Err(Error::msg("object has been deleted"));
                    };
                    Ok(obj["status"]["replicas"].as_i64().unwrap_or(0) == replicas
                        && obj["status"]["observedGeneration"].as_i64()
                            >= obj["metadata"]["generation"].as_i64())
                };
                if let Err(e) =
                    watch::until(ctx, o.info, &o.namespace, &o.name, deadline, &mut synced).await
                {
                    errors.push(if e.to_string().starts_with("timed out") {
                        Error::msg(format!("timed out waiting for {:?} to be synced", o.name))
                    } else {
                        e
                    });
                }
            }
        }
        errors::collect(errors)
    }
}
