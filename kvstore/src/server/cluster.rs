//! Status, membership and health.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use client::kv::proto::{Member, MemberListResponse, StatusResponse};
use serde::Deserialize;

use super::{ApiError, Body, S};
use crate::error::KvError;

/// The `{}` body of status and member-list requests.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

pub async fn status(State(s): S, Body(Empty {}): Body<Empty>) -> Json<StatusResponse> {
    let st = s.node.status();
    let db_size = s
        .data_files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len() as i64)
        .sum();
    Json(StatusResponse {
        header: s.header(s.hub.current()),
        version: env!("CARGO_PKG_VERSION").to_string(),
        db_size,
        leader: st.leader.unwrap_or(0),
        raft_index: st.last_log_index,
        raft_term: st.term,
        raft_applied_index: st.applied_index,
        is_learner: st.is_learner,
        errors: Vec::new(),
    })
}

pub async fn member_list(
    State(s): S,
    Body(Empty {}): Body<Empty>,
) -> Result<Json<MemberListResponse>, ApiError> {
    let st = s.node.status();
    let published: HashMap<u64, crate::mvcc::MemberAttrs> =
        s.store.read()?.members()?.into_iter().collect();
    let members = st
        .members
        .into_iter()
        .map(|m| {
            let mut attrs = published.get(&m.id).cloned().unwrap_or_default();
            if m.id == s.node.id() {
                attrs.name = s.name.clone();
                attrs.client_urls = vec![s.advertise_client_url.clone()];
            }
            Member {
                id: m.id,
                name: attrs.name,
                peer_urls: vec![m.peer_url],
                client_urls: attrs.client_urls,
                is_learner: m.is_learner,
            }
        })
        .collect();
    Ok(Json(MemberListResponse {
        header: s.header(s.hub.current()),
        members,
    }))
}

pub async fn not_yet() -> ApiError {
    ApiError(KvError::internal(
        "membership changes are not implemented yet",
    ))
}

/// `{"health":"true"}` while a leader is known and the server is running; 503 otherwise.
pub async fn health(State(s): S) -> Response {
    let reason = if s.shutdown.is_cancelled() {
        Some("shutting down")
    } else if s.node.leader().is_none() {
        Some("no leader")
    } else {
        None
    };
    match reason {
        None => Json(serde_json::json!({"health": "true"})).into_response(),
        Some(r) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"health": "false", "reason": r})),
        )
            .into_response(),
    }
}
