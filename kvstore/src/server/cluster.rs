//! Status, membership (list, add, promote, remove) and health.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use kvclient::proto::{
    ErrorCode, Member, MemberAddRequest, MemberAddResponse, MemberListResponse,
    MemberPromoteRequest, MemberRemoveRequest, StatusResponse,
};
use serde::Deserialize;

use super::{ApiError, AppState, Body, S};
use crate::command::Command;
use crate::error::KvError;
use crate::raft::{self, MembershipError};

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
    // Linearizable, like etcd 3.5's default: a follower hears of commits late (`raft/pacing`),
    // and a member added a moment ago through another member is listed with its name.
    super::kv::linearize(&s).await?;
    Ok(Json(MemberListResponse {
        header: s.header(s.hub.current()),
        members: members(&s)?,
    }))
}

/// The Raft membership with each member's published name and client URLs.
fn members(s: &AppState) -> Result<Vec<Member>, ApiError> {
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
    Ok(members)
}

/// `member/add`: the new member's id is derived from its name (as every member derives its own);
/// it joins as a learner and, unless `isLearner`, is promoted to voter at once (etcd's
/// behaviour: the quorum grows before the member has started).
pub async fn member_add(
    State(s): S,
    headers: HeaderMap,
    Body(req): Body<MemberAddRequest>,
) -> Result<Response, ApiError> {
    let name = req.name.trim();
    if name.is_empty() {
        return Err(bad(
            "member name is required (the member ID is derived from it)",
        ));
    }
    let peer_url = match req.peer_urls.as_slice() {
        [one] => check_url("peerURLs", one)?,
        [] => return Err(bad("peerURLs: one peer URL is required")),
        _ => return Err(bad("peerURLs: only one peer URL per member is supported")),
    };
    let client_urls = req
        .client_urls
        .iter()
        .map(|u| check_url("clientURLs", u))
        .collect::<Result<Vec<_>, _>>()?;
    if !s.node.is_leader() {
        return s
            .forward(&headers, "/v3/cluster/member/add", &req, s.node.leader())
            .await;
    }
    let id = raft::node_id(name);
    let st = s.node.status();
    if st.members.iter().any(|m| m.id == id) {
        return Err(bad(format!(
            "etcdserver: member ID already exists: a member named {name:?} (ID {id:x}) is in the cluster"
        )));
    }
    if st
        .members
        .iter()
        .any(|m| m.peer_url.trim_end_matches('/') == peer_url)
    {
        return Err(bad(format!(
            "etcdserver: Peer URLs already exists: {peer_url}"
        )));
    }
    s.node
        .add_learner(id, &peer_url)
        .await
        .map_err(membership)?;
    tracing::info!(member = name, id = format!("{id:x}"), %peer_url, "added a learner");
    if !req.is_learner {
        s.node.promote(id).await.map_err(membership)?;
        tracing::info!(member = name, "promoted to voter");
    }
    // Record its name and client URLs now, as etcd lists an added member's attributes.
    let publish = Command::PublishMember {
        id,
        name: name.to_string(),
        client_urls: client_urls.clone(),
    };
    if let Err(e) = s.propose(publish).await {
        tracing::warn!(
            member = name,
            "recording the new member's attributes: {:?}",
            e.0
        );
    }
    let members = members(&s)?;
    let member = members
        .iter()
        .find(|m| m.id == id)
        .cloned()
        .unwrap_or(Member {
            id,
            name: name.to_string(),
            peer_urls: vec![peer_url],
            client_urls,
            is_learner: req.is_learner,
        });
    Ok(Json(MemberAddResponse {
        header: s.header(s.hub.current()),
        member,
        members,
    })
    .into_response())
}

/// `member/promote`: a learner that has most of the log becomes a voter.
pub async fn member_promote(
    State(s): S,
    headers: HeaderMap,
    Body(req): Body<MemberPromoteRequest>,
) -> Result<Response, ApiError> {
    if !s.node.is_leader() {
        return s
            .forward(
                &headers,
                "/v3/cluster/member/promote",
                &req,
                s.node.leader(),
            )
            .await;
    }
    let st = s.node.status();
    let Some(m) = st.members.iter().find(|m| m.id == req.id) else {
        return Err(not_found(req.id));
    };
    if !m.is_learner {
        return Err(bad("etcdserver: can only promote a learner member"));
    }
    if !s.node.learner_in_sync(req.id) {
        return Err(bad(
            "etcdserver: can only promote a learner member which is in sync with leader",
        ));
    }
    s.node.promote(req.id).await.map_err(membership)?;
    tracing::info!(id = format!("{:x}", req.id), "promoted a learner to voter");
    list_response(&s)
}

/// `member/remove`: a voter or learner leaves the membership (a removed leader steps down
/// once the change is committed).
pub async fn member_remove(
    State(s): S,
    headers: HeaderMap,
    Body(req): Body<MemberRemoveRequest>,
) -> Result<Response, ApiError> {
    if !s.node.is_leader() {
        return s
            .forward(&headers, "/v3/cluster/member/remove", &req, s.node.leader())
            .await;
    }
    if !s.node.status().members.iter().any(|m| m.id == req.id) {
        return Err(not_found(req.id));
    }
    s.node.remove(req.id).await.map_err(membership)?;
    tracing::info!(id = format!("{:x}", req.id), "removed a member");
    list_response(&s)
}

fn list_response(s: &AppState) -> Result<Response, ApiError> {
    Ok(Json(MemberListResponse {
        header: s.header(s.hub.current()),
        members: members(s)?,
    })
    .into_response())
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError(KvError::bad_request(m))
}

fn not_found(id: u64) -> ApiError {
    ApiError(KvError::new(
        ErrorCode::MemberNotFound,
        format!("etcdserver: member not found (ID {id:x})"),
    ))
}

fn membership(e: MembershipError) -> ApiError {
    ApiError(match e {
        MembershipError::NotLeader { .. } => KvError::unavailable("etcdserver: leader changed"),
        MembershipError::Rejected(m) => KvError::bad_request(m),
        MembershipError::Unavailable(m) => KvError::unavailable(m),
    })
}

/// An `http://host:port` URL, normalized without a trailing slash.
fn check_url(what: &str, u: &str) -> Result<String, ApiError> {
    let parsed = url::Url::parse(u.trim()).map_err(|e| bad(format!("{what}: {u:?}: {e}")))?;
    if parsed.scheme() != "http"
        || parsed.host_str().is_none_or(str::is_empty)
        || parsed.port().is_none()
        || !(parsed.path().is_empty() || parsed.path() == "/")
    {
        return Err(bad(format!("{what}: {u:?} is not an http://host:port URL")));
    }
    Ok(u.trim().trim_end_matches('/').to_string())
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
