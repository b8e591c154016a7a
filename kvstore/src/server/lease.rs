//! `/v3/lease/*`: grant and revoke go through Raft; keep-alive and time-to-live use the
//! leader's in-memory deadlines.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use kvclient::proto::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseRevokeRequest, LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};

use super::{ApiError, Body, S, unexpected};
use crate::command::{CmdResponse, Command};
use crate::error::KvError;
use crate::mvcc::validate;

pub async fn grant(
    State(s): S,
    Body(req): Body<LeaseGrantRequest>,
) -> Result<Json<LeaseGrantResponse>, ApiError> {
    validate::lease_ttl(req.ttl)?;
    if req.id < 0 {
        return Err(ApiError(KvError::bad_request(
            "lease ID must not be negative",
        )));
    }
    match s
        .propose(Command::LeaseGrant {
            id: req.id,
            ttl: req.ttl,
        })
        .await?
    {
        CmdResponse::LeaseGrant { id, ttl, revision } => Ok(Json(LeaseGrantResponse {
            header: s.header(revision),
            id,
            ttl,
        })),
        other => Err(unexpected(other)),
    }
}

pub async fn revoke(
    State(s): S,
    Body(req): Body<LeaseRevokeRequest>,
) -> Result<Json<LeaseRevokeResponse>, ApiError> {
    match s.propose(Command::LeaseRevoke { id: req.id }).await? {
        CmdResponse::LeaseRevoke { revision } => Ok(Json(LeaseRevokeResponse {
            header: s.header(revision),
        })),
        other => Err(unexpected(other)),
    }
}

pub async fn keep_alive(
    State(s): S,
    headers: HeaderMap,
    Body(req): Body<LeaseKeepAliveRequest>,
) -> Result<Response, ApiError> {
    if !s.node.is_leader() {
        return s
            .forward(&headers, "/v3/lease/keepalive", &req, s.node.leader())
            .await;
    }
    match s.leases.keep_alive(req.id) {
        Some(ttl) => Ok(Json(LeaseKeepAliveResponse {
            header: s.header(s.hub.current()),
            id: req.id,
            ttl,
        })
        .into_response()),
        None => Err(ApiError(KvError::lease_not_found(req.id))),
    }
}

pub async fn time_to_live(
    State(s): S,
    headers: HeaderMap,
    Body(req): Body<LeaseTimeToLiveRequest>,
) -> Result<Response, ApiError> {
    if !s.node.is_leader() {
        return s
            .forward(&headers, "/v3/lease/timetolive", &req, s.node.leader())
            .await;
    }
    let resp = match s.leases.time_to_live(req.id) {
        Some((ttl, granted_ttl)) => LeaseTimeToLiveResponse {
            header: s.header(s.hub.current()),
            id: req.id,
            ttl,
            granted_ttl,
            keys: if req.keys {
                s.store.read()?.lease_keys(req.id)?
            } else {
                Vec::new()
            },
        },
        None => LeaseTimeToLiveResponse {
            header: s.header(s.hub.current()),
            id: req.id,
            ttl: -1,
            granted_ttl: 0,
            keys: Vec::new(),
        },
    };
    Ok(Json(resp).into_response())
}
