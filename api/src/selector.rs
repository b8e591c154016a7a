//! Label selectors (`app=web,tier in (a,b),!canary`) and field selectors (`spec.nodeName=n1`).

use std::collections::BTreeMap;
use std::fmt;

use crate::meta::{LabelSelector, LabelSelectorRequirement};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
    pub values: Vec<String>,
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.key);
        match self.op {
            Op::Equals | Op::In => v.is_some_and(|v| self.values.contains(v)),
            Op::NotEquals | Op::NotIn => v.is_none_or(|v| !self.values.contains(v)),
            Op::Exists => v.is_some(),
            Op::DoesNotExist => v.is_none(),
        }
    }
}

/// A parsed label selector: all requirements must hold. No requirements matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(pub String);

impl Selector {
    pub fn everything() -> Self {
        Selector::default()
    }

    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Convert a spec's `LabelSelector`; an empty one selects everything (as Kubernetes'
    /// `LabelSelectorAsSelector` does).
    pub fn from_label_selector(ls: &LabelSelector) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for (k, v) in &ls.match_labels {
            reqs.push(Requirement {
                key: k.clone(),
                op: Op::Equals,
                values: vec![v.clone()],
            });
        }
        for e in &ls.match_expressions {
            reqs.push(requirement_from_expression(e)?);
        }
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector { requirements: reqs })
    }

    /// Parse the string form used in `?labelSelector=` and `kubectl -l`.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for part in split_top_level(s)? {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            reqs.push(parse_requirement(part)?);
        }
        Ok(Selector { requirements: reqs })
    }
}

fn requirement_from_expression(e: &LabelSelectorRequirement) -> Result<Requirement, SelectorError> {
    let op = match e.operator.as_str() {
        "In" => Op::In,
        "NotIn" => Op::NotIn,
        "Exists" => Op::Exists,
        "DoesNotExist" => Op::DoesNotExist,
        other => {
            return Err(SelectorError(format!(
                "{other:?} is not a valid label selector operator"
            )));
        }
    };
    let needs_values = matches!(op, Op::In | Op::NotIn);
    if needs_values == e.values.is_empty() {
        return Err(SelectorError(format!(
            "{}: values must be {} for operator {}",
            e.key,
            if needs_values { "non-empty" } else { "empty" },
            e.operator
        )));
    }
    Ok(Requirement {
        key: e.key.clone(),
        op,
        values: e.values.clone(),
    })
}

/// Split on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Result<Vec<&str>, SelectorError> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(SelectorError(format!("unbalanced ')' in {s:?}")));
                }
            }
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(SelectorError(format!("unbalanced '(' in {s:?}")));
    }
    parts.push(&s[start..]);
    Ok(parts)
}

fn parse_requirement(p: &str) -> Result<Requirement, SelectorError> {
    let bad = || SelectorError(p.to_string());
    if let Some(key) = p.strip_prefix('!') {
        let key = key.trim();
        check_key(key).map_err(|_| bad())?;
        return Ok(Requirement {
            key: key.into(),
            op: Op::DoesNotExist,
            values: vec![],
        });
    }
    for (token, op) in [("!=", Op::NotEquals), ("==", Op::Equals), ("=", Op::Equals)] {
        if let Some((k, v)) = p.split_once(token) {
            let (k, v) = (k.trim(), v.trim());
            check_key(k).map_err(|_| bad())?;
            if v.contains([' ', '(', ')', '=', '!']) {
                return Err(bad());
            }
            return Ok(Requirement {
                key: k.into(),
                op,
                values: vec![v.into()],
            });
        }
    }
    let words: Vec<&str> = p.splitn(2, char::is_whitespace).collect();
    if words.len() == 2 {
        let key = words[0].trim();
        let rest = words[1].trim();
        let (op, set) = if let Some(r) = rest.strip_prefix("notin") {
            (Op::NotIn, r)
        } else if let Some(r) = rest.strip_prefix("in") {
            (Op::In, r)
        } else {
            return Err(bad());
        };
        let set = set.trim();
        let inner = set
            .strip_prefix('(')
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(bad)?;
        let values: Vec<String> = inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        check_key(key).map_err(|_| bad())?;
        if values.is_empty() {
            return Err(bad());
        }
        return Ok(Requirement {
            key: key.into(),
            op,
            values,
        });
    }
    check_key(p).map_err(|_| bad())?;
    Ok(Requirement {
        key: p.into(),
        op: Op::Exists,
        values: vec![],
    })
}

fn check_key(k: &str) -> Result<(), ()> {
    if k.is_empty() || k.contains(|c: char| c.is_whitespace() || "()=!,".contains(c)) {
        Err(())
    } else {
        Ok(())
    }
}

impl fmt::Display for Selector {
    /// The canonical string form, as Kubernetes prints it (e.g. in `Scale.status.selector`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| match r.op {
                Op::Equals => format!("{}={}", r.key, r.values[0]),
                Op::NotEquals => format!("{}!={}", r.key, r.values[0]),
                Op::In => format!("{} in ({})", r.key, r.values.join(",")),
                Op::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
                Op::Exists => r.key.clone(),
                Op::DoesNotExist => format!("!{}", r.key),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// One term of a field selector: `field=value` or `field!=value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub value: String,
    pub negate: bool,
}

/// A parsed field selector (`metadata.name=x,status.phase!=Failed`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    pub requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, value, negate) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, false)
            } else {
                return Err(SelectorError(format!("invalid field selector: {part:?}")));
            };
            requirements.push(FieldRequirement {
                field: field.trim().to_string(),
                value: value.trim().to_string(),
                negate,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// True when every term holds; `lookup` returns the object's value of a field (None when the
    /// field is not supported, which the caller should have rejected earlier).
    pub fn matches(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let v = lookup(&r.field).unwrap_or_default();
            (v == r.value) != r.negate
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_every_form() {
        let s = Selector::parse("app=web,tier in (front, back),!canary,env!=prod,track").unwrap();
        assert_eq!(s.requirements.len(), 5);
        let l = labels(&[("app", "web"), ("tier", "front"), ("track", "x")]);
        assert!(s.matches(&l));
        let l2 = labels(&[
            ("app", "web"),
            ("tier", "front"),
            ("track", "x"),
            ("canary", "1"),
        ]);
        assert!(!s.matches(&l2));
        assert!(
            Selector::parse("a notin (x)")
                .unwrap()
                .matches(&labels(&[]))
        );
        assert!(
            Selector::parse("a==b")
                .unwrap()
                .matches(&labels(&[("a", "b")]))
        );
    }

    #[test]
    fn rejects_bad_strings() {
        for bad in ["a in x", "a in ()", "a=(b", "=b", "a b c"] {
            assert!(Selector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_selector_conversion_and_display() {
        let ls = LabelSelector {
            match_labels: labels(&[("app", "blog")]),
            match_expressions: vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: vec!["a".into(), "b".into()],
            }],
        };
        let s = Selector::from_label_selector(&ls).unwrap();
        assert_eq!(s.to_string(), "app=blog,tier in (a,b)");
        assert!(s.matches(&labels(&[("app", "blog"), ("tier", "b")])));
        assert!(
            Selector::from_label_selector(&LabelSelector::default())
                .unwrap()
                .is_everything()
        );
    }

    #[test]
    fn field_selectors() {
        let f = FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed").unwrap();
        let get = |k: &str| match k {
            "spec.nodeName" => Some("n1".to_string()),
            "status.phase" => Some("Running".to_string()),
            _ => None,
        };
        assert!(f.matches(get));
        assert!(FieldSelector::parse("nope").is_err());
    }
}
