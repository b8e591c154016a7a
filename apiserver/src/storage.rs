//! Objects in the kvstore: `/registry/<plural>/<namespace>/<name>` holds an object's JSON; its
//! resourceVersion is the key's mod_revision. Every write is a compare-and-swap on that revision,
//! so concurrent writers can never lose each other's changes.
//!
//! A write also takes and gives up the *claims* its object holds (a Service's ClusterIP and
//! node ports, [`crate::services::claims`]) in the same transaction: a new claim is put only if
//! its key is absent, a dropped one is deleted. A write whose claim is already held by another
//! object fails as a whole ([`Written::ClaimTaken`]), and nothing is written.

use std::sync::Arc;
use std::time::Duration;

use api::ResourceInfo;
use kvclient::proto::*;
use kvclient::{KvClient, KvError};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::leases::LeaseManager;
use crate::services::claims;

#[derive(Clone)]
pub struct Storage {
    kv: KvClient,
    /// Events are written with a lease so the kvstore removes them after `--event-ttl`.
    event_leases: Option<Arc<LeaseManager>>,
}

/// An object as read from storage, with its revision.
#[derive(Clone, Debug)]
pub struct Stored {
    pub obj: Value,
    pub mod_revision: i64,
}

/// What a `guaranteed_update` closure decides.
pub enum Update {
    /// Write this object.
    Write(Value),
    /// Delete the object (the last finalizer went, or a grace period ended).
    Delete,
    /// Nothing to change: answer with the current object.
    Noop,
}

/// How a conditional write ended.
#[derive(Debug)]
pub enum Written {
    Done(Stored),
    /// The key was not at the expected revision (a create: it exists).
    Moved,
    /// A claim the object needs (this key) is held by another object.
    ClaimTaken(String),
}

pub const REGISTRY: &str = "/registry/";

pub fn key(info: &ResourceInfo, ns: &str, name: &str) -> String {
    if info.namespaced {
        format!("{REGISTRY}{}/{}/{}", info.plural, ns, name)
    } else {
        format!("{REGISTRY}{}/{}", info.plural, name)
    }
}

/// The prefix holding a kind's objects (in one namespace, or all when `ns` is None).
pub fn prefix(info: &ResourceInfo, ns: Option<&str>) -> String {
    match ns {
        Some(ns) if info.namespaced => format!("{REGISTRY}{}/{}/", info.plural, ns),
        _ => format!("{REGISTRY}{}/", info.plural),
    }
}

/// Decode a stored value, setting `metadata.resourceVersion` from the revision.
pub fn decode(kv: &KeyValue, revision: i64) -> ApiResult<Value> {
    let mut v: Value = serde_json::from_str(&kv.value)
        .map_err(|e| ApiError::internal(format!("corrupt object at {}: {e}", kv.key)))?;
    set_resource_version(&mut v, revision);
    Ok(v)
}

pub fn set_resource_version(v: &mut Value, revision: i64) {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    }
}

/// The stored form: no resourceVersion (it is the key's revision).
fn encode(obj: &Value) -> ApiResult<String> {
    let mut o = obj.clone();
    if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_string(&o).map_err(|e| ApiError::internal(e.to_string()))
}

/// `Done` as `Some`, `Moved` as `None`, a taken claim as an error the writer can recognise.
fn written(w: Written) -> ApiResult<Option<Stored>> {
    match w {
        Written::Done(s) => Ok(Some(s)),
        Written::Moved => Ok(None),
        Written::ClaimTaken(k) => Err(ApiError::claim_taken(&k)),
    }
}

fn delete_op(key: &str) -> RequestOp {
    RequestOp::DeleteRange(DeleteRangeRequest {
        key: key.to_string(),
        ..Default::default()
    })
}

fn range_op(key: &str) -> RequestOp {
    RequestOp::Range(RangeRequest {
        key: key.to_string(),
        keys_only: true,
        ..Default::default()
    })
}

/// Why a write's transaction failed: the object's key moved (that first: an existing object
/// is `AlreadyExists`, not a lost race), else the first claim found taken.
fn failed_write(resp: &TxnResponse, expected: i64, acquire: &[(&String, &String)]) -> Written {
    let found = |i: usize| match resp.responses.get(i) {
        Some(ResponseOp::Range(r)) => r.kvs.first().map(|kv| kv.mod_revision),
        _ => None,
    };
    if acquire.is_empty() || found(0).unwrap_or(0) != expected {
        return Written::Moved;
    }
    for (i, (k, _)) in acquire.iter().enumerate() {
        if found(i + 1).is_some() {
            return Written::ClaimTaken(k.to_string());
        }
    }
    Written::Moved
}

/// Where events live; their keys get a TTL lease.
const EVENTS_PREFIX: &str = "/registry/events/";

impl Storage {
    pub fn new(kv: KvClient) -> Self {
        Storage {
            kv,
            event_leases: None,
        }
    }

