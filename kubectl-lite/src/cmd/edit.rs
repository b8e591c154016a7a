//! `edit KIND/NAME`: the object as YAML in `$KUBE_EDITOR`, `$EDITOR` or `vi`; when the editor
//! exits, the change is sent as a strategic merge patch (from the object as it was to the object
//! as edited). If the server refuses it (an invalid field) or the YAML does not parse, the
//! editor opens again with the reasons at the top of the file, as kubectl does; saving it
//! unchanged gives up and says where the edits were kept.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::builder::{self, Object, Query};
use crate::context::{Context, PatchType};
use crate::errors::{self, Error, Result};
use crate::manifest::FilenameArgs;
use crate::patch;
use crate::printer;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  kubectl-lite edit deploy/blog
  EDITOR=nano kubectl-lite edit cm blog-config")]
pub struct Edit {
    /// `KIND/NAME` or `KIND NAME…`.
    #[arg(value_name = "RESOURCE")]
    pub args: Vec<String>,
    #[command(flatten)]
    pub files: FilenameArgs,
    /// Edit as `yaml` (default) or `json`.
    #[arg(short = 'o', long, default_value = "yaml", value_name = "FORMAT")]
    pub output: String,
}

/// Why the file is opened again: a headline and its details.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reason {
    pub head: String,
    pub details: Vec<String>,
}

/// The comment block at the top of the file.
pub fn header(reasons: &[Reason]) -> String {
    let mut s = String::from(
        "# Please edit the object below. Lines beginning with a '#' will be ignored,\n\
         # and an empty file will abort the edit. If an error occurs while saving this file will be\n\
         # reopened with the relevant failures.\n\
         #\n",
    );
    for r in reasons {
        let head = r.head.replace('\n', "\n# ");
        if r.details.is_empty() {
            s.push_str(&format!("# {head}\n"));
        } else {
            s.push_str(&format!("# {head}:\n"));
        }
        for d in &r.details {
            s.push_str(&format!("# * {}\n", d.replace('\n', "\n# ")));
        }
        s.push_str("#\n");
    }
    s
}

/// The file without its comment lines.
pub fn strip_comments(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The editor command: `$KUBE_EDITOR`, `$EDITOR`, else `vi`.
fn editor() -> String {
    ["KUBE_EDITOR", "EDITOR"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "vi".to_string())
}

/// Run the editor on `file` and wait for it (through `sh -c` when the command has arguments,
/// as kubectl does).
fn launch(file: &Path) -> Result<()> {
    let cmd = editor();
    let status = if cmd.contains(char::is_whitespace) {
        Command::new("sh")
            .arg("-c")
            .arg(format!("{cmd} \"$1\""))
            .arg("sh")
            .arg(file)
            .status()
    } else {
        Command::new(&cmd).arg(file).status()
    };
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(Error::msg(format!(
            "there was a problem with the editor {cmd:?}: {s}"
        ))),
        Err(e) => Err(Error::msg(format!(
            "unable to launch the editor {cmd:?}: {e}"
        ))),
    }
}

/// A file for the editor, kept when something goes wrong.
fn temp_file(ext: &str, text: &str) -> Result<PathBuf> {
    let f = tempfile::Builder::new()
        .prefix("kubectl-lite-edit-")
        .suffix(&format!(".{ext}"))
        .tempfile()
        .map_err(|e| Error::msg(format!("failed to create a temporary file: {e}")))?;
    let (_, path) = f
        .keep()
        .map_err(|e| Error::msg(format!("failed to keep the temporary file: {e}")))?;
    std::fs::write(&path, text)
        .map_err(|e| Error::msg(format!("failed to write {}: {e}", path.display())))?;
    Ok(path)
}

fn preserved(err: Error, file: &Path) -> Error {
    if file.exists() {
        printer::stderr(&format!(
            "A copy of your changes has been stored to {:?}\n",
            file.display().to_string()
        ));
    }
    err
}

