//! `version`: this client's version and the API server's `/version`.

use serde_json::{Value, json};

use crate::context::Context;
use crate::errors::{Error, Result};
use crate::printer;

/// The Kubernetes version kubectl-lite follows, in the shape of the server's `gitVersion`
/// (`v1.37.0-kube-lite.0.1.0`).
pub const KUBE_MINOR: &str = "37";

#[derive(clap::Args, Debug)]
pub struct Version {
    /// Print the client version only (no server needed).
    #[arg(long)]
    pub client: bool,
    /// Output format: yaml or json.
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,
}

/// kubectl-lite's own version info (`version.Info`).
pub fn client_info() -> Value {
    json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "gitVersion": format!("v1.{KUBE_MINOR}.0-kube-lite.{}", env!("CARGO_PKG_VERSION")),
        "platform": format!("{}/{}", std::env::consts::OS, match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        }),
    })
}

impl Version {
    /// `--client`: no server, no kubeconfig needed.
    pub fn run_client_only(self) -> Result<()> {
        let text = self.render(&client_info(), None)?;
        printer::stdout(&text);
        Ok(())
    }

    pub async fn run(self, ctx: &Context) -> Result<()> {
        let (server, err) = if self.client {
            (None, None)
        } else {
            match ctx.get("/version").await {
                Ok(v) => (Some(v), None),
                Err(e) => (None, Some(e)),
            }
        };
        let text = self.render(&client_info(), server.as_ref())?;
        printer::stdout(&text);
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The versions as `-o` asks.
    fn render(&self, client: &Value, server: Option<&Value>) -> Result<String> {
        let format = self.output.as_deref().unwrap_or("");
        Ok(match format {
            "" => {
                let mut s = format!(
                    "Client Version: {}\n",
                    client["gitVersion"].as_str().unwrap_or_default()
                );
                if let Some(v) = server {
                    s.push_str(&format!(
                        "Server Version: {}\n",
                        v["gitVersion"].as_str().unwrap_or_default()
                    ));
                }
                s
            }
            "json" | "yaml" => {
                let mut all = json!({ "clientVersion": client });
                if let Some(v) = server {
                    all["serverVersion"] = v.clone();
                }
                if format == "json" {
                    printer::to_json(&all) + "\n"
                } else {
                    printer::to_yaml(&all).map_err(Error::Message)?
                }
            }
            other => {
                return Err(Error::msg(format!(
                    "--output must be 'yaml' or 'json', got {other:?}"
                )));
            }
        })
    }
}
