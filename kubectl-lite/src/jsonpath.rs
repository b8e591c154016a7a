//! `-o jsonpath=…`: kubectl's JSONPath templates. Text outside braces is printed as is; inside
//! braces:
//!
//! | template | meaning |
//! |---|---|
//! | `{.metadata.name}` | a field of the current object (the object, or the `List` for several) |
//! | `{$.items[0].metadata.name}` | from the root, whatever the current object |
//! | `{.items[*].metadata.name}` | every match, separated by spaces |
//! | `{.items[-1:]}`, `{.items[0:2]}` | slices |
//! | `{..image}` | every `image` field at any depth |
//! | `{.status.conditions[?(@.type=="Ready")].status}` | filters |
//! | `{.metadata.labels.app\.kubernetes\.io/name}` | a key with dots, escaped |
//! | `{range .items[*]}{.metadata.name}{"\n"}{end}` | a loop; `{@}` is the current item |
//! | `{"\t"}` | a string literal |
//!
//! Paths are translated to RFC 9535 JSONPath and evaluated by `serde_json_path`. Strings print
//! as they are, numbers and booleans as Go prints them, maps and lists as compact JSON. Missing
//! fields print nothing (kubectl's `--allow-missing-template-keys=true`).

use serde_json::Value;
use serde_json_path::JsonPath;

/// A parsed template.
#[derive(Clone, Debug)]
pub struct Template {
    source: String,
    nodes: Vec<Node>,
}

impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Template {}

#[derive(Clone, Debug)]
enum Node {
    Text(String),
    Path(Path),
    Range(Path, Vec<Node>),
}

/// One path expression, relative to the current object or to the root.
#[derive(Clone, Debug)]
struct Path {
    from_root: bool,
    path: JsonPath,
}

impl Template {
    /// Parse a template; the error is kubectl's wording.
    pub fn parse(source: &str) -> Result<Template, String> {
        let fail = |why: String| format!("error parsing jsonpath {source}, {why}");
        let mut stack: Vec<(Option<Path>, Vec<Node>)> = vec![(None, Vec::new())];
        let mut text = String::new();
        let mut rest = source;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                text.push_str(rest);
                break;
            };
            text.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = action_end(after).ok_or_else(|| fail("unclosed action".into()))?;
            let action = after[..close].trim();
            rest = &after[close + 1..];
            if !text.is_empty()
                && let Some((_, nodes)) = stack.last_mut()
            {
                nodes.push(Node::Text(std::mem::take(&mut text)));
            }
            if action == "end" {
                if stack.len() < 2 {
                    return Err(fail("not in range, nothing to end".into()));
                }
                if let (Some((Some(path), body)), Some((_, parent))) =
                    (stack.pop(), stack.last_mut())
                {
                    parent.push(Node::Range(path, body));
                }
                continue;
            }
            if let Some(expr) = action.strip_prefix("range ") {
                let path = Path::parse(expr.trim()).map_err(fail)?;
                stack.push((Some(path), Vec::new()));
                continue;
            }
            let node = match literal(action) {
                Some(s) => Node::Text(s),
                None => Node::Path(Path::parse(action).map_err(fail)?),
            };
            if let Some((_, nodes)) = stack.last_mut() {
                nodes.push(node);
            }
        }
        if !text.is_empty()
            && let Some((_, nodes)) = stack.last_mut()
        {
            nodes.push(Node::Text(text));
        }
        if stack.len() != 1 {
            return Err(fail("range without end".into()));
        }
        let nodes = stack.pop().map(|(_, n)| n).unwrap_or_default();
        Ok(Template {
            source: source.to_string(),
            nodes,
        })
    }

    /// Render against `root` (the object, or a `List` of them).
    pub fn render(&self, root: &Value) -> Result<String, String> {
        let mut out = String::new();
        render_nodes(&self.nodes, root, root, &mut out);
        Ok(out)
    }
}

/// Where an action's closing brace is (braces inside quotes do not count).
fn action_end(s: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (_, '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"') | (None, '\'') => quote = Some(c),
            (None, '{') => depth += 1,
            (None, '}') if depth == 0 => return Some(i),
            (None, '}') => depth -= 1,
            _ => {}
        }
    }
    None
}

/// `"text"` or `'text'` with `\n`, `\t`, `\\` and `\"` escapes.
fn literal(action: &str) -> Option<String> {
    let quote = action.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let inner = action.strip_prefix(quote)?.strip_suffix(quote)?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    Some(out)
}

