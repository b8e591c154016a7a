//! `-f FILE|DIR|-`: manifests read from files, directories (their `.yaml`, `.yml` and `.json`
//! files in name order; `-R` recursively) and stdin, split into objects (multi-document YAML,
//! JSON, `kind: List`). Everything is read and parsed before anything is sent, so a malformed
//! file changes nothing on the server.

use std::io::Read;
use std::path::{Path, PathBuf};

use api::ResourceInfo;
use api::annotations::LAST_APPLIED;
use api::codec::{CodecError, parse_documents};
use api::resource::lookup_kind;
use serde_json::{Value, json};

use crate::context::Context;
use crate::errors::{Error, Result};
use crate::printer;

/// `-f` and `-R`, shared by apply and delete.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct FilenameArgs {
    /// Files, directories or `-` (stdin) containing the resources.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub filenames: Vec<String>,
    /// Process the directory used in -f recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
}

/// One object from a manifest, and where it came from (for error messages).
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// The path as found (`dir/blog.yaml`), or `STDIN`.
    pub source: String,
    pub object: Value,
}

impl Manifest {
    pub fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or_default()
    }

    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }

    /// The namespace the manifest itself names (`""` when none).
    pub fn namespace(&self) -> &str {
        self.object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
    }
}

impl FilenameArgs {
    pub fn is_empty(&self) -> bool {
        self.filenames.is_empty()
    }

    /// Read every object; stdin is read at most once.
    pub fn read(&self, stdin: &mut dyn Read) -> Result<Vec<Manifest>> {
        let mut out = Vec::new();
        let mut stdin_used = false;
        for f in &self.filenames {
            if f == "-" {
                if stdin_used {
                    continue;
                }
                stdin_used = true;
                let mut text = String::new();
                stdin
                    .read_to_string(&mut text)
                    .map_err(|e| Error::msg(format!("error reading STDIN: {e}")))?;
                out.extend(parse("STDIN", &text)?);
                continue;
            }
            if f.starts_with("http://") || f.starts_with("https://") {
                return Err(Error::msg(format!(
                    "reading manifests from URLs is not supported: {f}"
                )));
            }
            let path = Path::new(f);
            if !path.exists() {
                return Err(Error::msg(format!("the path {f:?} does not exist")));
            }
            for file in files(path, self.recursive)? {
                let text = std::fs::read_to_string(&file).map_err(|e| {
                    Error::msg(format!(
                        "error reading {:?}: {e}",
                        file.display().to_string()
                    ))
                })?;
                out.extend(parse(&file.display().to_string(), &text)?);
            }
        }
        Ok(out)
    }
}

/// A file as itself; a directory as its manifest files in name order (subdirectories with `-R`).
fn files(path: &Path, recursive: bool) -> Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| {
            Error::msg(format!(
                "error reading {:?}: {e}",
                path.display().to_string()
            ))
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut out = Vec::new();
    for e in entries {
        if e.is_dir() {
            if recursive {
                out.extend(files(&e, true)?);
            }
        } else if e
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| matches!(x, "yaml" | "yml" | "json"))
        {
            out.push(e);
        }
    }
    Ok(out)
}

/// Parse one file's documents; every object must say what it is.
pub fn parse(source: &str, text: &str) -> Result<Vec<Manifest>> {
    let docs = parse_documents(text).map_err(|e| {
        Error::msg(match e {
            CodecError::Yaml(y) => format!("error parsing {source}: {y}"),
            CodecError::Json(j) => format!("error parsing {source}: {j}"),
            CodecError::Document { index, message } => {
                format!("error parsing {source}: document {index}: {message}")
            }
        })
    })?;
    let mut out = Vec::new();
    for object in docs {
        for field in ["kind", "apiVersion"] {
            let missing = object
                .get(field)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty);
            if missing {
                let label = if field == "kind" {
                    "Kind"
                } else {
                    "apiVersion"
                };
                return Err(Error::msg(format!(
                    "unable to decode {source:?}: Object '{label}' is missing in '{}'",
                    crate::printer::to_compact_json(&object)
                )));
            }
        }
        if object.get("metadata").is_some_and(|m| !m.is_object()) {
            return Err(Error::msg(format!(
                "unable to decode {source:?}: metadata must be an object"
            )));
        }
        out.push(Manifest {
            source: source.to_string(),
            object,
        });
    }
    Ok(out)
}

// What a manifest becomes when it is sent: its kind's namespace, the last-applied
// annotation, no nulls (shared by apply, create, replace and delete).

/// kubectl's error for a kind the server does not serve.
pub fn mapping_error(m: &Manifest) -> Error {
    Error::msg(format!(
        "resource mapping not found for name: {:?} namespace: {:?} from {:?}: no matches for kind {:?} in version {:?}",
        m.name(),
        m.namespace(),
        m.source,
        m.kind(),
        m.api_version()
    ))
}

