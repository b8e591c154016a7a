//! `create -f FILE` (POST each object; AlreadyExists is an error, unlike `apply`) and the
//! generators `create configmap|namespace|deployment NAME`, which build the object from flags
//! (`--dry-run=client -o yaml` prints it instead: a manifest to start from).

use std::path::Path;

use api::ResourceInfo;
use api::resource::{CONFIG_MAP, DEPLOYMENT, NAMESPACE};
use serde_json::{Map, Value, json};

use crate::context::{Context, query};
use crate::errors::{self, Error, Result};
use crate::manifest::FilenameArgs;
use crate::manifest::{prepare, with_last_applied};
use crate::printer::name_only;
use crate::printer::{self, Output};

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
#[command(after_help = "Examples:
  kubectl-lite create -f examples/blog.yaml
  kubectl-lite create configmap settings --from-literal=title=Hello --from-file=app.conf
  kubectl-lite create namespace team-a
  kubectl-lite create deployment web --image=busybox -- sleep 3600
  kubectl-lite create configmap demo --from-literal=a=b --dry-run=client -o yaml")]
pub struct Create {
    #[command(subcommand)]
    pub generator: Option<Generator>,
    #[command(flatten)]
    pub files: FilenameArgs,
    /// Record the object in the last-applied annotation, so that `apply` can manage it later.
    #[arg(long)]
    pub save_config: bool,
    /// Output format: `name` prints only `kind.group/name`.
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum Generator {
    /// Create a ConfigMap from literal values, files, directories or env files.
    #[command(alias = "cm")]
    Configmap(CreateConfigMap),
    /// Create a namespace.
    #[command(alias = "ns")]
    Namespace(CreateNamespace),
    /// Create a Deployment running one container (`-- COMMAND ARGS…` is what it runs).
    #[command(alias = "deploy")]
    Deployment(CreateDeployment),
}

/// What every generator takes.
#[derive(clap::Args, Debug, Default)]
pub struct GeneratorFlags {
    /// `none` (create it), `client` (only print it) or `server`.
    #[arg(long, default_value = "none", num_args = 0..=1, require_equals = true, default_missing_value = "client", value_name = "STRATEGY")]
    pub dry_run: String,
    /// Output format: yaml, json or name.
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,
    /// Record the object in the last-applied annotation.
    #[arg(long)]
    pub save_config: bool,
}

#[derive(clap::Args, Debug)]
pub struct CreateConfigMap {
    /// The ConfigMap's name.
    pub name: String,
    /// `key=value` (repeat for more).
    #[arg(long, value_name = "KEY=VALUE")]
    pub from_literal: Vec<String>,
    /// `[key=]path`: a file (the key defaults to its name) or every file of a directory.
    #[arg(long, value_name = "[KEY=]PATH")]
    pub from_file: Vec<String>,
    /// A file of `KEY=VALUE` lines (`#` comments and blank lines skipped).
    #[arg(long, value_name = "PATH")]
    pub from_env_file: Vec<String>,
    #[command(flatten)]
    pub flags: GeneratorFlags,
}

#[derive(clap::Args, Debug)]
pub struct CreateNamespace {
    /// The namespace's name.
    pub name: String,
    #[command(flatten)]
    pub flags: GeneratorFlags,
}

#[derive(clap::Args, Debug)]
pub struct CreateDeployment {
    /// The Deployment's name (also its `app` label).
    pub name: String,
    /// The container image (recorded; kube-lite runs the command on the host).
    #[arg(long)]
    pub image: String,
    /// Number of replicas.
    #[arg(short = 'r', long, default_value_t = 1)]
    pub replicas: i64,
    /// A port the container listens on.
    #[arg(long)]
    pub port: Option<i64>,
    /// The command to run, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
    #[command(flatten)]
    pub flags: GeneratorFlags,
}

impl Create {
    pub async fn run(self, ctx: &Context) -> Result<()> {
        match self.generator {
            Some(Generator::Configmap(c)) => {
                let obj = config_map(&c, &ctx.namespace)?;
                generate(ctx, &CONFIG_MAP, obj, &c.flags).await
            }
            Some(Generator::Namespace(c)) => {
                let obj =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": c.name}});
                generate(ctx, &NAMESPACE, obj, &c.flags).await
            }
            Some(Generator::Deployment(c)) => {
                let obj = deployment(&c, &ctx.namespace);
                generate(ctx, &DEPLOYMENT, obj, &c.flags).await
            }
            None => {
                create_from_files(ctx, &self.files, self.save_config, self.output.as_deref()).await
            }
        }
    }
}

async fn create_from_files(
    ctx: &Context,
    files: &FilenameArgs,
    save_config: bool,
    output: Option<&str>,
) -> Result<()> {
    if files.is_empty() {
        return Err(Error::msg(
            "must specify one of -f and -k, or a resource to create (see 'kubectl-lite create --help')",
        ));
    }
    let name_only = name_only(output)?;
    let manifests = files.read(&mut std::io::stdin())?;
    let mut errors = Vec::new();
    for m in manifests {
        let (info, ns, obj) = match prepare(ctx, &m, save_config) {
            Ok(p) => p,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        match ctx.post(&info.collection_path(Some(&ns)), &obj).await {
            Ok(created) => {
                let name = created["metadata"]["name"].as_str().unwrap_or(m.name());
                let line = info.qualified_name(name);
                printer::stdout(&if name_only {
                    format!("{line}\n")
                } else {
                    format!("{line} created\n")
                });
            }
            Err(e) if e.is_transport() => return Err(e),
            Err(e) => errors.push(e.with_source("creating", &m.source)),
        }
    }
    errors::collect(errors)
}

/// Create (or with `--dry-run=client` print) a generated object.
async fn generate(
    ctx: &Context,
    info: &'static ResourceInfo,
    obj: Value,
    flags: &GeneratorFlags,
) -> Result<()> {
    let output = Output::parse(flags.output.as_deref()).map_err(Error::Message)?;
    if output == Output::Wide {
        return Err(Error::msg(
            "unable to match a printer suitable for the output format \"wide\", allowed formats are: json,jsonpath,jsonpath-file,name,yaml",
        ));
    }
    let mut obj = obj;
    if flags.save_config {
        obj = with_last_applied(&obj);
    }
    let dry = match flags.dry_run.as_str() {
        "none" | "false" => None,
        "client" | "true" => Some("client"),
        "server" => Some("server"),
        other => {
            return Err(Error::msg(format!(
                "Invalid dry-run value ({other}). Must be \"none\", \"server\", or \"client\"."
            )));
        }
    };
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let result = match dry {
        Some("client") => obj,
        _ => {
            let ns = info.namespaced.then_some(ctx.namespace.as_str());
            let q = if dry == Some("server") {
                query(&[("dryRun", "All".to_string())])
            } else {
                String::new()
            };
            ctx.post(&format!("{}{q}", info.collection_path(ns)), &obj)
                .await?
        }
    };
    let suffix = match dry {
        Some("client") => " (dry run)",
        Some(_) => " (server dry run)",
        None => "",
    };
    let text = match output {
        Output::Table => format!("{} created{suffix}\n", info.qualified_name(&name)),
        Output::Name => format!("{}\n", info.qualified_name(&name)),
        other => printer::generic(&other, vec![(info, result)], true).map_err(Error::Message)?,
    };
    printer::stdout(&text);
    Ok(())
}

/// kubectl's rule for ConfigMap keys.
fn valid_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::msg(format!(
            "{key:?} is not a valid key name for a ConfigMap: a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
        )))
    }
}

