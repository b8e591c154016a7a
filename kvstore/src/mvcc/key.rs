//! Keys of the key index. A lookup compares the sought key with a dozen or more stored keys,
//! and following each one's pointer to its bytes is a cache miss at 100 000 keys: the first 16
//! bytes are kept inline, so most comparisons never leave the tree node.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::sync::Arc;

use equivalent::{Comparable, Equivalent};

/// The first 16 bytes, zero-padded, big-endian: heads order like the strings whenever they
/// differ, and equal heads fall back to the whole strings.
fn head(s: &str) -> u128 {
    let mut b = [0u8; 16];
    let n = s.len().min(16);
    b[..n].copy_from_slice(&s.as_bytes()[..n]);
    u128::from_be_bytes(b)
}

/// A stored key, cheap to clone (the bytes are shared).
#[derive(Clone)]
pub struct Key {
    head: u128,
    full: Arc<str>,
}

impl From<&str> for Key {
    fn from(s: &str) -> Key {
        Key {
            head: head(s),
            full: Arc::from(s),
        }
    }
}

impl std::ops::Deref for Key {
    type Target = str;
    fn deref(&self) -> &str {
        &self.full
    }
}

impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        &self.full
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.full.fmt(f)
    }
}

impl PartialEq for Key {
    fn eq(&self, o: &Key) -> bool {
        self.head == o.head && self.full == o.full
    }
}

impl Eq for Key {}

impl Ord for Key {
    fn cmp(&self, o: &Key) -> Ordering {
        self.head.cmp(&o.head).then_with(|| self.full.cmp(&o.full))
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, o: &Key) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// A key to look up, without allocating one.
#[derive(Clone, Copy)]
pub struct KeyRef<'a> {
    head: u128,
    s: &'a str,
}

impl<'a> KeyRef<'a> {
    pub fn new(s: &'a str) -> KeyRef<'a> {
        KeyRef { head: head(s), s }
    }
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, k: &Key) -> bool {
        self.head == k.head && self.s == &*k.full
    }
}

impl Comparable<Key> for KeyRef<'_> {
    fn compare(&self, k: &Key) -> Ordering {
        self.head.cmp(&k.head).then_with(|| self.s.cmp(&k.full))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys order exactly like their strings, including prefixes, NULs and long shared heads.
    #[test]
    fn orders_like_the_strings() {
        let words = [
            "",
            "\0",
            "a",
            "a\0",
            "a\0b",
            "ab",
            "abcdefghijklmnop",
            "abcdefghijklmnop\0",
            "abcdefghijklmnopq",
            "abcdefghijklmnopr",
            "abcdefghijklmnoq",
            "/registry/pods/default/a",
            "/registry/pods/default/b",
            "/registry/pods/kube-system/a",
            "é",
            "\u{7f}",
        ];
        for a in words {
            for b in words {
                let (ka, kb) = (Key::from(a), Key::from(b));
                assert_eq!(ka.cmp(&kb), a.cmp(b), "{a:?} vs {b:?}");
                assert_eq!(KeyRef::new(a).compare(&kb), a.cmp(b), "{a:?} vs {b:?}");
                assert_eq!(KeyRef::new(a).equivalent(&kb), a == b);
            }
        }
    }
}
