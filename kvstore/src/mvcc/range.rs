//! Which keys a request covers: one key, a prefix, `[key, end)` or every key from `key` on.

use crate::error::KvError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// Only `start` itself.
    One,
    /// `[start, end)`.
    Until(String),
    /// Every key ≥ `start` (etcd's `range_end == "\0"`).
    All,
    /// Every key starting with `start`.
    Prefix,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    pub start: String,
    pub end: End,
}

impl KeyRange {
    /// Resolve a request's `key`/`range_end`/`prefix` with etcd's conventions; a malformed
    /// combination is a `bad_request`.
    pub fn new(key: &str, range_end: Option<&str>, prefix: bool) -> Result<KeyRange, KvError> {
        let end = match (range_end, prefix) {
            (Some(_), true) => {
                return Err(KvError::bad_request(
                    "prefix and range_end cannot both be set",
                ));
            }
            (None, true) => End::Prefix,
            (None, false) | (Some(""), false) => End::One,
            (Some("\0"), false) => End::All,
            (Some(e), false) => {
                if e <= key {
                    return Err(KvError::bad_request(format!(
                        "range_end {e:?} must be greater than key {key:?}"
                    )));
                }
                End::Until(e.to_string())
            }
        };
        if end == End::One && key.is_empty() {
            return Err(KvError::bad_request("key is not provided"));
        }
        Ok(KeyRange {
            start: key.to_string(),
            end,
        })
    }

    pub fn one(key: &str) -> KeyRange {
        KeyRange {
            start: key.to_string(),
            end: End::One,
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        match &self.end {
            End::One => key == self.start,
            End::Until(e) => key >= self.start.as_str() && key < e.as_str(),
            End::All => key >= self.start.as_str(),
            End::Prefix => key.starts_with(self.start.as_str()),
        }
    }

    /// Whether two ranges share a key (used to reject a txn that puts a key it also deletes).
    pub fn overlaps(&self, other: &KeyRange) -> bool {
        match (&self.end, &other.end) {
            (End::One, _) => other.contains(&self.start),
            (_, End::One) => self.contains(&other.start),
            _ => {
                // Both are intervals [s, e) with e possibly unbounded.
                let (a0, a1) = self.interval();
                let (b0, b1) = other.interval();
                let a_before_b_ends = b1.as_ref().is_none_or(|b1| a0 < *b1);
                let b_before_a_ends = a1.as_ref().is_none_or(|a1| b0 < *a1);
                a_before_b_ends && b_before_a_ends
            }
        }
    }

    /// `[start, end)` as byte strings, `None` meaning unbounded; a prefix's end is computed on
    /// bytes, so it is exact for any UTF-8.
    fn interval(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let s = self.start.as_bytes().to_vec();
        let e = match &self.end {
            End::One => {
                let mut e = s.clone();
                e.push(0);
                Some(e)
            }
            End::Until(e) => Some(e.as_bytes().to_vec()),
            End::All => None,
            End::Prefix => {
                let mut e = s.clone();
                loop {
                    match e.pop() {
                        None => break None,
                        Some(0xff) => continue,
                        Some(b) => {
                            e.push(b + 1);
                            break Some(e);
                        }
                    }
                }
            }
        };
        (s, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_like_etcd() {
        assert_eq!(KeyRange::new("a", None, false).unwrap().end, End::One);
        assert_eq!(KeyRange::new("a", Some(""), false).unwrap().end, End::One);
        assert_eq!(KeyRange::new("a", Some("\0"), false).unwrap().end, End::All);
        assert_eq!(KeyRange::new("", Some("\0"), false).unwrap().end, End::All);
        assert_eq!(KeyRange::new("", None, true).unwrap().end, End::Prefix);
        assert!(KeyRange::new("", None, false).is_err());
        assert!(KeyRange::new("b", Some("a"), false).is_err());
        assert!(KeyRange::new("b", Some("b"), false).is_err());
        assert!(KeyRange::new("a", Some("b"), true).is_err());
        let p = KeyRange::new("/p/", None, true).unwrap();
        assert!(p.contains("/p/x") && !p.contains("/p") && !p.contains("/q/"));
        let r = KeyRange::new("b", Some("d"), false).unwrap();
        assert!(r.contains("b") && r.contains("c") && !r.contains("d") && !r.contains("a"));
    }

    #[test]
    fn overlaps() {
        let kr = |k: &str, e: Option<&str>, p: bool| KeyRange::new(k, e, p).unwrap();
        assert!(kr("a", None, false).overlaps(&kr("a", None, false)));
        assert!(!kr("a", None, false).overlaps(&kr("b", None, false)));
        assert!(kr("a/x", None, false).overlaps(&kr("a/", None, true)));
        assert!(kr("a", Some("c"), false).overlaps(&kr("b", Some("\0"), false)));
        assert!(!kr("a", Some("b"), false).overlaps(&kr("b", Some("c"), false)));
        assert!(kr("é", None, true).overlaps(&kr("éa", Some("éb"), false)));
        assert!(!kr("é", None, true).overlaps(&kr("f", Some("g"), false)));
    }
}
