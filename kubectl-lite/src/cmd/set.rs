//! `set image KIND/NAME CONTAINER=IMAGE…`: change container images of Deployments,
//! ReplicaSets and pods with a strategic merge patch (containers merged by name), which for a
//! Deployment starts a rollout.

use serde_json::Value;

use crate::builder::{self, Query};
use crate::context::{Context, PatchType};
use crate::errors::{self, Error, Result};
use crate::manifest::FilenameArgs;
use crate::patch;
use crate::printer;

#[derive(clap::Args, Debug)]
pub struct Set {
    #[command(subcommand)]
    pub command: SetCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum SetCommand {
    /// Update the image of containers: `set image deploy/web web=nginx:1.27` (`*=IMAGE`: all).
    Image(SetImage),
}

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  kubectl-lite set image deploy/blog web=python:3.13-alpine
  kubectl-lite set image deploy/blog '*=busybox:1.36'      # every container")]
pub struct SetImage {
    /// `KIND/NAME` or `KIND NAME`, then `CONTAINER=IMAGE…`.
    #[arg(value_name = "RESOURCE CONTAINER=IMAGE…")]
    pub args: Vec<String>,
    #[command(flatten)]
    pub files: FilenameArgs,
    /// Every object of the kinds given.
    #[arg(long)]
    pub all: bool,
    /// The objects matching this label selector.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Output format: `name` prints only `kind.group/name`.
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,
}

impl Set {
    pub async fn run(self, ctx: &Context) -> Result<()> {
        match self.command {
            SetCommand::Image(c) => c.run(ctx).await,
        }
    }
}

/// Where an object of this kind keeps its pod spec.
fn pod_spec_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some("/spec"),
        "Deployment" | "ReplicaSet" => Some("/spec/template/spec"),
        _ => None,
    }
}

/// The object with its images changed; an error names a container that is not there.
pub fn with_images(obj: &Value, kind: &str, images: &[(String, String)]) -> Result<Value> {
    let pointer = pod_spec_pointer(kind)
        .ok_or_else(|| Error::msg(format!("{kind} has no containers to set the image of")))?;
    let mut out = obj.clone();
    let spec = out
        .pointer_mut(pointer)
        .ok_or_else(|| Error::msg(format!("{kind} has no pod spec")))?;
    for (container, image) in images {
        let mut found = false;
        for list in ["initContainers", "containers"] {
            if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
                for c in cs.iter_mut() {
                    if container == "*" || c["name"].as_str() == Some(container) {
                        c["image"] = Value::String(image.clone());
                        found = true;
                    }
                }
            }
        }
        if !found {
            return Err(Error::msg(format!(
                "unable to find container named {container:?}"
            )));
        }
    }
    Ok(out)
}

impl SetImage {
    pub async fn run(self, ctx: &Context) -> Result<()> {
        let name_only = crate::printer::name_only(self.output.as_deref())?;
        let split = self
            .args
            .iter()
            .position(|a| a.contains('='))
            .unwrap_or(self.args.len());
        let (resources, specs) = self.args.split_at(split);
        let mut images = Vec::new();
        for s in specs {
            match s.split_once('=') {
                Some((c, i)) if !c.is_empty() && !i.is_empty() => {
                    images.push((c.to_string(), i.to_string()))
                }
                _ => {
                    return Err(Error::msg(format!(
                        "invalid image spec {s:?}: expected CONTAINER=IMAGE"
                    )));
                }
            }
        }
        if images.is_empty() {
            return Err(Error::msg("at least one image update is required"));
        }
        let (objects, mut errors) = builder::objects(
            ctx,
            Query {
                args: resources,
                files: Some(&self.files),
                selector: self.selector.as_deref(),
                all: self.all,
                all_namespaces: false,
            },
        )
        .await?;
        for o in &objects {
            let changed = match with_images(&o.object, o.info.kind, &images) {
                Ok(c) => c,
                Err(e) => {
                    errors.push(Error::msg(format!("error: {e}")));
                    continue;
                }
            };
            let patch =
                patch::two_way(&o.object, &changed).map_err(|e| Error::msg(e.to_string()))?;
            if patch.as_object().is_some_and(|m| m.is_empty()) {
                continue;
            }
            match ctx.patch(&o.path(), &patch, PatchType::Strategic).await {
                Ok(_) => {
                    let line = o.info.qualified_name(&o.name);
                    printer::stdout(&if name_only {
                        format!("{line}\n")
                    } else {
                        format!("{line} image updated\n")
                    });
                }
                Err(e) if e.is_transport() => return Err(e),
                Err(e) => errors.push(e),
            }
        }
        errors::collect(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn images_are_patched_by_container_name() {
        let d = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:1"}, {"name": "log", "image": "busybox"}]}}}});
        let changed = with_images(&d, "Deployment", &[("web".into(), "nginx:2".into())]).unwrap();
        assert_eq!(
            patch::two_way(&d, &changed).unwrap(),
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "log"}],
                "containers": [{"name": "web", "image": "nginx:2"}]}}}})
        );
        let all = with_images(&d, "Deployment", &[("*".into(), "alpine".into())]).unwrap();
        assert_eq!(
            all["spec"]["template"]["spec"]["containers"][1]["image"],
            "alpine"
        );
        assert_eq!(
            with_images(&d, "Deployment", &[("nope".into(), "x".into())])
                .unwrap_err()
                .to_string(),
            "unable to find container named \"nope\""
        );
        assert!(with_images(&d, "ConfigMap", &[]).is_err());
    }
}