fn insert(
    data: &mut Map<String, Value>,
    binary: &mut Map<String, Value>,
    key: &str,
    bytes: Vec<u8>,
) -> Result<()> {
    valid_key(key)?;
    if data.contains_key(key) || binary.contains_key(key) {
        return Err(Error::msg(format!(
            "cannot add key {key}, another key by that name already exists in Data for ConfigMap"
        )));
    }
    match String::from_utf8(bytes) {
        Ok(text) => data.insert(key.to_string(), json!(text)),
        Err(e) => binary.insert(key.to_string(), json!(base64(e.as_bytes()))),
    };
    Ok(())
}

/// The ConfigMap `create configmap` makes (pure but for reading the files named).
pub fn config_map(c: &CreateConfigMap, namespace: &str) -> Result<Value> {
    let mut data = Map::new();
    let mut binary = Map::new();
    for lit in &c.from_literal {
        let Some((k, v)) = lit.split_once('=') else {
            return Err(Error::msg(format!(
                "invalid literal source {lit}, expected key=value"
            )));
        };
        insert(&mut data, &mut binary, k, v.as_bytes().to_vec())?;
    }
    for source in &c.from_file {
        let (key, path) = match source.split_once('=') {
            Some((k, p)) => (Some(k.to_string()), p),
            None => (None, source.as_str()),
        };
        let p = Path::new(path);
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| Error::msg(format!("error reading {}: {e}", p.display())))
        };
        if p.is_dir() {
            if key.is_some() {
                return Err(Error::msg(format!(
                    "cannot give a key name for a directory path: {path}"
                )));
            }
            let mut entries: Vec<_> = std::fs::read_dir(p)
                .map_err(|e| Error::msg(format!("error reading {path}: {e}")))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|e| e.is_file())
                .collect();
            entries.sort();
            for f in entries {
                let k = f
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                insert(&mut data, &mut binary, &k, read(&f)?)?;
            }
        } else {
            let k = key.unwrap_or_else(|| {
                p.file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default()
            });
            insert(&mut data, &mut binary, &k, read(p)?)?;
        }
    }
    for path in &c.from_env_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::msg(format!("error reading {path}: {e}")))?;
        for (k, v) in env_file(&text, path)? {
            valid_key(&k)?;
            // Later lines win, as in kubectl.
            data.insert(k, json!(v));
        }
    }
    let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": c.name, "namespace": namespace}});
    if !data.is_empty() {
        obj["data"] = Value::Object(data);
    }
    if !binary.is_empty() {
        obj["binaryData"] = Value::Object(binary);
    }
    Ok(obj)
}

