//! The kvstore's HTTP/JSON wire protocol: etcd v3's messages, field for field.
//!
//! Every request body is JSON and rejects unknown fields; every response carries a
//! [`ResponseHeader`] with the store's current revision. Keys and values are UTF-8 strings.
//!
//! | method and path                 | request                 | response                 |
//! |---------------------------------|-------------------------|--------------------------|
//! | `POST /v3/kv/range`             | [`RangeRequest`]        | [`RangeResponse`]        |
//! | `POST /v3/kv/put`               | [`PutRequest`]          | [`PutResponse`]          |
//! | `POST /v3/kv/deleterange`       | [`DeleteRangeRequest`]  | [`DeleteRangeResponse`]  |
//! | `POST /v3/kv/txn`               | [`TxnRequest`]          | [`TxnResponse`]          |
//! | `POST /v3/kv/compaction`        | [`CompactionRequest`]   | [`CompactionResponse`]   |
//! | `POST /v3/watch`                | [`WatchCreateRequest`]  | newline-delimited [`WatchResponse`]s |
//! | `POST /v3/watch/progress`       | [`WatchProgressRequest`]| [`WatchProgressResponse`] (a progress message is sent on that stream) |
//! | `POST /v3/lease/grant`          | [`LeaseGrantRequest`]   | [`LeaseGrantResponse`]   |
//! | `POST /v3/lease/revoke`         | [`LeaseRevokeRequest`]  | [`LeaseRevokeResponse`]  |
//! | `POST /v3/lease/keepalive`      | [`LeaseKeepAliveRequest`] | [`LeaseKeepAliveResponse`] |
//! | `POST /v3/lease/timetolive`     | [`LeaseTimeToLiveRequest`] | [`LeaseTimeToLiveResponse`] |
//! | `POST /v3/maintenance/status`   | `{}`                    | [`StatusResponse`]       |
//! | `POST /v3/cluster/member/list`  | `{}`                    | [`MemberListResponse`]   |
//! | `POST /v3/cluster/member/add`   | [`MemberAddRequest`]    | [`MemberAddResponse`]    |
//! | `POST /v3/cluster/member/remove`| [`MemberRemoveRequest`] | [`MemberListResponse`]   |
//! | `POST /v3/cluster/member/promote`| [`MemberPromoteRequest`]| [`MemberListResponse`]  |
//! | `GET /health`                   |                         | `{"health":"true"}`      |
//!
//! Errors are a non-2xx status with an [`ErrorBody`].

use serde::{Deserialize, Serialize};

