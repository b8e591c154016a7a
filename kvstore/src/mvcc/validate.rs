//! Request checks that need no state: well-formed ranges, sizes, and etcd's txn rules. Run by
//! the server before proposing and again by the state machine before writing anything.

use kvclient::proto::{
    Compare, DeleteRangeRequest, MAX_VALUE_BYTES, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

use super::range::KeyRange;
use crate::error::KvError;

/// etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS: usize = 128;
/// etcd's maximum lease TTL in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

pub fn put(req: &PutRequest) -> Result<(), KvError> {
    if req.key.is_empty() {
        return Err(KvError::bad_request("key is not provided"));
    }
    if req.value.len() > MAX_VALUE_BYTES {
        return Err(KvError::too_large(format!(
            "value of {} bytes exceeds the limit of {MAX_VALUE_BYTES} bytes",
            req.value.len()
        )));
    }
    if req.key.len() > MAX_VALUE_BYTES {
        return Err(KvError::too_large(format!(
            "key of {} bytes exceeds the limit of {MAX_VALUE_BYTES} bytes",
            req.key.len()
        )));
    }
    if req.lease < 0 {
        return Err(KvError::bad_request("lease ID must not be negative"));
    }
    Ok(())
}

pub fn range(req: &RangeRequest) -> Result<KeyRange, KvError> {
    let kr = KeyRange::new(&req.key, req.range_end.as_deref(), req.prefix)?;
    if req.limit < 0 {
        return Err(KvError::bad_request("limit must not be negative"));
    }
    if req.revision < 0 {
        return Err(KvError::bad_request("revision must not be negative"));
    }
    Ok(kr)
}

pub fn delete_range(req: &DeleteRangeRequest) -> Result<KeyRange, KvError> {
    KeyRange::new(&req.key, req.range_end.as_deref(), req.prefix)
}

pub fn compare(c: &Compare) -> Result<KeyRange, KvError> {
    KeyRange::new(&c.key, c.range_end.as_deref(), false)
}

/// Every compare and op well-formed, at most [`MAX_TXN_OPS`] ops per branch, and (as etcd) no
/// branch that puts a key twice or puts a key it also deletes.
pub fn txn(req: &TxnRequest) -> Result<(), KvError> {
    if req.compare.len() > MAX_TXN_OPS {
        return Err(KvError::bad_request("too many compares in txn request"));
    }
    for c in &req.compare {
        compare(c)?;
    }
    branch(&req.success)?;
    branch(&req.failure)
}

fn branch(ops: &[RequestOp]) -> Result<(), KvError> {
    if ops.len() > MAX_TXN_OPS {
        return Err(KvError::bad_request(format!(
            "too many operations in txn request (at most {MAX_TXN_OPS})"
        )));
    }
    let mut puts: Vec<&str> = Vec::new();
    let mut deletes: Vec<KeyRange> = Vec::new();
    for op in ops {
        match op {
            RequestOp::Range(r) => {
                range(r)?;
            }
            RequestOp::Put(p) => {
                put(p)?;
                puts.push(&p.key);
            }
            RequestOp::DeleteRange(d) => deletes.push(delete_range(d)?),
        }
    }
    let mut sorted = puts.clone();
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(KvError::bad_request("duplicate key given in txn request"));
    }
    for p in &puts {
        if deletes.iter().any(|d| d.contains(p)) {
            return Err(KvError::bad_request(format!(
                "duplicate key given in txn request: {p:?} is both put and deleted"
            )));
        }
    }
    Ok(())
}

pub fn lease_ttl(ttl: i64) -> Result<(), KvError> {
    if ttl <= 0 {
        return Err(KvError::bad_request("lease TTL must be positive"));
    }
    if ttl > MAX_LEASE_TTL {
        return Err(KvError::bad_request(format!(
            "lease TTL exceeds the maximum of {MAX_LEASE_TTL} seconds"
        )));
    }
    Ok(())
}
