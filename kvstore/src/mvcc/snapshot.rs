//! A whole-store image for Raft snapshots: every table (live keys, history, leases, members,
//! meta) dumped from one read transaction, and restored in one durable write transaction.

use redb::{ReadableTable, TableDefinition};

use super::codec::corrupt;
use super::{HISTORY, KV, LEASE_KEYS, LEASES, MEMBERS, META, REVS, Reader, Store};
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
        let txn = &self.txn;
        let mut out = MAGIC.to_vec();
        for item in txn.open_table(KV)?.iter()? {
            let (k, v) = item?;
            out.push(T_KV);
            put_bytes(&mut out, k.value().as_bytes());
            put_bytes(&mut out, v.value());
        }
        for item in txn.open_table(REVS)?.iter()? {
            let (k, v) = item?;
            let (key, rev) = k.value();
            out.push(T_REVS);
            put_bytes(&mut out, key.as_bytes());
            put_u64(&mut out, rev);
            put_u64(&mut out, v.value());
        }
        for item in txn.open_table(HISTORY)?.iter()? {
            let (k, v) = item?;
            let (rev, sub) = k.value();
            out.push(T_HIST);
            put_u64(&mut out, rev);
            put_u64(&mut out, u64::from(sub));
            put_bytes(&mut out, v.value());
        }
        for item in txn.open_table(META)?.iter()? {
            let (k, v) = item?;
            out.push(T_META);
            put_bytes(&mut out, k.value().as_bytes());
            put_bytes(&mut out, v.value());
        }
        for item in txn.open_table(LEASES)?.iter()? {
            let (k, v) = item?;
            out.push(T_LEASE);
            put_u64(&mut out, k.value() as u64);
            put_u64(&mut out, v.value() as u64);
        }
        for item in txn.open_table(LEASE_KEYS)?.iter()? {
            let (k, _) = item?;
            let (id, key) = k.value();
            out.push(T_LEASE_KEY);
            put_u64(&mut out, id as u64);
            put_bytes(&mut out, key.as_bytes());
        }
        for item in txn.open_table(MEMBERS)?.iter()? {
            let (k, v) = item?;
            out.push(T_MEMBER);
            put_u64(&mut out, k.value());
            put_bytes(&mut out, v.value());
        }
        out.push(T_END);
        Ok(out)
    }
}

impl Store {
    /// Replace the whole store with a [`Store::dump`] image, then set `extra_meta`, all in one
    /// durable transaction.
    pub fn restore(&self, image: &[u8], extra_meta: &[(&str, Vec<u8>)]) -> Result<(), KvError> {
        let mut c = Cursor(image);
        if c.take(MAGIC.len())? != MAGIC {
            return Err(corrupt("not a kvstore snapshot"));
        }
        let txn = self.db().begin_write()?;
        fn clear<K: redb::Key + 'static, V: redb::Value + 'static>(
            txn: &redb::WriteTransaction,
            def: TableDefinition<K, V>,
        ) -> Result<(), KvError> {
            txn.delete_table(def)?;
            txn.open_table(def)?;
            Ok(())
        }
        clear(&txn, KV)?;
        clear(&txn, REVS)?;
        clear(&txn, HISTORY)?;
        clear(&txn, META)?;
        clear(&txn, LEASES)?;
        clear(&txn, LEASE_KEYS)?;
        clear(&txn, MEMBERS)?;
        {
            let mut kv = txn.open_table(KV)?;
            let mut revs = txn.open_table(REVS)?;
            let mut hist = txn.open_table(HISTORY)?;
            let mut meta = txn.open_table(META)?;
            let mut leases = txn.open_table(LEASES)?;
            let mut lease_keys = txn.open_table(LEASE_KEYS)?;
            let mut members = txn.open_table(MEMBERS)?;
            loop {
                match c.u8()? {
                    T_KV => {
                        let k = c.str()?;
                        kv.insert(k, c.bytes()?)?;
                    }
                    T_REVS => {
                        let k = c.str()?;
                        let rev = c.u64()?;
                        revs.insert((k, rev), c.u64()?)?;
                    }
                    T_HIST => {
                        let rev = c.u64()?;
                        let sub = u32::try_from(c.u64()?)
                            .map_err(|_| corrupt("snapshot sub-index out of range"))?;
                        hist.insert((rev, sub), c.bytes()?)?;
                    }
                    T_META => {
                        let k = c.str()?;
                        meta.insert(k, c.bytes()?)?;
                    }
                    T_LEASE => {
                        let id = c.u64()? as i64;
                        leases.insert(id, c.u64()? as i64)?;
                    }
                    T_LEASE_KEY => {
                        let id = c.u64()? as i64;
                        lease_keys.insert((id, c.str()?), ())?;
                    }
                    T_MEMBER => {
                        let id = c.u64()?;
                        members.insert(id, c.bytes()?)?;
                    }
                    T_END => break,
                    _ => return Err(corrupt("unknown snapshot record")),
                }
            }
            for (k, v) in extra_meta {
                meta.insert(*k, v.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}
