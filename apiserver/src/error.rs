//! API errors, rendered as Kubernetes `Status` objects with Kubernetes' reasons and messages.

use api::ResourceInfo;
use api::meta::{Status, StatusCause, StatusDetails};
use api::validation::{FieldError, invalid_message};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kvclient::KvError;

/// An error the API returns; always becomes a `Status` body. The second field marks a write
/// that lost a race for a ClusterIP or node port ([`ApiError::claim_taken`]).
#[derive(Debug)]
pub struct ApiError(pub Box<Status>, Option<String>);

pub type ApiResult<T> = Result<T, ApiError>;

fn details(info: &ResourceInfo, name: &str) -> StatusDetails {
    StatusDetails {
        name: name.to_string(),
        group: info.group.to_string(),
        kind: info.plural.to_string(),
        ..Default::default()
    }
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError(Box::new(Status::failure(code, reason, message)), None)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn not_found(info: &ResourceInfo, name: &str) -> Self {
        let mut s = Status::failure(
            404,
            "NotFound",
            format!("{} {:?} not found", info.qualified_plural(), name),
        );
        s.details = Some(details(info, name));
        ApiError(Box::new(s), None)
    }

    /// A URL that names no resource.
    pub fn path_not_found(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    pub fn already_exists(info: &ResourceInfo, name: &str) -> Self {
        let mut s = Status::failure(
            409,
            "AlreadyExists",
            format!("{} {:?} already exists", info.qualified_plural(), name),
        );
        s.details = Some(details(info, name));
        ApiError(Box::new(s), None)
    }

    /// Optimistic concurrency failure.
    pub fn conflict(info: &ResourceInfo, name: &str) -> Self {
        Self::conflict_with(
            info,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn conflict_with(info: &ResourceInfo, name: &str, why: &str) -> Self {
        let mut s = Status::failure(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {:?}: {why}",
                info.qualified_plural(),
                name
            ),
        );
        s.details = Some(details(info, name));
        ApiError(Box::new(s), None)
    }

    /// 422 with one cause per field error.
    pub fn invalid(info: &ResourceInfo, name: &str, errs: &[FieldError]) -> Self {
        let mut s = Status::failure(422, "Invalid", invalid_message(info, name, errs));
        let mut d = details(info, name);
        d.kind = info.kind.to_string();
        d.causes = errs
            .iter()
            .map(|e| StatusCause {
                reason: e.type_.cause_reason().to_string(),
                message: e.cause_message(),
                field: e.field.clone(),
            })
            .collect();
        s.details = Some(d);
        ApiError(Box::new(s), None)
    }

    pub fn method_not_allowed(verb: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({verb})"),
        )
    }

    pub fn forbidden(info: &ResourceInfo, name: &str, why: &str) -> Self {
        let mut s = Status::failure(
            403,
            "Forbidden",
            format!("{} {:?} is forbidden: {why}", info.qualified_plural(), name),
        );
        s.details = Some(details(info, name));
        ApiError(Box::new(s), None)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "RequestEntityTooLarge", message)
    }

    pub fn unsupported_media_type(ct: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {ct:?})"
            ),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    pub fn status(&self) -> &Status {
        &self.0
    }

    /// A write failed because an allocation record it needed (`key`, see
    /// `services::claims`) was written by someone else first: the writer picks again.
    pub fn claim_taken(key: &str) -> Self {
        let mut e = Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled: {key} was allocated concurrently; please try again"
            ),
        );
        e.1 = Some(key.to_string());
        e
    }

    /// The allocation record a write lost, if that is why it failed.
    pub fn taken_claim(&self) -> Option<&str> {
        self.1.as_deref()
    }
}

impl From<KvError> for ApiError {
    fn from(e: KvError) -> Self {
        match &e {
            KvError::Server(body, _) if body.code == kvclient::proto::ErrorCode::Compacted => {
                ApiError::gone(format!(
                    "The resourceVersion for the provided list is too old: {}",
                    body.error
                ))
            }
            KvError::Unreachable(_) => {
                ApiError::unavailable(format!("storage is unavailable: {e}"))
            }
            _ => ApiError::internal(e.to_string()),
        }
    }
}

pub fn json_response(code: StatusCode, body: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut r = (code, bytes).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e) => ApiError::internal(e.to_string()).into_response(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code =
            StatusCode::from_u16(self.0.code as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(code, &*self.0)
    }
}