/// The namespace an object from a manifest goes to: its own, else `-n`, else the context's.
/// With an explicit `-n`, a manifest naming another namespace is an error, as in kubectl.
pub fn target_namespace(ctx: &Context, info: &ResourceInfo, m: &Manifest) -> Result<String> {
    if !info.namespaced {
        return Ok(String::new());
    }
    let own = m.namespace();
    if own.is_empty() {
        return Ok(ctx.namespace.clone());
    }
    if ctx.namespace_explicit && own != ctx.namespace {
        return Err(Error::msg(format!(
            "the namespace from the provided object {own:?} does not match the namespace {:?}. You must pass '--namespace={own}' to perform this operation.",
            ctx.namespace
        )));
    }
    Ok(own.to_string())
}

/// What `create -f` and `replace -f` send for a manifest: its kind, its namespace and the object
/// placed there (with the last-applied annotation when `save_config`), or why it can't be sent.
pub fn prepare(
    ctx: &Context,
    m: &Manifest,
    save_config: bool,
) -> Result<(&'static ResourceInfo, String, Value)> {
    let info = lookup_kind(m.api_version(), m.kind()).ok_or_else(|| mapping_error(m))?;
    let ns = target_namespace(ctx, info, m)?;
    let mut obj = m.object.clone();
    if info.namespaced {
        obj["metadata"]["namespace"] = json!(ns);
    }
    if save_config {
        obj = with_last_applied(&obj);
    }
    prune_nulls(&mut obj);
    Ok((info, ns, obj))
}

/// The manifest with its own compact JSON recorded in the last-applied annotation — exactly what
/// kubectl records (`GetModifiedConfiguration`): the object without that annotation, keys sorted,
/// an empty `annotations` map kept, and a trailing newline.
pub fn with_last_applied(obj: &Value) -> Value {
    let mut without = obj.clone();
    if !without["metadata"].is_object() {
        without["metadata"] = json!({});
    }
    let mut annotations = without["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    annotations.remove(LAST_APPLIED);
    without["metadata"]["annotations"] = Value::Object(annotations.clone());
    let recorded = printer::to_compact_json(&without) + "\n";
    annotations.insert(LAST_APPLIED.into(), Value::String(recorded));
    let mut modified = without;
    modified["metadata"]["annotations"] = Value::Object(annotations);
    modified
}

/// Drop `null` fields before a create, as kubectl does, so create and update agree.
pub fn prune_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(prune_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(prune_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_and_lists() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n\
                    apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n";
        let m = parse("x.yaml", text).unwrap();
        let names: Vec<&str> = m.iter().map(Manifest::name).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(m[0].source, "x.yaml");
    }

    #[test]
    fn malformed_yaml_names_the_file_and_position() {
        let err = parse("blog.yaml", "apiVersion: v1\nkind: [ConfigMap\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("error parsing blog.yaml: "), "{text}");
        assert!(text.contains("line"), "{text}");
    }

    #[test]
    fn objects_must_have_a_kind() {
        let err = parse("x.yaml", "apiVersion: v1\nmetadata: {name: a}\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"unable to decode "x.yaml": Object 'Kind' is missing in '{"apiVersion":"v1","metadata":{"name":"a"}}'"#
        );
    }

    #[test]
    fn directories_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let cm = |n: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {n}}}\n");
        std::fs::write(dir.path().join("b.yaml"), cm("b")).unwrap();
        std::fs::write(
            dir.path().join("a.json"),
            r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub").join("c.yml"), cm("c")).unwrap();
        let args = |recursive| FilenameArgs {
            filenames: vec![dir.path().display().to_string()],
            recursive,
        };
        let names = |ms: Vec<Manifest>| ms.iter().map(|m| m.name().to_string()).collect::<Vec<_>>();
        assert_eq!(
            names(args(false).read(&mut std::io::empty()).unwrap()),
            ["a", "b"]
        );
        assert_eq!(
            names(args(true).read(&mut std::io::empty()).unwrap()),
            ["a", "b", "c"]
        );
        let stdin = FilenameArgs {
            filenames: vec!["-".into()],
            recursive: false,
        };
        let ms = stdin.read(&mut cm("s").as_bytes()).unwrap();
        assert_eq!((ms[0].source.as_str(), ms[0].name()), ("STDIN", "s"));
        let missing = FilenameArgs {
            filenames: vec!["/nonexistent/x.yaml".into()],
            recursive: false,
        };
        assert_eq!(
            missing.read(&mut std::io::empty()).unwrap_err().to_string(),
            "the path \"/nonexistent/x.yaml\" does not exist"
        );
    }
}