    /// Attach every event written to a lease of `ttl` (Kubernetes' `--event-ttl`).
    pub fn with_event_ttl(mut self, ttl: Duration) -> Self {
        self.event_leases = Some(Arc::new(LeaseManager::new(ttl)));
        self
    }

    /// The lease a write of `key` carries (0 for none).
    async fn lease_for(&self, key: &str) -> ApiResult<i64> {
        match &self.event_leases {
            Some(m) if key.starts_with(EVENTS_PREFIX) => m.lease(&self.kv).await,
            _ => Ok(0),
        }
    }

    /// A write failed because its lease is gone (expired early, or revoked): forget it.
    fn lease_failed(&self, e: &KvError) -> bool {
        match &self.event_leases {
            Some(m) if e.code() == Some(ErrorCode::LeaseNotFound) => {
                m.forget();
                true
            }
            _ => false,
        }
    }

    pub fn kv(&self) -> &KvClient {
        &self.kv
    }

    pub async fn get(&self, key: &str) -> ApiResult<Option<Stored>> {
        let (kv, _) = self.kv.get(key).await?;
        kv.map(|kv| {
            Ok(Stored {
                obj: decode(&kv, kv.mod_revision)?,
                mod_revision: kv.mod_revision,
            })
        })
        .transpose()
    }

    /// Objects under a prefix, from `start` (inclusive, for pagination), at `revision` (0 =
    /// latest). Returns the objects, the revision read at, and whether more remain.
    pub async fn list(
        &self,
        prefix: &str,
        start: Option<&str>,
        revision: i64,
        limit: i64,
    ) -> ApiResult<(Vec<Stored>, i64, bool)> {
        let req = RangeRequest {
            key: start.unwrap_or(prefix).to_string(),
            range_end: Some(prefix_end(prefix)),
            limit,
            revision,
            ..Default::default()
        };
        let resp = self.kv.range(&req).await?;
        let mut out = Vec::with_capacity(resp.kvs.len());
        for kv in &resp.kvs {
            out.push(Stored {
                obj: decode(kv, kv.mod_revision)?,
                mod_revision: kv.mod_revision,
            });
        }
        let rev = if revision > 0 {
            revision
        } else {
            resp.header.revision
        };
        Ok((out, rev, resp.more))
    }

    /// Up to `limit` objects (0: all) under a prefix that `keep` accepts, from key `start`
    /// (inclusive), at `revision` (0 = latest): pages are read until the limit is filled, as
    /// Kubernetes' storage does for selector lists. Returns the objects, the revision read at,
    /// and the key the next page starts from when more remain.
    pub async fn list_matching(
        &self,
        prefix: &str,
        start: Option<&str>,
        revision: i64,
        limit: usize,
        keep: impl Fn(&Value) -> bool,
    ) -> ApiResult<(Vec<Value>, i64, Option<String>)> {
        let mut out = Vec::new();
        let mut from = start.unwrap_or(prefix).to_string();
        let mut rev = revision;
        loop {
            let page_size = if limit == 0 {
                0
            } else {
                (limit - out.len()).max(100)
            };
            let resp = self
                .kv
                .range(&RangeRequest {
                    key: from.clone(),
                    range_end: Some(prefix_end(prefix)),
                    limit: page_size as i64,
                    revision: rev,
                    ..Default::default()
                })
                .await?;
            if rev == 0 {
                rev = resp.header.revision;
            }
            let n = resp.kvs.len();
            for (i, kv) in resp.kvs.iter().enumerate() {
                let obj = decode(kv, kv.mod_revision)?;
                if keep(&obj) {
                    out.push(obj);
                }
                if limit > 0 && out.len() >= limit {
                    let more = i + 1 < n || resp.more;
                    return Ok((out, rev, more.then(|| format!("{}\0", kv.key))));
                }
            }
            match resp.kvs.last() {
                Some(last) if resp.more => from = format!("{}\0", last.key),
                _ => return Ok((out, rev, None)),
            }
        }
    }

    /// Create if absent. `Ok(None)` when the key already exists. `lease` 0 means the key's
    /// default (a TTL lease for events, none otherwise).
    pub async fn create(&self, key: &str, obj: &Value, lease: i64) -> ApiResult<Option<Stored>> {
        written(self.put_if(key, obj, None, lease).await?)
    }

    /// Create if absent, telling a taken claim apart from an existing key.
    pub async fn create_claiming(&self, key: &str, obj: &Value) -> ApiResult<Written> {
        self.put_if(key, obj, None, 0).await
    }

    /// Write if the key is still at `current`'s revision. `Ok(None)` when it moved (or vanished).
    pub async fn update(
        &self,
        key: &str,
        obj: &Value,
        current: &Stored,
    ) -> ApiResult<Option<Stored>> {
        written(self.put_if(key, obj, Some(current), 0).await?)
    }

