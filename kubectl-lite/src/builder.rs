//! Command-line resource arguments, resolved as kubectl's resource builder does:
//! `KIND [NAME…]`, `KIND/NAME…`, `kind1,kind2 [NAME…]`, and `all` (the kinds in category `all`).
//! Kinds are matched by plural, singular, kind, short name or `plural.group`.
//!
//! [`objects`] then fetches what the commands that act on existing objects (`label`, `scale`,
//! `rollout`, `wait`, …) work on: the named objects, those matching `-l`, or `--all`.

use api::ResourceInfo;
use api::resource::{RESOURCES, lookup, lookup_kind};
use serde_json::Value;

use crate::context::Context;
use crate::errors::{Error, Result};
use crate::manifest::FilenameArgs;
use crate::manifest::{mapping_error, target_namespace};

/// One kind and the names asked for (none: every object, subject to selectors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    pub info: &'static ResourceInfo,
    pub names: Vec<String>,
}

/// Resolve one kind name; `all` is not a kind.
pub fn kind(name: &str) -> Result<&'static ResourceInfo> {
    lookup(name).ok_or_else(|| {
        Error::msg(format!(
            "the server doesn't have a resource type {:?}",
            name.split('.').next().unwrap_or(name)
        ))
    })
}

/// Kinds from a comma-separated list, `all` expanded, duplicates dropped, order kept.
fn kinds(list: &str) -> Result<Vec<&'static ResourceInfo>> {
    let mut out: Vec<&'static ResourceInfo> = Vec::new();
    for k in list.split(',').filter(|k| !k.is_empty()) {
        let found: Vec<&'static ResourceInfo> = if k.eq_ignore_ascii_case("all") {
            RESOURCES
                .iter()
                .filter(|r| r.categories.contains(&"all"))
                .collect()
        } else {
            vec![kind(k)?]
        };
        for f in found {
            if !out.iter().any(|o| o.kind == f.kind && o.group == f.group) {
                out.push(f);
            }
        }
    }
    if out.is_empty() {
        return Err(Error::msg(format!(
            "the server doesn't have a resource type {list:?}"
        )));
    }
    Ok(out)
}

/// Parse `args` into selections, in the order kubectl visits them.
pub fn parse(args: &[String]) -> Result<Vec<Selection>> {
    let Some(first) = args.first() else {
        return Err(Error::msg(
            "You must provide one or more resources by argument or filename.",
        ));
    };
    if args.iter().any(|a| a.contains('/')) {
        if !args.iter().all(|a| a.contains('/')) {
            return Err(Error::msg(
                "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'kubectl get resource/<resource_name>' instead of 'kubectl get resource resource/<resource_name>'",
            ));
        }
        let mut out: Vec<Selection> = Vec::new();
        for a in args {
            let (k, name) = a.split_once('/').unwrap_or((a, ""));
            if name.is_empty() || k.is_empty() || k.contains(',') {
                return Err(Error::msg(format!(
                    "arguments in resource/name form must have a single resource and name: {a:?}"
                )));
            }
            let info = kind(k)?;
            // Consecutive names of one kind are one selection (one table).
            match out.last_mut() {
                Some(last) if std::ptr::eq(last.info, info) => last.names.push(name.to_string()),
                _ => out.push(Selection {
                    info,
                    names: vec![name.to_string()],
                }),
            }
        }
        return Ok(out);
    }
    let names: Vec<String> = args[1..].to_vec();
    if names.iter().any(String::is_empty) {
        return Err(Error::msg("resource name may not be empty"));
    }
    Ok(kinds(first)?
        .into_iter()
        .map(|info| Selection {
            info,
            names: names.clone(),
        })
        .collect())
}

/// One existing object, fetched.
#[derive(Clone, Debug)]
pub struct Object {
    pub info: &'static ResourceInfo,
    pub namespace: String,
    pub name: String,
    pub object: Value,
}

impl Object {
    pub fn path(&self) -> String {
        self.info.object_path(Some(&self.namespace), &self.name)
    }
}

/// What to act on: `KIND NAME…`/`KIND/NAME…`, `-f`, or `KIND` with `-l`/`--all`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Query<'a> {
    pub args: &'a [String],
    pub files: Option<&'a FilenameArgs>,
    pub selector: Option<&'a str>,
    pub all: bool,
    pub all_namespaces: bool,
}

