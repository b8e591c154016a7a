//! `replace -f FILE`: PUT each object whole, as written (fields missing from the file are gone
//! afterwards). With a `resourceVersion` in the file, the server refuses a stale replace with a
//! Conflict; without one the replace is unconditional. `--force` deletes and re-creates.

use std::time::Duration;

use serde_json::json;

use crate::context::Context;
use crate::errors::{self, Error, Result};
use crate::manifest::FilenameArgs;
use crate::manifest::prepare;
use crate::printer;
use crate::printer::name_only;
use crate::watch;

#[derive(clap::Args, Debug)]
pub struct Replace {
    #[command(flatten)]
    pub files: FilenameArgs,
    /// Delete the object and create it again (it gets a new uid).
    #[arg(long)]
    pub force: bool,
    /// Record the object in the last-applied annotation.
    #[arg(long)]
    pub save_config: bool,
    /// Output format: `name` prints only `kind.group/name`.
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,
}

impl Replace {
    pub async fn run(self, ctx: &Context) -> Result<()> {
        if self.files.is_empty() {
            return Err(Error::msg("must specify --filename to replace"));
        }
        let name_only = name_only(self.output.as_deref())?;
        let mut errors = Vec::new();
        for m in self.files.read(&mut std::io::stdin())? {
            let (info, ns, mut obj) = match prepare(ctx, &m, self.save_config) {
                Ok(p) => p,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let path = info.object_path(Some(&ns), m.name());
            let result = if self.force {
                // Delete, wait for it to be gone, create.
                match ctx
                    .delete(&path, &json!({"propagationPolicy": "Background"}))
                    .await
                {
                    Ok(_) => {
                        printer::stdout(&format!("{} {:?} deleted\n", info.kind_string(), m.name()))
                    }
                    Err(e) if e.is_not_found() => {}
                    Err(e) => {
                        errors.push(e.with_source("deleting", &m.source));
                        continue;
                    }
                }
                let deadline = crate::util::deadline(Duration::from_secs(60));
                let mut gone = |o: Option<&serde_json::Value>| Ok(o.is_none());
                watch::until(ctx, info, &ns, m.name(), deadline, &mut gone).await?;
                if let Some(meta) = obj["metadata"].as_object_mut() {
                    meta.remove("resourceVersion");
                    meta.remove("uid");
                }
                ctx.post(&info.collection_path(Some(&ns)), &obj).await
            } else {
                ctx.put(&path, &obj).await
            };
            match result {
                Ok(_) => {
                    let line = info.qualified_name(m.name());
                    printer::stdout(&if name_only {
                        format!("{line}\n")
                    } else {
                        format!("{line} replaced\n")
                    });
                }
                Err(e) if e.is_transport() => return Err(e),
                Err(e) => errors.push(e.with_source("replacing", &m.source)),
            }
        }
        errors::collect(errors)
    }
}
