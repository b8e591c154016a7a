//! Binary encodings of the MVCC tables' values: key records, history events, meta numbers.

use kvclient::proto::{EventType, KeyValue};

use crate::error::KvError;

const HEADER: usize = 32;

/// A key's state at one revision (everything but the key itself).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
    pub value: String,
}

/// A borrowed [`Record`], to encode without copying the value.
#[derive(Clone, Copy, Debug)]
pub struct RecordRef<'a> {
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
    pub value: &'a str,
}

impl RecordRef<'_> {
    /// `[create][mod][version][lease]` as little-endian i64, then the value's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.value.len());
        self.encode_into(&mut out);
        out
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.create_revision.to_le_bytes());
        out.extend_from_slice(&self.mod_revision.to_le_bytes());
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.lease.to_le_bytes());
        out.extend_from_slice(self.value.as_bytes());
    }

    pub fn to_kv(&self, key: &str) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            value: self.value.to_string(),
            lease: self.lease,
        }
    }
}

impl Record {
    pub fn as_ref(&self) -> RecordRef<'_> {
        RecordRef {
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            lease: self.lease,
            value: &self.value,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        self.as_ref().encode()
    }

    pub fn decode(bytes: &[u8]) -> Result<Record, KvError> {
        let (h, value) = header(bytes)?;
        let value = std::str::from_utf8(value)
            .map_err(|_| corrupt("record value is not UTF-8"))?
            .to_string();
        Ok(Record {
            create_revision: h[0],
            mod_revision: h[1],
            version: h[2],
            lease: h[3],
            value,
        })
    }

    pub fn into_kv(self, key: String) -> KeyValue {
        KeyValue {
            key,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            value: self.value,
            lease: self.lease,
        }
    }
}

/// Decode a record straight into a [`KeyValue`], skipping the value when `keys_only`.
pub fn decode_kv(key: &str, bytes: &[u8], keys_only: bool) -> Result<KeyValue, KvError> {
    let (h, value) = header(bytes)?;
    let value = if keys_only {
        String::new()
    } else {
        std::str::from_utf8(value)
            .map_err(|_| corrupt("record value is not UTF-8"))?
            .to_string()
    };
    Ok(KeyValue {
        key: key.to_string(),
        create_revision: h[0],
        mod_revision: h[1],
        version: h[2],
        value,
        lease: h[3],
    })
}

/// The numbers of an encoded record — create, mod, version, lease — without its value.
pub fn record_numbers(bytes: &[u8]) -> Result<[i64; 4], KvError> {
    Ok(header(bytes)?.0)
}

/// Only the lease of an encoded record.
pub fn record_lease(bytes: &[u8]) -> Result<i64, KvError> {
    Ok(header(bytes)?.0[3])
}

fn header(bytes: &[u8]) -> Result<([i64; 4], &[u8]), KvError> {
    if bytes.len() < HEADER {
        return Err(corrupt("record shorter than its header"));
    }
    let mut h = [0i64; 4];
    for (i, v) in h.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
        *v = i64::from_le_bytes(b);
    }
    Ok((h, &bytes[HEADER..]))
}

/// One entry of the history table: a put (with the record written) or a delete of `key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistEvent {
    pub kind: EventType,
    pub key: String,
    /// The record written by a put; `None` for a delete.
    pub record: Option<Record>,
}

/// `[kind u8][key len u32][key][record]`.
pub fn encode_event(kind: EventType, key: &str, record: Option<RecordRef<'_>>) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(5 + key.len() + record.map(|r| HEADER + r.value.len()).unwrap_or(0));
    out.push(match kind {
        EventType::Put => 0,
        EventType::Delete => 1,
    });
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    if let Some(r) = record {
        r.encode_into(&mut out);
    }
    out
}

/// The kind and key of an encoded event, without decoding its record.
pub fn event_key(bytes: &[u8]) -> Result<(EventType, &str), KvError> {
    if bytes.len() < 5 {
        return Err(corrupt("history event too short"));
    }
    let kind = match bytes[0] {
        0 => EventType::Put,
        1 => EventType::Delete,
        _ => return Err(corrupt("unknown history event kind")),
    };
    let mut l = [0u8; 4];
    l.copy_from_slice(&bytes[1..5]);
    let len = u32::from_le_bytes(l) as usize;
    let key = bytes
        .get(5..5 + len)
        .ok_or_else(|| corrupt("history event key truncated"))?;
    let key = std::str::from_utf8(key).map_err(|_| corrupt("history key is not UTF-8"))?;
    Ok((kind, key))
}

pub fn decode_event(bytes: &[u8]) -> Result<HistEvent, KvError> {
    let (kind, key) = event_key(bytes)?;
    let rest = &bytes[5 + key.len()..];
    let record = match kind {
        EventType::Put => Some(Record::decode(rest)?),
        EventType::Delete => None,
    };
    Ok(HistEvent {
        kind,
        key: key.to_string(),
        record,
    })
}

/// The value of a `revs` entry: the event's sub-index within its revision and a tombstone flag.
pub fn rev_pointer(sub: u32, tombstone: bool) -> u64 {
    (u64::from(sub) << 1) | u64::from(tombstone)
}

pub fn split_rev_pointer(v: u64) -> (u32, bool) {
    ((v >> 1) as u32, v & 1 == 1)
}

pub fn encode_i64(v: i64) -> [u8; 8] {
    v.to_le_bytes()
}

pub fn decode_i64(bytes: &[u8]) -> Result<i64, KvError> {
    let b: [u8; 8] = bytes
        .try_into()
        .map_err(|_| corrupt("meta number has the wrong length"))?;
    Ok(i64::from_le_bytes(b))
}

pub fn corrupt(what: &str) -> KvError {
    KvError::internal(format!("corrupt state: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let r = Record {
            create_revision: 3,
            mod_revision: 9,
            version: 4,
            lease: 77,
            value: "héllo".into(),
        };
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        let kv = decode_kv("k", &r.encode(), true).unwrap();
        assert_eq!((kv.value.as_str(), kv.version, kv.lease), ("", 4, 77));
        let e = encode_event(EventType::Put, "a/b", Some(r.as_ref()));
        let d = decode_event(&e).unwrap();
        assert_eq!(
            (d.kind, d.key.as_str(), d.record),
            (EventType::Put, "a/b", Some(r))
        );
        let e = encode_event(EventType::Delete, "x", None);
        assert_eq!(decode_event(&e).unwrap().record, None);
        assert_eq!(split_rev_pointer(rev_pointer(5, true)), (5, true));
        assert!(Record::decode(&[1, 2]).is_err());
    }
}
