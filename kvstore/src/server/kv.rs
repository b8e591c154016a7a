//! `/v3/kv/*`: range, put, deleterange, txn, compaction.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use kvclient::proto::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, ResponseOp, TxnRequest, TxnResponse,
};

use super::{ApiError, Body, S, unexpected};
use crate::command::{CmdResponse, Command};
use crate::error::KvError;
use crate::mvcc::{range::End, validate};
use crate::raft::ProposeError;

pub async fn range(State(s): S, Body(req): Body<RangeRequest>) -> Result<Response, ApiError> {
    let kr = validate::range(&req)?;
    if !req.serializable {
        linearize(&s).await?;
    }
    // One key is a few B-tree lookups; scans go to a blocking thread.
    let mut resp: RangeResponse = if kr.end == End::One {
        s.store.read()?.range(&req)?
    } else {
        let store = s.store.clone();
        tokio::task::spawn_blocking(move || store.read()?.range(&req))
            .await
            .map_err(|e| ApiError(KvError::internal(e.to_string())))??
    };
    resp.header = s.header(resp.header.revision);
    Ok(Json(resp).into_response())
}

/// Wait until a read on this member sees every write committed before the call (ReadIndex).
pub(super) async fn linearize(s: &super::AppState) -> Result<(), ApiError> {
    match s.node.linearize().await {
        Ok(()) => Ok(()),
        Err(ProposeError::NotLeader { .. }) => Err(ApiError(KvError::unavailable("no leader"))),
        Err(ProposeError::Unavailable(m) | ProposeError::Unknown(m)) => {
            Err(ApiError(KvError::unavailable(m)))
        }
    }
}

pub async fn put(State(s): S, Body(req): Body<PutRequest>) -> Result<Json<PutResponse>, ApiError> {
    tracing::trace!("write path: put received");
    validate::put(&req)?;
    match s.propose(Command::Put(req)).await? {
        CmdResponse::Put(mut r) => {
            r.header = s.header(r.header.revision);
            Ok(Json(r))
        }
        other => Err(unexpected(other)),
    }
}

pub async fn delete_range(
    State(s): S,
    Body(req): Body<DeleteRangeRequest>,
) -> Result<Json<DeleteRangeResponse>, ApiError> {
    validate::delete_range(&req)?;
    match s.propose(Command::DeleteRange(req)).await? {
        CmdResponse::DeleteRange(mut r) => {
            r.header = s.header(r.header.revision);
            Ok(Json(r))
        }
        other => Err(unexpected(other)),
    }
}

pub async fn txn(State(s): S, Body(req): Body<TxnRequest>) -> Result<Json<TxnResponse>, ApiError> {
    validate::txn(&req)?;
    match s.propose(Command::Txn(req)).await? {
        CmdResponse::Txn(mut r) => {
            r.header = s.header(r.header.revision);
            for op in &mut r.responses {
                let h = match op {
                    ResponseOp::Range(x) => &mut x.header,
                    ResponseOp::Put(x) => &mut x.header,
                    ResponseOp::DeleteRange(x) => &mut x.header,
                };
                *h = s.header(h.revision);
            }
            Ok(Json(r))
        }
        other => Err(unexpected(other)),
    }
}

pub async fn compaction(
    State(s): S,
    Body(req): Body<CompactionRequest>,
) -> Result<Json<CompactionResponse>, ApiError> {
    if req.revision < 0 {
        return Err(ApiError(KvError::bad_request(
            "compaction revision must not be negative",
        )));
    }
    match s
        .propose(Command::Compact {
            revision: req.revision,
        })
        .await?
    {
        CmdResponse::Compact { revision } => Ok(Json(CompactionResponse {
            header: s.header(revision),
        })),
        other => Err(unexpected(other)),
    }
}