/// `KEY=VALUE` lines; `#` comments and blank lines skipped; a bare `KEY` takes its value from
/// this process's environment.
pub fn env_file(text: &str, path: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) => {
                if k.is_empty() || k.contains(char::is_whitespace) {
                    return Err(Error::msg(format!(
                        "{path}:{}: {k:?} is not a valid key name: a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit",
                        i + 1
                    )));
                }
                out.push((k.to_string(), v.to_string()));
            }
            None => {
                if let Ok(v) = std::env::var(line.trim_end()) {
                    out.push((line.trim_end().to_string(), v));
                }
            }
        }
    }
    Ok(out)
}

/// Standard base64 with padding (binary ConfigMap data).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The Deployment `create deployment` makes: label `app=NAME`, one container named after the
/// image.
pub fn deployment(c: &CreateDeployment, namespace: &str) -> Value {
    let base = c.image.rsplit('/').next().unwrap_or(&c.image);
    let container_name: String = base
        .split([':', '@'])
        .next()
        .unwrap_or(base)
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() {
                ch.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let mut container = json!({"name": container_name, "image": c.image});
    if let Some(p) = c.port {
        container["ports"] = json!([{"containerPort": p}]);
    }
    if !c.command.is_empty() {
        container["command"] = json!(c.command);
    }
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": c.name, "namespace": namespace, "labels": {"app": c.name}},
        "spec": {
            "replicas": c.replicas,
            "selector": {"matchLabels": {"app": c.name}},
            "template": {
                "metadata": {"labels": {"app": c.name}},
                "spec": {"containers": [container]}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(literals: &[&str], files: &[String], env: &[String]) -> Result<Value> {
        config_map(
            &CreateConfigMap {
                name: "settings".into(),
                from_literal: literals.iter().map(|s| s.to_string()).collect(),
                from_file: files.to_vec(),
                from_env_file: env.to_vec(),
                flags: GeneratorFlags::default(),
            },
            "default",
        )
    }

    #[test]
    fn config_maps_from_literals_files_and_env_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("app.conf");
        std::fs::write(&f, "port=80\n").unwrap();
        std::fs::write(dir.path().join("blob.bin"), [0xff, 0x00, 0x01]).unwrap();
        let env = dir.path().join("app.env");
        std::fs::write(&env, "# settings\nMODE=prod\n\n  LEVEL=3\nMODE=staging\n").unwrap();
        let obj = cm(
            &["title=Hello=World", "empty="],
            &[
                format!("custom={}", f.display()),
                dir.path().join("blob.bin").display().to_string(),
            ],
            &[env.display().to_string()],
        )
        .unwrap();
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "settings", "namespace": "default"},
                   "data": {"title": "Hello=World", "empty": "", "custom": "port=80\n",
                            "MODE": "staging", "LEVEL": "3"},
                   "binaryData": {"blob.bin": "/wAB"}})
        );
        let whole_dir = cm(&[], &[dir.path().display().to_string()], &[]).unwrap();
        let keys: Vec<&String> = whole_dir["data"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["app.conf", "app.env"]);
    }

    #[test]
    fn config_map_errors_are_kubectls() {
        assert_eq!(
            cm(&["novalue"], &[], &[]).unwrap_err().to_string(),
            "invalid literal source novalue, expected key=value"
        );
        assert!(
            cm(&["a b=1"], &[], &[])
                .unwrap_err()
                .to_string()
                .starts_with("\"a b\" is not a valid key name for a ConfigMap")
        );
        assert_eq!(
            cm(&["a=1", "a=2"], &[], &[]).unwrap_err().to_string(),
            "cannot add key a, another key by that name already exists in Data for ConfigMap"
        );
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }

    #[test]
    fn deployments_are_named_after_their_image() {
        let d = deployment(
            &CreateDeployment {
                name: "web".into(),
                image: "registry.local/python:3.12".into(),
                replicas: 2,
                port: Some(8000),
                command: vec!["python3".into(), "-m".into(), "http.server".into()],
                flags: GeneratorFlags::default(),
            },
            "default",
        );
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["name"], "python");
        assert_eq!(c["command"], json!(["python3", "-m", "http.server"]));
        assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
        assert_eq!(d["spec"]["replicas"], 2);
    }
}
