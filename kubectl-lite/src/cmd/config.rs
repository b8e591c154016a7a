//! `config view|current-context|get-contexts|get-clusters|use-context|set-context|set-cluster|
//! delete-context`: read and edit the kubeconfig file, as kubectl does — the file of
//! `--kubeconfig`, else the first of `$KUBECONFIG`, else `~/.kube/config`.
//!
//! Edits work on the YAML document itself, so fields kubectl-lite does not know (certificates,
//! exec plugins, extensions) are kept as they were; reading goes through
//! `client::config::Kubeconfig`, as every other command does.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use serde_yaml::{Mapping, Value as Yaml};

use crate::context::GlobalArgs;
use crate::errors::{Error, Result};
use crate::printer::{self, Output};
use crate::tabwriter;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  kubectl-lite config get-contexts
  kubectl-lite config use-context kube-lite
  kubectl-lite config set-context --current --namespace=blog")]
pub struct Config {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum ConfigCommand {
    /// Display the kubeconfig (secrets redacted unless --raw).
    View(View),
    /// Display the current context.
    CurrentContext,
    /// Describe one or many contexts.
    GetContexts(GetContexts),
    /// Display the clusters defined in the kubeconfig.
    GetClusters,
    /// Set the current context.
    UseContext(UseContext),
    /// Set a context entry (created if it does not exist).
    SetContext(SetContext),
    /// Set a cluster entry's server.
    SetCluster(SetCluster),
    /// Delete a context from the kubeconfig.
    DeleteContext(UseContext),
}

#[derive(clap::Args, Debug)]
pub struct View {
    /// Only what the current context uses.
    #[arg(long)]
    pub minify: bool,
    /// Show certificates and tokens as they are.
    #[arg(long)]
    pub raw: bool,
    /// Output format: yaml (default), json or jsonpath=TEMPLATE.
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct GetContexts {
    /// Only these contexts.
    pub names: Vec<String>,
    /// Output format: `name` prints only the names.
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,
    /// Don't print headers.
    #[arg(long)]
    pub no_headers: bool,
}

#[derive(clap::Args, Debug)]
pub struct UseContext {
    /// The context's name.
    pub name: String,
}

#[derive(clap::Args, Debug)]
pub struct SetContext {
    /// The context's name (or --current).
    pub name: Option<String>,
    /// Modify the current context.
    #[arg(long)]
    pub current: bool,
    /// The cluster of the context.
    #[arg(long)]
    pub cluster: Option<String>,
    /// The user of the context.
    #[arg(long)]
    pub user: Option<String>,
    /// The namespace of the context.
    #[arg(long)]
    pub namespace: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct SetCluster {
    /// The cluster's name.
    pub name: String,
    /// The API server's URL.
    #[arg(long)]
    pub server: Option<String>,
}

/// The file config commands read and write: the one every other command reads (see
/// [`crate::context::kubeconfig_path`]), else the one kubectl would create, `~/.kube/config`
/// (or the first of `$KUBECONFIG`).
pub fn config_path(args: &GlobalArgs) -> Result<PathBuf> {
    if let Some(p) = crate::context::kubeconfig_path(args) {
        return Ok(p);
    }
    if let Some(v) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty())
        && let Some(p) = std::env::split_paths(&v).next()
    {
        return Ok(p);
    }
    let home = std::env::var_os("HOME").ok_or_else(|| Error::msg("HOME is not set"))?;
    Ok(PathBuf::from(home).join(".kube").join("config"))
}

/// The document (an empty Config when the file does not exist).
fn load(path: &Path) -> Result<Mapping> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(Error::msg(format!(
                "error loading config file {:?}: {e}",
                path.display().to_string()
            )));
        }
    };
    if text.trim().is_empty() {
        let mut m = Mapping::new();
        m.insert("apiVersion".into(), "v1".into());
        m.insert("kind".into(), "Config".into());
        return Ok(m);
    }
    match serde_yaml::from_str::<Yaml>(&text) {
        Ok(Yaml::Mapping(m)) => Ok(m),
        Ok(_) => Err(Error::msg(format!(
            "error loading config file {:?}: not a mapping",
            path.display().to_string()
        ))),
        Err(e) => Err(Error::msg(format!(
            "error loading config file {:?}: {e}",
            path.display().to_string()
        ))),
    }
}