fn is_zero(v: &i64) -> bool {
    *v == 0
}
fn is_false(v: &bool) -> bool {
    !*v
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseHeader {
    #[serde(default)]
    pub cluster_id: u64,
    #[serde(default)]
    pub member_id: u64,
    /// The store's revision when the request was served (for a write: the revision it created).
    #[serde(default)]
    pub revision: i64,
    #[serde(default)]
    pub raft_term: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyValue {
    pub key: String,
    /// Revision of the last creation of this key.
    #[serde(default)]
    pub create_revision: i64,
    /// Revision of the last modification of this key.
    #[serde(default)]
    pub mod_revision: i64,
    /// Number of writes since the key was (re)created; 1 after creation, reset by delete.
    #[serde(default)]
    pub version: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// The lease the key is attached to, 0 for none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lease: i64,
}

/// Which keys a request covers: one key, a prefix, or `[key, range_end)`. A `range_end` of
/// `"\0"` means every key ≥ `key` (etcd's convention).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeRequest {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_end: Option<String>,
    /// Shorthand for "every key starting with `key`".
    #[serde(default, skip_serializing_if = "is_false")]
    pub prefix: bool,
    /// At most this many keys (0 = no limit); `more` tells whether some were left out.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: i64,
    /// Read at this revision (0 = current). Older than the compact revision → `compacted` error.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub revision: i64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub keys_only: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub count_only: bool,
    /// Serve from the local member without a ReadIndex round (may be stale).
    #[serde(default, skip_serializing_if = "is_false")]
    pub serializable: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeResponse {
    pub header: ResponseHeader,
    #[serde(default)]
    pub kvs: Vec<KeyValue>,
    #[serde(default)]
    pub more: bool,
    /// Keys in the whole range (ignoring `limit`).
    #[serde(default)]
    pub count: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutRequest {
    pub key: String,
    #[serde(default)]
    pub value: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lease: i64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub prev_kv: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutResponse {
    pub header: ResponseHeader,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_kv: Option<KeyValue>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteRangeRequest {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_end: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub prefix: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub prev_kv: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteRangeResponse {
    pub header: ResponseHeader,
    #[serde(default)]
    pub deleted: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prev_kvs: Vec<KeyValue>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompareResult {
    Equal,
    NotEqual,
    Greater,
    Less,
}

/// What a compare looks at, and the value it compares with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CompareTarget {
    Version(i64),
    CreateRevision(i64),
    /// `mod_revision == 0` means "the key does not exist" (create-if-absent).
    ModRevision(i64),
    Value(String),
    Lease(i64),
}

/// `key <result> <target>`; over a range, every key in it must satisfy the compare.
/// A missing key has version, create_revision, mod_revision and lease 0 and no value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compare {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_end: Option<String>,
    pub result: CompareResult,
    pub target: CompareTarget,
}

impl Compare {
    pub fn mod_revision(key: impl Into<String>, result: CompareResult, rev: i64) -> Self {
        Compare {
            key: key.into(),
            range_end: None,
            result,
            target: CompareTarget::ModRevision(rev),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RequestOp {
    Range(RangeRequest),
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ResponseOp {
    Range(RangeResponse),
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
}

/// Atomically: if every compare holds run `success`, else run `failure`. One revision for
/// all the writes it makes (none if it writes nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxnRequest {
    #[serde(default)]
    pub compare: Vec<Compare>,
    #[serde(default)]
    pub success: Vec<RequestOp>,
    #[serde(default)]
    pub failure: Vec<RequestOp>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxnResponse {
    pub header: ResponseHeader,
    pub succeeded: bool,
    #[serde(default)]
    pub responses: Vec<ResponseOp>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompactionRequest {
    /// Discard history before this revision; reads and watches below it fail with `compacted`.
    pub revision: i64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub physical: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompactionResponse {
    pub header: ResponseHeader,
}

/// Open a watch: the response is a stream of newline-delimited [`WatchResponse`]s, the first
/// with `created: true` and the stream's `watch_id`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchCreateRequest {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_end: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub prefix: bool,
    /// First revision to deliver (0 = from now on, i.e. current + 1).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_revision: i64,
    /// Include the previous key-value in each event.
    #[serde(default, skip_serializing_if = "is_false")]
    pub prev_kv: bool,
    /// Periodically send an empty response whose header revision says "nothing up to here".
    #[serde(default, skip_serializing_if = "is_false")]
    pub progress_notify: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    Put,
    Delete,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    #[serde(rename = "type")]
    pub type_: EventType,
    /// For a delete: the key with `mod_revision` = the delete's revision and no value.
    pub kv: KeyValue,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_kv: Option<KeyValue>,
}

/// One message of a watch stream. Events of one revision are never split across messages;
/// messages are in revision order with no gaps and no duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchResponse {
    pub header: ResponseHeader,
    #[serde(default)]
    pub watch_id: i64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub created: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub canceled: bool,
    /// Set (with `canceled`) when `start_revision` was compacted: the oldest revision still kept.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub compact_revision: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cancel_reason: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
}

impl WatchResponse {
    /// An empty, non-control message: "no events up to `header.revision`".
    pub fn is_progress_notify(&self) -> bool {
        self.events.is_empty() && !self.created && !self.canceled && self.compact_revision == 0
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchProgressRequest {
    pub watch_id: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchProgressResponse {
    pub header: ResponseHeader,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseGrantRequest {
    /// Seconds.
    #[serde(rename = "TTL")]
    pub ttl: i64,
    /// Requested id; 0 lets the server choose.
    #[serde(rename = "ID", default)]
    pub id: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseGrantResponse {
    pub header: ResponseHeader,
    #[serde(rename = "ID")]
    pub id: i64,
    #[serde(rename = "TTL")]
    pub ttl: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRevokeRequest {
    #[serde(rename = "ID")]
    pub id: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRevokeResponse {
    pub header: ResponseHeader,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseKeepAliveRequest {
    #[serde(rename = "ID")]
    pub id: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseKeepAliveResponse {
    pub header: ResponseHeader,
    #[serde(rename = "ID")]
    pub id: i64,
    /// The renewed TTL in seconds.
    #[serde(rename = "TTL")]
    pub ttl: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseTimeToLiveRequest {
    #[serde(rename = "ID")]
    pub id: i64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub keys: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseTimeToLiveResponse {
    pub header: ResponseHeader,
    #[serde(rename = "ID")]
    pub id: i64,
    /// Remaining seconds; -1 when the lease does not exist (expired or revoked).
    #[serde(rename = "TTL")]
    pub ttl: i64,
    #[serde(rename = "grantedTTL", default)]
    pub granted_ttl: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusResponse {
    pub header: ResponseHeader,
    #[serde(default)]
    pub version: String,
    /// Bytes on disk (log + state machine).
    #[serde(default)]
    pub db_size: i64,
    /// Member id of the current leader (0 if unknown).
    #[serde(default)]
    pub leader: u64,
    #[serde(default)]
    pub raft_index: u64,
    #[serde(default)]
    pub raft_term: u64,
    #[serde(default)]
    pub raft_applied_index: u64,
    #[serde(default)]
    pub is_learner: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    #[serde(rename = "ID")]
    pub id: u64,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
    #[serde(rename = "isLearner", default)]
    pub is_learner: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberListResponse {
    pub header: ResponseHeader,
    #[serde(default)]
    pub members: Vec<Member>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberAddRequest {
    #[serde(default)]
    pub name: String,
    #[serde(rename = "peerURLs")]
    pub peer_urls: Vec<String>,
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
    #[serde(rename = "isLearner", default)]
    pub is_learner: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberAddResponse {
    pub header: ResponseHeader,
    pub member: Member,
    #[serde(default)]
    pub members: Vec<Member>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberRemoveRequest {
    #[serde(rename = "ID")]
    pub id: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberPromoteRequest {
    #[serde(rename = "ID")]
    pub id: u64,
}

/// Why a request failed. `code` is stable and machine-readable; `error` is etcd's message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed request (bad JSON, unknown field, bad range). HTTP 400.
    BadRequest,
    /// Value or request too large. HTTP 413.
    TooLarge,
    /// The requested revision was compacted. HTTP 410 (`compact_revision` set).
    Compacted,
    /// The requested revision is newer than the store's. HTTP 400.
    FutureRevision,
    /// Unknown lease. HTTP 404.
    LeaseNotFound,
    /// Unknown member. HTTP 404.
    MemberNotFound,
    /// No quorum / no leader right now, and the request was *not* applied: retrying it (on
    /// any member) is safe. HTTP 503.
    Unavailable,
    /// The request reached Raft but its outcome is unknown (the leader changed or the commit
    /// took too long): a write may or may not have been applied, so it must not be retried
    /// blindly. etcd's "request timed out". HTTP 504.
    Timeout,
    /// Anything else. HTTP 500.
    Internal,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub code: ErrorCode,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub compact_revision: i64,
}

/// Maximum size of a single value, as etcd's default request limit (1.5 MiB).
pub const MAX_VALUE_BYTES: usize = 1536 * 1024;

/// etcd's "prefix end": the smallest key greater than every key starting with `prefix`, or
/// `"\0"` (every key) when there is none.
pub fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0x7f {
            bytes.push(last + 1);
            if let Ok(s) = String::from_utf8(bytes) {
                return s;
            }
            break;
        }
    }
    "\0".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shapes() {
        let txn = TxnRequest {
            compare: vec![Compare::mod_revision("/k", CompareResult::Equal, 0)],
            success: vec![RequestOp::Put(PutRequest {
                key: "/k".into(),
                value: "v".into(),
                ..Default::default()
            })],
            failure: vec![RequestOp::Range(RangeRequest {
                key: "/k".into(),
                ..Default::default()
            })],
        };
        let j = serde_json::to_string(&txn).unwrap();
        assert_eq!(
            j,
            r#"{"compare":[{"key":"/k","result":"EQUAL","target":{"mod_revision":0}}],"success":[{"put":{"key":"/k","value":"v"}}],"failure":[{"range":{"key":"/k"}}]}"#
        );
        assert_eq!(serde_json::from_str::<TxnRequest>(&j).unwrap(), txn);
        assert!(serde_json::from_str::<PutRequest>(r#"{"key":"a","vaule":"x"}"#).is_err());
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end("/registry/pods/"), "/registry/pods0");
        assert_eq!(prefix_end("a"), "b");
        assert_eq!(prefix_end(""), "\0");
    }
}