impl Path {
    /// Translate kubectl's path syntax to RFC 9535: every name becomes a quoted bracket
    /// selector (names may hold `-`, `/` and escaped dots), brackets are kept as written.
    fn parse(expr: &str) -> Result<Path, String> {
        let (from_root, body) = match expr {
            "@" | "$" | "" => (expr == "$", ""),
            _ if expr.starts_with('$') => (true, &expr[1..]),
            _ if expr.starts_with('@') => (false, &expr[1..]),
            _ => (false, expr),
        };
        let mut rfc = String::from("$");
        let chars: Vec<char> = body.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    let descendant = chars.get(i + 1) == Some(&'.');
                    i += if descendant { 2 } else { 1 };
                    if descendant {
                        rfc.push_str("..");
                    }
                    if chars.get(i) == Some(&'[') {
                        continue;
                    }
                    let mut name = String::new();
                    while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                        if chars[i] == '\\' && i + 1 < chars.len() {
                            i += 1;
                        }
                        name.push(chars[i]);
                        i += 1;
                    }
                    if name.is_empty() {
                        return Err(format!("invalid path {expr:?}: empty field name"));
                    }
                    if name == "*" {
                        rfc.push_str(if descendant { "*" } else { "[*]" });
                    } else {
                        let quoted = serde_json::to_string(&name).map_err(|e| e.to_string())?;
                        rfc.push_str(&format!("[{quoted}]"));
                    }
                }
                '[' => {
                    let start = i;
                    let mut depth = 0;
                    let mut quote: Option<char> = None;
                    while i < chars.len() {
                        let c = chars[i];
                        match (quote, c) {
                            (Some(q), c) if c == q => quote = None,
                            (Some(_), _) => {}
                            (None, '"') | (None, '\'') => quote = Some(c),
                            (None, '[') => depth += 1,
                            (None, ']') => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        i += 1;
                    }
                    if i >= chars.len() {
                        return Err(format!("invalid path {expr:?}: unterminated ["));
                    }
                    rfc.extend(&chars[start..=i]);
                    i += 1;
                }
                _ => {
                    // A bare name at the start (`{metadata.name}`): as if it had a dot.
                    let mut name = String::new();
                    while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                        name.push(chars[i]);
                        i += 1;
                    }
                    let quoted = serde_json::to_string(&name).map_err(|e| e.to_string())?;
                    rfc.push_str(&format!("[{quoted}]"));
                }
            }
        }
        let path = JsonPath::parse(&rfc).map_err(|e| format!("invalid path {expr:?}: {e}"))?;
        Ok(Path { from_root, path })
    }

    fn query<'a>(&self, root: &'a Value, current: &'a Value) -> Vec<&'a Value> {
        let base = if self.from_root { root } else { current };
        self.path.query(base).all()
    }
}

fn render_nodes(nodes: &[Node], root: &Value, current: &Value, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Path(p) => {
                let values: Vec<String> = p.query(root, current).into_iter().map(text).collect();
                out.push_str(&values.join(" "));
            }
            Node::Range(p, body) => {
                for item in p.query(root, current) {
                    render_nodes(body, root, item, out);
                }
            }
        }
    }
}

/// A value as kubectl's JSONPath prints it.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => crate::printer::to_compact_json(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> Value {
        json!({"kind": "List", "items": [
            {"metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "web", "pod-template-hash": "h1"}},
             "spec": {"containers": [{"name": "c1", "image": "nginx"}, {"name": "c2", "image": "busybox"}]},
             "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Scheduled", "status": "True"}]}},
            {"metadata": {"name": "b"}, "spec": {"containers": [{"name": "c1", "image": "redis"}]},
             "status": {"conditions": [{"type": "Ready", "status": "False"}]}}
        ]})
    }

    fn render(t: &str, v: &Value) -> String {
        Template::parse(t)
            .and_then(|t| t.render(v))
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn fields_lists_and_literals() {
        let v = list();
        assert_eq!(render("{.items[0].metadata.name}", &v), "a");
        assert_eq!(render("{.items[*].metadata.name}", &v), "a b");
        assert_eq!(
            render("names: {.items[*].metadata.name}!", &v),
            "names: a b!"
        );
        assert_eq!(render("{.items[-1:].metadata.name}", &v), "b");
        assert_eq!(render("{..image}", &v), "nginx busybox redis");
        assert_eq!(
            render("{.items[0].metadata.labels.pod-template-hash}", &v),
            "h1"
        );
        assert_eq!(
            render(r"{.items[0].metadata.labels.app\.kubernetes\.io/name}", &v),
            "web"
        );
        assert_eq!(render("{.items[1].metadata.labels}", &v), "");
        assert_eq!(render(r#"{"a\tb\n"}"#, &v), "a\tb\n");
        assert_eq!(render("{.kind}", &v), "List");
        assert_eq!(render("{$.kind}", &v), "List");
        assert_eq!(
            render("{.items[0].spec.containers[0]}", &v),
            r#"{"image":"nginx","name":"c1"}"#
        );
    }

    #[test]
    fn filters_and_ranges() {
        let v = list();
        assert_eq!(
            render(
                r#"{.items[0].status.conditions[?(@.type=="Ready")].status}"#,
                &v
            ),
            "True"
        );
        assert_eq!(
            render(
                r#"{range .items[*]}{.metadata.name}{"\t"}{.spec.containers[*].image}{"\n"}{end}"#,
                &v
            ),
            "a\tnginx busybox\nb\tredis\n"
        );
        assert_eq!(
            render(
                r#"{range .items[*]}{range .spec.containers[*]}{@.name}={.image};{end}{end}"#,
                &v
            ),
            "c1=nginx;c2=busybox;c1=redis;"
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            render("{.items[0]", &list()),
            "ERR error parsing jsonpath {.items[0], unclosed action"
        );
        assert!(render("{range .items[*]}{.x}", &list()).contains("range without end"));
        assert!(render("{end}", &list()).contains("not in range"));
    }
}