fn save(path: &Path, doc: &Mapping) -> Result<()> {
    let text = serde_yaml::to_string(doc).map_err(|e| Error::msg(e.to_string()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::msg(format!("error creating {}: {e}", dir.display())))?;
    }
    std::fs::write(path, text)
        .map_err(|e| Error::msg(format!("error writing {}: {e}", path.display())))
}

fn str_field(m: &Mapping, key: &str) -> String {
    m.get(key)
        .and_then(Yaml::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The named entries of a list (`clusters`, `contexts`, `users`).
fn entries<'a>(doc: &'a Mapping, list: &str) -> Vec<&'a Mapping> {
    doc.get(list)
        .and_then(Yaml::as_sequence)
        .map(|s| s.iter().filter_map(Yaml::as_mapping).collect())
        .unwrap_or_default()
}

/// The inner map of the entry `name` of `list`, created when missing; whether it was created.
fn entry_mut<'a>(
    doc: &'a mut Mapping,
    list: &str,
    inner: &str,
    name: &str,
) -> Result<(&'a mut Mapping, bool)> {
    let broken = || {
        Error::msg(format!(
            "error loading config file: {list:?} is not a list of named entries"
        ))
    };
    if !doc.get(list).is_some_and(Yaml::is_sequence) {
        doc.insert(list.into(), Yaml::Sequence(Vec::new()));
    }
    let seq = doc
        .get_mut(list)
        .and_then(Yaml::as_sequence_mut)
        .ok_or_else(broken)?;
    let pos = seq
        .iter()
        .position(|e| e.get("name").and_then(Yaml::as_str) == Some(name));
    let created = pos.is_none();
    let pos = pos.unwrap_or_else(|| {
        let mut e = Mapping::new();
        e.insert("name".into(), name.into());
        e.insert(inner.into(), Yaml::Mapping(Mapping::new()));
        seq.push(Yaml::Mapping(e));
        seq.len() - 1
    });
    let e = seq
        .get_mut(pos)
        .and_then(Yaml::as_mapping_mut)
        .ok_or_else(broken)?;
    if !e.get(inner).is_some_and(Yaml::is_mapping) {
        e.insert(inner.into(), Yaml::Mapping(Mapping::new()));
    }
    let inner_map = e
        .get_mut(inner)
        .and_then(Yaml::as_mapping_mut)
        .ok_or_else(broken)?;
    Ok((inner_map, created))
}

impl Config {
    pub fn run(self, global: &GlobalArgs) -> Result<()> {
        let path = config_path(global)?;
        let mut doc = load(&path)?;
        let current = global
            .context
            .clone()
            .unwrap_or_else(|| str_field(&doc, "current-context"));
        match self.command {
            ConfigCommand::View(v) => {
                let text = view(&doc, &v, &current)?;
                printer::stdout(&text);
            }
            ConfigCommand::CurrentContext => {
                let c = str_field(&doc, "current-context");
                if c.is_empty() {
                    return Err(Error::msg("current-context is not set"));
                }
                printer::stdout(&format!("{c}\n"));
            }
            ConfigCommand::GetContexts(g) => printer::stdout(&get_contexts(&doc, &g)?),
            ConfigCommand::GetClusters => {
                let mut text = String::from("NAME\n");
                for c in entries(&doc, "clusters") {
                    text.push_str(&format!("{}\n", str_field(c, "name")));
                }
                printer::stdout(&text);
            }
            ConfigCommand::UseContext(u) => {
                if !entries(&doc, "contexts")
                    .iter()
                    .any(|c| str_field(c, "name") == u.name)
                {
                    return Err(Error::msg(format!(
                        "no context exists with the name: {:?}",
                        u.name
                    )));
                }
                doc.insert("current-context".into(), u.name.clone().into());
                save(&path, &doc)?;
                printer::stdout(&format!("Switched to context {:?}.\n", u.name));
            }
            ConfigCommand::SetContext(s) => {
                let name = match (&s.name, s.current) {
                    (Some(_), true) => {
                        return Err(Error::msg(
                            "you cannot specify both a context name and --current",
                        ));
                    }
                    (Some(n), false) => n.clone(),
                    (None, true) => {
                        let c = str_field(&doc, "current-context");
                        if c.is_empty() {
                            return Err(Error::msg("no current context is set"));
                        }
                        c
                    }
                    (None, false) => {
                        return Err(Error::msg(
                            "you must specify a non-empty context name or --current",
                        ));
                    }
                };
                let (ctx, created) = entry_mut(&mut doc, "contexts", "context", &name)?;
                for (key, value) in [
                    ("cluster", &s.cluster),
                    ("user", &s.user),
                    ("namespace", &s.namespace),
                ] {
                    if let Some(v) = value {
                        ctx.insert(key.into(), v.clone().into());
                    }
                }
                save(&path, &doc)?;
                let verb = if created { "created" } else { "modified" };
                printer::stdout(&format!("Context {name:?} {verb}.\n"));
            }
            ConfigCommand::SetCluster(s) => {
                let (cluster, _) = entry_mut(&mut doc, "clusters", "cluster", &s.name)?;
                if let Some(server) = &s.server {
                    cluster.insert("server".into(), server.clone().into());
                }
                save(&path, &doc)?;
                printer::stdout(&format!("Cluster {:?} set.\n", s.name));
            }
            ConfigCommand::DeleteContext(d) => {
                let shown = path.display().to_string();
                let Some(Yaml::Sequence(seq)) = doc.get_mut("contexts") else {
                    return Err(Error::msg(format!(
                        "cannot delete context {}, not in {shown}",
                        d.name
                    )));
                };
                let before = seq.len();
                seq.retain(|e| e.get("name").and_then(Yaml::as_str) != Some(d.name.as_str()));
                if seq.len() == before {
                    return Err(Error::msg(format!(
                        "cannot delete context {}, not in {shown}",
                        d.name
                    )));
                }
                if str_field(&doc, "current-context") == d.name {
                    printer::stderr(
                        "warning: this removed your active context, use \"kubectl-lite config use-context\" to select a different one\n",
                    );
                }
                save(&path, &doc)?;
                printer::stdout(&format!("deleted context {} from {shown}\n", d.name));
            }
        }
        Ok(())
    }
}

