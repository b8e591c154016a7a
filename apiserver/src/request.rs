//! What a request addresses: parsed from Kubernetes' REST paths
//! (`/api/v1/namespaces/{ns}/pods/{name}/status`, `/apis/apps/v1/deployments`, …).

use std::collections::HashMap;

use api::ResourceInfo;
use api::resource::RESOURCES;

/// A resource, collection or subresource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub info: &'static ResourceInfo,
    /// None for cluster-scoped kinds and for lists across all namespaces.
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// `status`, `binding`, `scale`, `log`, `finalize`.
    pub sub: Option<String>,
}

fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Parse a path; None when it names no resource.
pub fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    if rest.iter().any(|s| s.is_empty()) {
        return None;
    }
    let owned = |s: &str| Some(s.to_string());
    match rest {
        ["namespaces", ns, plural, tail @ ..]
            if find(group, version, plural).is_some_and(|r| r.namespaced) =>
        {
            let info = find(group, version, plural)?;
            match tail {
                [] => Some(Target {
                    info,
                    namespace: owned(ns),
                    name: None,
                    sub: None,
                }),
                [name] => Some(Target {
                    info,
                    namespace: owned(ns),
                    name: owned(name),
                    sub: None,
                }),
                [name, sub] => Some(Target {
                    info,
                    namespace: owned(ns),
                    name: owned(name),
                    sub: owned(sub),
                }),
                _ => None,
            }
        }
        [plural, tail @ ..] => {
            let info = find(group, version, plural)?;
            match tail {
                [] => Some(Target {
                    info,
                    namespace: None,
                    name: None,
                    sub: None,
                }),
                [name] if !info.namespaced => Some(Target {
                    info,
                    namespace: None,
                    name: owned(name),
                    sub: None,
                }),
                [name, sub] if !info.namespaced => Some(Target {
                    info,
                    namespace: None,
                    name: owned(name),
                    sub: owned(sub),
                }),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Query parameters; a repeated parameter keeps its first value.
pub fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    if let Some(q) = q {
        for (k, v) in url_decode_pairs(q) {
            out.entry(k).or_insert(v);
        }
    }
    out
}

/// Every value of a repeated query parameter, in order (`command=sh&command=-c`).
pub fn query_all(q: Option<&str>, name: &str) -> Vec<String> {
    url_decode_pairs(q.unwrap_or(""))
        .into_iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v)
        .collect()
}

fn url_decode_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A boolean query parameter, case-insensitively (the Python client sends `True`).
pub fn flag(q: &HashMap<String, String>, name: &str) -> bool {
    q.get(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parts = (String, Option<String>, Option<String>, Option<String>);

    fn t(p: &str) -> Option<Parts> {
        parse_path(p).map(|t| (t.info.plural.to_string(), t.namespace, t.name, t.sub))
    }

    #[test]
    fn paths() {
        let s = |x: &str| Some(x.to_string());
        assert_eq!(
            t("/api/v1/namespaces/default/pods"),
            Some(("pods".into(), s("default"), None, None))
        );
        assert_eq!(
            t("/api/v1/namespaces/default/pods/p1/status"),
            Some(("pods".into(), s("default"), s("p1"), s("status")))
        );
        assert_eq!(t("/api/v1/pods"), Some(("pods".into(), None, None, None)));
        assert_eq!(
            t("/api/v1/namespaces/kube-system"),
            Some(("namespaces".into(), None, s("kube-system"), None))
        );
        assert_eq!(
            t("/api/v1/namespaces/x/status"),
            Some(("namespaces".into(), None, s("x"), s("status")))
        );
        assert_eq!(
            t("/api/v1/nodes/n1"),
            Some(("nodes".into(), None, s("n1"), None))
        );
        assert_eq!(
            t("/apis/apps/v1/namespaces/d/deployments/web/scale"),
            Some(("deployments".into(), s("d"), s("web"), s("scale")))
        );
        assert_eq!(
            t("/apis/apps/v1/deployments"),
            Some(("deployments".into(), None, None, None))
        );
        assert_eq!(
            t("/apis/apps/v1/deployments/web"),
            None,
            "namespaced object without namespace"
        );
        assert_eq!(t("/api/v1/widgets"), None);
        assert_eq!(t("/apis/apps/v2/deployments"), None);
    }

    #[test]
    fn queries() {
        let q = parse_query(Some("labelSelector=app%3Dweb%2Ctier+in+(a)&watch=True&x"));
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert!(flag(&q, "watch"));
        assert_eq!(q["x"], "");
        assert_eq!(parse_query(Some("a=%zz%"))["a"], "%zz%");
        assert_eq!(
            query_all(
                Some("command=sh&x=1&command=-c&command=echo+%C3%A9%3B+exit+3"),
                "command"
            ),
            ["sh", "-c", "echo é; exit 3"]
        );
        assert!(query_all(None, "command").is_empty());
    }
}
