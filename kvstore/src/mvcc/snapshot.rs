//! A whole-store image for Raft snapshots: every table (live keys, history, leases, members,
//! meta) dumped from one read view, and restored in one step. The current and compact
//! revisions travel as `meta` records, as when the store lived in redb (older snapshots load).

use super::codec::{self, corrupt};
use super::{Key, META_COMPACT, META_REVISION, Reader, Store, Tables};
use crate::error::KvError;

const MAGIC: &[u8] = b"KVSNAP1\n";
const T_KV: u8 = 1;
const T_REVS: u8 = 2;
const T_HIST: u8 = 3;
const T_META: u8 = 4;
const T_LEASE: u8 = 5;
const T_LEASE_KEY: u8 = 6;
const T_MEMBER: u8 = 7;
const T_END: u8 = 0xff;

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u64(out, b.len() as u64);
    out.extend_from_slice(b);
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], KvError> {
        if self.0.len() < n {
            return Err(corrupt("snapshot truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, KvError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, KvError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
    fn bytes(&mut self) -> Result<&'a [u8], KvError> {
        let n = self.u64()? as usize;
        self.take(n)
    }
    fn str(&mut self) -> Result<&'a str, KvError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| corrupt("snapshot key is not UTF-8"))
    }
}

impl Reader {
    /// Every table, as of this read view.
    pub fn dump(&self) -> Result<Vec<u8>, KvError> {
        let t = &self.t;
        let mut out = MAGIC.to_vec();
        for (k, ki) in t.keys.iter() {
            if let Some(v) = &ki.live {
                out.push(T_KV);
                put_bytes(&mut out, k.as_bytes());
                put_bytes(&mut out, v);
            }
        }
        for (key, ki) in t.keys.iter() {
            for (rev, ptr) in &ki.revs {
                out.push(T_REVS);
                put_bytes(&mut out, key.as_bytes());
                put_u64(&mut out, *rev);
                put_u64(&mut out, *ptr);
            }
        }
        for ((rev, sub), v) in t.hist.iter() {
            out.push(T_HIST);
            put_u64(&mut out, *rev);
            put_u64(&mut out, u64::from(*sub));
            put_bytes(&mut out, v);
        }
        let revisions = [
            (META_REVISION, t.revision),
            (META_COMPACT, t.compact_revision),
        ];
        for (k, v) in revisions {
            out.push(T_META);
            put_bytes(&mut out, k.as_bytes());
            put_bytes(&mut out, &codec::encode_i64(v));
        }
        for (k, v) in t.meta.iter() {
            out.push(T_META);
            put_bytes(&mut out, k.as_bytes());
            put_bytes(&mut out, v);
        }
        for (id, ttl) in t.leases.iter() {
            out.push(T_LEASE);
            put_u64(&mut out, *id as u64);
            put_u64(&mut out, *ttl as u64);
        }
        for ((id, key), _) in t.lease_keys.iter() {
            out.push(T_LEASE_KEY);
            put_u64(&mut out, *id as u64);
            put_bytes(&mut out, key.as_bytes());
        }
        for (id, v) in t.members.iter() {
            out.push(T_MEMBER);
            put_u64(&mut out, *id);
            put_bytes(&mut out, v);
        }
        out.push(T_END);
        Ok(out)
    }
}

/// The tables an image holds.
fn load(image: &[u8]) -> Result<Tables, KvError> {
    let mut c = Cursor(image);
    if c.take(MAGIC.len())? != MAGIC {
        return Err(corrupt("not a kvstore snapshot"));
    }
    let mut t = Tables::default();
    loop {
        match c.u8()? {
            T_KV => {
                let k = c.str()?;
                let ki = t.keys.entry(Key::from(k)).or_default();
                ki.live = Some(c.bytes()?.into());
            }
            T_REVS => {
                let k = c.str()?;
                let rev = c.u64()?;
                let ptr = c.u64()?;
                let ki = t.keys.entry(Key::from(k)).or_default();
                if ki.revs.last().is_some_and(|(r, _)| *r >= rev) {
                    return Err(corrupt("snapshot revisions out of order"));
                }
                ki.revs.push((rev, ptr));
            }
            T_HIST => {
                let rev = c.u64()?;
                let sub = u32::try_from(c.u64()?)
                    .map_err(|_| corrupt("snapshot sub-index out of range"))?;
                t.hist.insert((rev, sub), c.bytes()?.into());
            }
            T_META => {
                let k = c.str()?;
                let v = c.bytes()?;
                match k {
                    META_REVISION => t.revision = codec::decode_i64(v)?,
                    META_COMPACT => t.compact_revision = codec::decode_i64(v)?,
                    _ => {
                        t.meta.insert(k.to_string(), v.to_vec());
                    }
                }
            }
            T_LEASE => {
                let id = c.u64()? as i64;
                t.leases.insert(id, c.u64()? as i64);
            }
            T_LEASE_KEY => {
                let id = c.u64()? as i64;
                t.lease_keys.insert((id, Key::from(c.str()?)), ());
            }
            T_MEMBER => {
                let id = c.u64()?;
                t.members.insert(id, c.bytes()?.to_vec());
            }
            T_END => break,
            _ => return Err(corrupt("unknown snapshot record")),
        }
    }
    Ok(t)
}

impl Store {
    /// Replace the whole store with a [`Reader::dump`] image, then set `extra_meta`; on a bad
    /// image the store is left as it was.
    pub fn restore(&self, image: &[u8], extra_meta: &[(&str, Vec<u8>)]) -> Result<(), KvError> {
        let mut t = load(image)?;
        for (k, v) in extra_meta {
            t.meta.insert(k.to_string(), v.clone());
        }
        *self.write() = t;
        Ok(())
    }
}