/// Secrets as kubectl hides them in `config view`.
fn redact(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match k.as_str() {
                    "certificate-authority-data"
                    | "client-certificate-data"
                    | "client-key-data" => *x = json!("DATA+OMITTED"),
                    "token" | "password" => *x = json!("REDACTED"),
                    _ => redact(x),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

/// `config view`: the document as kubectl prints it (keys sorted, `preferences: {}`).
pub fn view(doc: &Mapping, v: &View, current: &str) -> Result<String> {
    let mut value: Value = serde_json::to_value(doc).map_err(|e| Error::msg(e.to_string()))?;
    if v.minify {
        if current.is_empty() {
            return Err(Error::msg("current-context must exist in order to minify"));
        }
        let pick = |list: &str, name: &str| -> Value {
            let items: Vec<Value> = value[list]
                .as_array()
                .map(|a| a.iter().filter(|e| e["name"] == name).cloned().collect())
                .unwrap_or_default();
            json!(items)
        };
        let ctx = pick("contexts", current);
        let cluster = ctx[0]["context"]["cluster"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let user = ctx[0]["context"]["user"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let clusters = pick("clusters", &cluster);
        let users = pick("users", &user);
        value["contexts"] = ctx;
        value["clusters"] = clusters;
        value["users"] = users;
        value["current-context"] = json!(current);
    }
    if !v.raw {
        redact(&mut value);
    }
    for list in ["clusters", "contexts", "users"] {
        if value.get(list).is_none() {
            value[list] = Value::Null;
        }
    }
    if value.get("preferences").is_none_or(Value::is_null) {
        value["preferences"] = json!({});
    }
    if value.get("current-context").is_none() {
        value["current-context"] = json!("");
    }
    match Output::parse(v.output.as_deref()).map_err(Error::Message)? {
        Output::Table | Output::Yaml => printer::to_yaml(&value).map_err(Error::Message),
        Output::Json => Ok(printer::to_json(&value) + "\n"),
        Output::JsonPath(t) => t.render(&value).map_err(Error::Message),
        _ => Err(Error::msg(
            "--output must be yaml, json or jsonpath=TEMPLATE",
        )),
    }
}

/// `config get-contexts`: CURRENT NAME CLUSTER AUTHINFO NAMESPACE.
pub fn get_contexts(doc: &Mapping, g: &GetContexts) -> Result<String> {
    let current = str_field(doc, "current-context");
    let all = entries(doc, "contexts");
    for n in &g.names {
        if !all.iter().any(|c| str_field(c, "name") == *n) {
            return Err(Error::msg(format!("context {n} not found")));
        }
    }
    let shown: Vec<&&Mapping> = all
        .iter()
        .filter(|c| g.names.is_empty() || g.names.contains(&str_field(c, "name")))
        .collect();
    match g.output.as_deref() {
        Some("name") => {
            return Ok(shown
                .iter()
                .map(|c| format!("{}\n", str_field(c, "name")))
                .collect());
        }
        None | Some("") => {}
        Some(other) => {
            return Err(Error::msg(format!(
                "output must be one of '' or 'name': {other}"
            )));
        }
    }
    let mut text = String::new();
    if !g.no_headers {
        text.push_str("CURRENT\tNAME\tCLUSTER\tAUTHINFO\tNAMESPACE\n");
    }
    for c in shown {
        let name = str_field(c, "name");
        let inner = c
            .get("context")
            .and_then(Yaml::as_mapping)
            .cloned()
            .unwrap_or_default();
        text.push_str(&format!(
            "{}\t{name}\t{}\t{}\t{}\n",
            if name == current { "*" } else { "" },
            str_field(&inner, "cluster"),
            str_field(&inner, "user"),
            str_field(&inner, "namespace")
        ));
    }
    Ok(tabwriter::align(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-lite\n  cluster:\n    server: http://127.0.0.1:8080\n    certificate-authority-data: QUJD\n    extensions: [{name: x}]\n- name: other\n  cluster: {server: http://10.0.0.1:6443}\ncontexts:\n- name: kube-lite\n  context: {cluster: kube-lite, user: admin, namespace: default}\n- name: staging\n  context: {cluster: other, user: admin}\ncurrent-context: kube-lite\nusers:\n- name: admin\n  user: {token: secret}\n";

    fn doc() -> Mapping {
        serde_yaml::from_str(CONFIG).unwrap()
    }

    #[test]
    fn view_sorts_redacts_and_minifies() {
        let v = View {
            minify: false,
            raw: false,
            output: None,
        };
        insta::assert_snapshot!(view(&doc(), &v, "kube-lite").unwrap());
        let m = View {
            minify: true,
            raw: true,
            output: Some("json".into()),
        };
        let out: Value = serde_json::from_str(&view(&doc(), &m, "staging").unwrap()).unwrap();
        assert_eq!(out["clusters"].as_array().map(Vec::len), Some(1));
        assert_eq!(out["clusters"][0]["name"], "other");
        assert_eq!(out["users"][0]["user"]["token"], "secret");
    }

    #[test]
    fn contexts_table() {
        let g = GetContexts {
            names: vec![],
            output: None,
            no_headers: false,
        };
        insta::assert_snapshot!(get_contexts(&doc(), &g).unwrap());
        let named = GetContexts {
            names: vec!["nope".into()],
            output: None,
            no_headers: false,
        };
        assert_eq!(
            get_contexts(&doc(), &named).unwrap_err().to_string(),
            "context nope not found"
        );
    }

    #[test]
    fn edits_keep_unknown_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, CONFIG).unwrap();
        let global = GlobalArgs {
            kubeconfig: Some(path.clone()),
            ..Default::default()
        };
        let run = |c: ConfigCommand| Config { command: c }.run(&global);
        run(ConfigCommand::UseContext(UseContext {
            name: "staging".into(),
        }))
        .unwrap();
        run(ConfigCommand::SetContext(SetContext {
            name: None,
            current: true,
            cluster: None,
            user: None,
            namespace: Some("team-a".into()),
        }))
        .unwrap();
        run(ConfigCommand::SetContext(SetContext {
            name: Some("new".into()),
            current: false,
            cluster: Some("kube-lite".into()),
            user: Some("admin".into()),
            namespace: None,
        }))
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("extensions:"), "{text}");
        assert!(text.contains("certificate-authority-data: QUJD"), "{text}");
        let k = client::config::Kubeconfig::load(&path).unwrap();
        assert_eq!(k.current_context, "staging");
        let t = k.target(None).unwrap();
        assert_eq!(
            (t.server.as_str(), t.namespace.as_str()),
            ("http://10.0.0.1:6443", "team-a")
        );
        assert!(k.target(Some("new")).is_ok());
        assert!(
            run(ConfigCommand::UseContext(UseContext {
                name: "nope".into()
            }))
            .is_err()
        );
    }
}