impl Edit {
    pub async fn run(self, ctx: &Context) -> Result<()> {
        let json = match self.output.as_str() {
            "yaml" => false,
            "json" => true,
            other => {
                return Err(Error::msg(format!(
                    "the edit mode doesn't support output format {other:?}: use yaml or json"
                )));
            }
        };
        let (objects, errors) = builder::objects(
            ctx,
            Query {
                args: &self.args,
                files: Some(&self.files),
                ..Default::default()
            },
        )
        .await?;
        if !errors.is_empty() {
            return errors::collect(errors);
        }
        if objects.is_empty() {
            return Err(Error::msg("no objects passed to edit"));
        }
        let originals: Vec<Value> = objects
            .iter()
            .map(|o| printer::with_type_meta(o.info, o.object.clone()))
            .collect();
        let doc = if originals.len() == 1 {
            originals[0].clone()
        } else {
            printer::list(originals.clone())
        };
        let render = |v: &Value| -> Result<String> {
            if json {
                Ok(printer::to_json(v) + "\n")
            } else {
                printer::to_yaml(v).map_err(Error::Message)
            }
        };
        let original_text = header(&[]) + &render(&doc)?;
        let mut buf = original_text.clone();
        let mut previous: Option<String> = None;
        let mut file: Option<PathBuf> = None;
        loop {
            let path = temp_file(if json { "json" } else { "yaml" }, &buf)?;
            if let Some(old) = file.replace(path.clone()) {
                let _ = std::fs::remove_file(old);
            }
            launch(&path).map_err(|e| preserved(e, &path))?;
            let edited = std::fs::read_to_string(&path)
                .map_err(|e| Error::msg(format!("failed to read {}: {e}", path.display())))?;
            if let Some(prev) = &previous
                && strip_comments(prev) == strip_comments(&edited)
            {
                return Err(preserved(
                    Error::msg("Edit cancelled, no valid changes were saved."),
                    &path,
                ));
            }
            if strip_comments(&original_text) == strip_comments(&edited) {
                let _ = std::fs::remove_file(&path);
                printer::stderr("Edit cancelled, no changes made.\n");
                return Ok(());
            }
            if strip_comments(&edited).trim().is_empty() {
                let _ = std::fs::remove_file(&path);
                printer::stderr("Edit cancelled, saved file was empty.\n");
                return Ok(());
            }
            let parsed: std::result::Result<Value, String> = if json {
                serde_json::from_str(&strip_comments(&edited)).map_err(|e| e.to_string())
            } else {
                serde_yaml::from_str(&strip_comments(&edited)).map_err(|e| e.to_string())
            };
            let body = strip_comments(&edited);
            let edited_doc = match parsed {
                Ok(v) => v,
                Err(e) => {
                    let reasons = [Reason {
                        head: format!("The edited file had a syntax error: {e}"),
                        details: vec![],
                    }];
                    buf = header(&reasons) + &body;
                    previous = Some(edited);
                    continue;
                }
            };
            let edited_objects: Vec<Value> = if originals.len() == 1 {
                vec![edited_doc]
            } else {
                edited_doc["items"].as_array().cloned().unwrap_or_default()
            };
            let mut reasons = Vec::new();
            let mut retryable = false;
            for (o, (orig, new)) in objects.iter().zip(originals.iter().zip(&edited_objects)) {
                match self.save(ctx, o, orig, new).await {
                    Ok(line) => printer::stdout(&line),
                    Err(Failure::Invalid(r)) => {
                        printer::stderr(&format!(
                            "error: {} {:?} is invalid\n",
                            o.info.qualified_plural(),
                            o.name
                        ));
                        reasons.push(r);
                    }
                    Err(Failure::Other(msg)) => {
                        printer::stderr(&format!("{msg}\n"));
                        retryable = true;
                    }
                }
            }
            if retryable {
                printer::stderr(&format!(
                    "You can run `kubectl-lite replace -f {}` to try this update again.\n",
                    path.display()
                ));
                return Err(Error::Exit(1));
            }
            if reasons.is_empty() {
                let _ = std::fs::remove_file(&path);
                return Ok(());
            }
            buf = header(&reasons) + &body;
            previous = Some(edited);
        }
    }

    /// Patch one object; the line to print, or why it failed.
    async fn save(
        &self,
        ctx: &Context,
        o: &Object,
        orig: &Value,
        new: &Value,
    ) -> std::result::Result<String, Failure> {
        let name = o.info.qualified_name(&o.name);
        for f in ["apiVersion", "kind"] {
            if orig[f] != new[f] {
                return Err(Failure::Other(
                    "error: At least one of apiVersion, kind and name was changed".into(),
                ));
            }
        }
        if orig["metadata"]["name"] != new["metadata"]["name"] {
            return Err(Failure::Other(
                "error: At least one of apiVersion, kind and name was changed".into(),
            ));
        }
        let p = patch::two_way(orig, new).map_err(|e| Failure::Other(format!("error: {e}")))?;
        if p.as_object().is_some_and(|m| m.is_empty()) {
            return Ok(format!("{name} skipped\n"));
        }
        match ctx.patch(&o.path(), &p, PatchType::Strategic).await {
            Ok(_) => Ok(format!("{name} edited\n")),
            Err(e) => match e.status() {
                Some(s) if s.reason == "Invalid" => Err(Failure::Invalid(Reason {
                    head: format!("{} {:?} was not valid", o.info.qualified_plural(), o.name),
                    details: s
                        .details
                        .as_ref()
                        .map(|d| {
                            d.causes
                                .iter()
                                .map(|c| format!("{}: {}", c.field, c.message))
                                .collect()
                        })
                        .unwrap_or_else(|| vec![s.message.clone()]),
                })),
                Some(_) if e.is_not_found() => Err(Failure::Other(format!(
                    "error: {} {:?} could not be found on the server",
                    o.info.qualified_plural(),
                    o.name
                ))),
                _ => Err(Failure::Other(format!(
                    "error: {} {:?} could not be patched: {}",
                    o.info.qualified_plural(),
                    o.name,
                    e
                ))),
            },
        }
    }
}

enum Failure {
    /// Re-open the editor with this reason.
    Invalid(Reason),
    /// Give up on this object.
    Other(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_list_the_reasons() {
        let h = header(&[
            Reason {
                head: "deployments.apps \"web\" was not valid".into(),
                details: vec![
                    "spec.replicas: Invalid value: -1: must be greater than or equal to 0".into(),
                ],
            },
            Reason {
                head: "The edited file had a syntax error: did not find expected key".into(),
                details: vec![],
            },
        ]);
        insta::assert_snapshot!(h);
        assert_eq!(
            strip_comments(&(h + "a: 1\n  # not a comment? yes it is\nb: 2\n")),
            "a: 1\nb: 2\n"
        );
    }
}
