//! What goes through Raft: batches of write commands, and the result of applying each.

use kvclient::proto::{DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse};
use kvclient::proto::{TxnRequest, TxnResponse};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::error::KvError;

/// One state-changing request. Applying it is deterministic: every member computes the same
/// result from the same state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact {
        revision: i64,
    },
    /// `id == 0` lets the state machine choose (deterministically, from the log position).
    LeaseGrant {
        id: i64,
        ttl: i64,
    },
    LeaseRevoke {
        id: i64,
    },
    /// A member announces its name and client URLs (etcd's "publish").
    PublishMember {
        id: u64,
        name: String,
        client_urls: Vec<String>,
    },
}

impl Command {
    /// A rough size in bytes, to bound the size of one Raft entry.
    pub fn approx_size(&self) -> usize {
        match self {
            Command::Put(p) => 64 + p.key.len() + p.value.len(),
            Command::Txn(t) => {
                64 + t
                    .success
                    .iter()
                    .chain(&t.failure)
                    .map(|op| match op {
                        kvclient::proto::RequestOp::Put(p) => 64 + p.key.len() + p.value.len(),
                        _ => 128,
                    })
                    .sum::<usize>()
                    + t.compare.len() * 64
            }
            _ => 128,
        }
    }
}

/// The Raft log's application payload: the commands of many concurrent client requests share
/// one log entry (and so one fsync); each still gets its own revision. Shared, so the log
/// cache, replication and apply pass entries around without copying values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch(pub Arc<Vec<Command>>, pub Answer);

impl Batch {
    pub fn new(cmds: Vec<Command>) -> Batch {
        Batch(Arc::new(cmds), Answer::default())
    }
}

/// Who waits for each command's result, on the member that proposed the batch: its state
/// machine answers them directly once the batch is applied and published (see `state_machine`),
/// without the hop through openraft's responder. Never serialized, so empty on other members and for entries read back
/// from disk; those are answered through openraft as usual.
#[derive(Clone, Default)]
pub struct Answer(Option<Arc<Mutex<Option<Vec<Responder>>>>>);

/// Where one command's result goes.
pub type Responder = tokio::sync::oneshot::Sender<Result<CmdResult, crate::raft::ProposeError>>;

impl Answer {
    pub fn new(responders: Vec<Responder>) -> Answer {
        Answer(Some(Arc::new(Mutex::new(Some(responders)))))
    }

    /// Whether this is the proposing member's copy.
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// The responders, unless someone took them already.
    pub fn take(&self) -> Option<Vec<Responder>> {
        let slot = self.0.as_ref()?;
        slot.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Answer")
    }
}

/// Answers are not part of what a batch is.
impl PartialEq for Answer {
    fn eq(&self, _: &Answer) -> bool {
        true
    }
}

impl Serialize for Batch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Batch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Batch, D::Error> {
        Vec::<Command>::deserialize(d).map(Batch::new)
    }
}

/// The outcome of one applied [`Command`]. Headers carry only the revision; the server fills in
/// the member fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CmdResponse {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compact { revision: i64 },
    LeaseGrant { id: i64, ttl: i64, revision: i64 },
    LeaseRevoke { revision: i64 },
    Published,
}

pub type CmdResult = Result<CmdResponse, KvError>;

/// The results of one applied [`Batch`], in order (empty for blank and membership entries).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchResponse(pub Vec<CmdResult>);