    /// Put `obj` if the key is at `current`'s revision (absent when None), taking the claims
    /// `obj` holds that `current` did not and giving up those it no longer holds.
    async fn put_if(
        &self,
        key: &str,
        obj: &Value,
        current: Option<&Stored>,
        lease: i64,
    ) -> ApiResult<Written> {
        let value = encode(obj)?;
        let expected = current.map(|c| c.mod_revision).unwrap_or(0);
        let new_claims = claims::of(key, obj);
        let old_claims = current.map(|c| claims::of(key, &c.obj)).unwrap_or_default();
        let acquire: Vec<(&String, &String)> = new_claims
            .iter()
            .filter(|(k, _)| !old_claims.contains_key(*k))
            .collect();
        let mut retried = false;
        loop {
            let lease = if lease != 0 {
                lease
            } else {
                self.lease_for(key).await?
            };
            let mut txn = TxnRequest {
                compare: vec![Compare::mod_revision(key, CompareResult::Equal, expected)],
                success: vec![RequestOp::Put(PutRequest {
                    key: key.to_string(),
                    value: value.clone(),
                    lease,
                    prev_kv: false,
                })],
                failure: vec![],
            };
            for (k, v) in &acquire {
                txn.compare
                    .push(Compare::mod_revision(*k, CompareResult::Equal, 0));
                txn.success.push(RequestOp::Put(PutRequest {
                    key: k.to_string(),
                    value: v.to_string(),
                    lease: 0,
                    prev_kv: false,
                }));
            }
            for k in old_claims.keys().filter(|k| !new_claims.contains_key(*k)) {
                txn.success.push(delete_op(k));
            }
            if !acquire.is_empty() {
                // On failure, read what failed: the object's key, then each claim's.
                txn.failure.push(range_op(key));
                txn.failure.extend(acquire.iter().map(|(k, _)| range_op(k)));
            }
            let resp = match self.kv.txn(&txn).await {
                Ok(r) => r,
                Err(e) if !retried && self.lease_failed(&e) => {
                    retried = true;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if !resp.succeeded {
                return Ok(failed_write(&resp, expected, &acquire));
            }
            let rev = resp.header.revision;
            let mut obj = obj.clone();
            set_resource_version(&mut obj, rev);
            return Ok(Written::Done(Stored {
                obj,
                mod_revision: rev,
            }));
        }
    }

    /// Delete if the key is still at `current`'s revision, with the claims it holds. Returns
    /// the deletion's revision, or None if it moved.
    pub async fn delete(&self, key: &str, current: &Stored) -> ApiResult<Option<i64>> {
        let mut success = vec![delete_op(key)];
        success.extend(claims::of(key, &current.obj).keys().map(|k| delete_op(k)));
        let txn = TxnRequest {
            compare: vec![Compare::mod_revision(
                key,
                CompareResult::Equal,
                current.mod_revision,
            )],
            success,
            failure: vec![],
        };
        let resp = self.kv.txn(&txn).await?;
        Ok(resp.succeeded.then_some(resp.header.revision))
    }

    /// Read-modify-write until the compare-and-swap succeeds (Kubernetes' GuaranteedUpdate).
    /// `f` sees the current object (None when absent) and decides; an error aborts.
    /// Returns the written object (or the current one on Noop; None after a Delete).
    pub async fn guaranteed_update<F>(&self, key: &str, mut f: F) -> ApiResult<Option<Stored>>
    where
        F: FnMut(Option<&Stored>) -> ApiResult<Update>,
    {
        let mut attempt: u64 = 0;
        loop {
            attempt += 1;
            let current = self.get(key).await?;
            let decision = f(current.as_ref())?;
            match decision {
                Update::Noop => return Ok(current),
                Update::Write(obj) => {
                    let res = match &current {
                        None => self.create(key, &obj, 0).await?,
                        Some(cur) => self.update(key, &obj, cur).await?,
                    };
                    if let Some(s) = res {
                        return Ok(Some(s));
                    }
                }
                Update::Delete => match &current {
                    None => return Ok(None),
                    Some(cur) => {
                        if self.delete(key, cur).await?.is_some() {
                            return Ok(None);
                        }
                    }
                },
            }
            tokio::time::sleep(Duration::from_millis((attempt * 5).min(100))).await;
        }
    }

    /// A watch on a prefix from `start_revision`, with progress notifications.
    pub async fn watch(
        &self,
        prefix: &str,
        start_revision: i64,
        prev_kv: bool,
    ) -> Result<impl futures::Stream<Item = Result<WatchResponse, KvError>> + Send + use<>, KvError>
    {
        self.kv
            .watch(&WatchCreateRequest {
                key: prefix.to_string(),
                range_end: Some(prefix_end(prefix)),
                prefix: false,
                start_revision,
                prev_kv,
                progress_notify: true,
            })
            .await
    }

    /// The store's current revision.
    pub async fn current_revision(&self) -> ApiResult<i64> {
        let r = self
            .kv
            .range(&RangeRequest {
                key: "/registry/".into(),
                count_only: true,
                limit: 1,
                ..Default::default()
            })
            .await?;
        Ok(r.header.revision)
    }
}
