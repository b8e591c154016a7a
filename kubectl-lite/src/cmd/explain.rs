//! `explain KIND[.FIELD…]`: field documentation from the `api` types (see [`crate::explain`]).

use crate::builder;
use crate::errors::{Error, Result};
use crate::printer;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  kubectl-lite explain pods
  kubectl-lite explain deploy.spec.strategy
  kubectl-lite explain pods.spec.containers --recursive")]
pub struct Explain {
    /// `KIND` or `KIND.FIELD.SUBFIELD` (`pods.spec.containers`).
    #[arg(value_name = "TYPE[.FIELD]")]
    pub target: Option<String>,
    /// Every field, nested, names and types only.
    #[arg(long)]
    pub recursive: bool,
    /// The API version (only v1 and apps/v1 are served).
    #[arg(long, value_name = "GROUP/VERSION")]
    pub api_version: Option<String>,
}

impl Explain {
    pub fn run(self) -> Result<()> {
        let Some(target) = self.target.filter(|t| !t.is_empty()) else {
            return Err(Error::msg(
                "You must specify the type of resource to explain. Use \"kubectl-lite api-resources\" for a complete list of supported resources.",
            ));
        };
        // `deployments.apps.spec` names the group too: find the longest kind prefix.
        let parts: Vec<&str> = target.split('.').collect();
        let mut found = None;
        for n in (1..=parts.len().min(3)).rev() {
            if let Ok(info) = builder::kind(&parts[..n].join(".")) {
                found = Some((info, &parts[n..]));
                break;
            }
        }
        let Some((info, path)) = found else {
            return Err(builder::kind(parts[0])
                .err()
                .unwrap_or_else(|| Error::msg("unknown kind")));
        };
        if let Some(v) = &self.api_version
            && *v != info.api_version()
        {
            return Err(Error::msg(format!(
                "couldn't find resource for \"{}\" in version {v:?}",
                info.qualified_kind()
            )));
        }
        let page = crate::explain::explain(info, path, self.recursive).map_err(Error::Message)?;
        printer::stdout(&page);
        Ok(())
    }
}
