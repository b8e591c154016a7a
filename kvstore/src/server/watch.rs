//! `/v3/watch`: a chunked stream of newline-delimited `WatchResponse`s; `/v3/watch/progress`.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::Response;
use kvclient::proto::{WatchCreateRequest, WatchProgressRequest, WatchProgressResponse};
use tokio_stream::wrappers::ReceiverStream;

use super::{ApiError, Body, S};
use crate::error::KvError;

pub async fn watch(State(s): S, Body(req): Body<WatchCreateRequest>) -> Result<Response, ApiError> {
    let rx = crate::watch::start(
        s.hub.clone(),
        s.store.clone(),
        s.ident.clone(),
        req,
        s.shutdown.clone(),
    )?;
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(axum::body::Body::from_stream(ReceiverStream::new(rx)))
        .map_err(|e| ApiError(KvError::internal(e.to_string())))
}

pub async fn progress(
    State(s): S,
    Body(req): Body<WatchProgressRequest>,
) -> Result<Json<WatchProgressResponse>, ApiError> {
    if s.hub.request_progress(req.watch_id) {
        Ok(Json(WatchProgressResponse {
            header: s.header(s.hub.current()),
        }))
    } else {
        Err(ApiError(KvError::bad_request(format!(
            "no watch with id {} on this member",
            req.watch_id
        ))))
    }
}