/// Fetch the objects a command acts on. Objects that cannot be fetched (NotFound, …) are
/// returned as errors beside the others, as kubectl carries on past them.
pub async fn objects(ctx: &Context, q: Query<'_>) -> Result<(Vec<Object>, Vec<Error>)> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    if let Some(files) = q.files.filter(|f| !f.is_empty()) {
        if !q.args.is_empty() {
            return Err(Error::msg(
                "when paths, URLs, or stdin is provided as input, you may not specify resource arguments as well",
            ));
        }
        for m in files.read(&mut std::io::stdin())? {
            let Some(info) = lookup_kind(m.api_version(), m.kind()) else {
                errors.push(mapping_error(&m));
                continue;
            };
            let namespace = target_namespace(ctx, info, &m)?;
            match ctx.get(&info.object_path(Some(&namespace), m.name())).await {
                Ok(object) => out.push(Object {
                    info,
                    namespace,
                    name: m.name().to_string(),
                    object,
                }),
                Err(e) if e.is_transport() => return Err(e),
                Err(e) => errors.push(e),
            }
        }
        return Ok((out, errors));
    }
    if q.args.is_empty() {
        return Err(Error::msg(
            "You must provide one or more resources by argument or filename.\nExample resource specifications include:\n   '-f rsrc.yaml'\n   '--filename=rsrc.json'\n   '<resource> <name>'\n   '<resource>'",
        ));
    }
    let selections = parse(q.args)?;
    let named = selections.iter().any(|s| !s.names.is_empty());
    let by_selector = q.selector.is_some() || q.all;
    if named && by_selector {
        return Err(Error::msg(
            "name cannot be provided when a selector is specified",
        ));
    }
    if !named && !by_selector {
        return Err(Error::msg(
            "resource(s) were provided, but no name was specified",
        ));
    }
    let ns = (!q.all_namespaces).then_some(ctx.namespace.as_str());
    for sel in selections {
        if named {
            for name in &sel.names {
                match ctx.get(&sel.info.object_path(ns, name)).await {
                    Ok(object) => out.push(Object {
                        info: sel.info,
                        namespace: if sel.info.namespaced {
                            ctx.namespace.clone()
                        } else {
                            String::new()
                        },
                        name: name.clone(),
                        object,
                    }),
                    Err(e) if e.is_transport() => return Err(e),
                    Err(e) => errors.push(e),
                }
            }
            continue;
        }
        let mut params = Vec::new();
        if let Some(s) = q.selector {
            params.push(("labelSelector", s.to_string()));
        }
        match ctx.list(&sel.info.collection_path(ns), &params).await {
            Ok(items) => out.extend(items.into_iter().map(|object| Object {
                info: sel.info,
                namespace: crate::util::namespace_of(&object).to_string(),
                name: crate::util::name_of(&object).to_string(),
                object,
            })),
            Err(e) if e.is_transport() => return Err(e),
            Err(e) => errors.push(e),
        }
    }
    Ok((out, errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn summary(v: &[Selection]) -> Vec<(String, Vec<String>)> {
        v.iter()
            .map(|s| (s.info.plural.to_string(), s.names.clone()))
            .collect()
    }

    #[test]
    fn kind_and_names() {
        let s = parse(&strings(&["deploy", "a", "b"])).unwrap();
        assert_eq!(
            summary(&s),
            [("deployments".to_string(), strings(&["a", "b"]))]
        );
    }

    #[test]
    fn several_kinds_and_all() {
        let s = parse(&strings(&["deploy,po,deployments.apps"])).unwrap();
        assert_eq!(
            summary(&s),
            [("deployments".into(), vec![]), ("pods".into(), vec![])]
        );
        let s = parse(&strings(&["all"])).unwrap();
        let plurals: Vec<&str> = s.iter().map(|s| s.info.plural).collect();
        assert_eq!(plurals, ["pods", "services", "replicasets", "deployments"]);
    }

    #[test]
    fn slash_form() {
        let s = parse(&strings(&["po/a", "pod/b", "deploy/web"])).unwrap();
        assert_eq!(
            summary(&s),
            [
                ("pods".to_string(), strings(&["a", "b"])),
                ("deployments".to_string(), strings(&["web"]))
            ]
        );
        assert!(parse(&strings(&["po", "deploy/web"])).is_err());
        assert!(parse(&strings(&["po/"])).is_err());
    }

    #[test]
    fn unknown_kinds() {
        let err = parse(&strings(&["widgets"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the server doesn't have a resource type \"widgets\""
        );
        assert!(parse(&[]).is_err());
    }
}
