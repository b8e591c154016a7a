//! The store's request errors: an etcd-style message plus the wire [`ErrorCode`] and HTTP status.

use kvclient::proto::{ErrorBody, ErrorCode};
use serde::{Deserialize, Serialize};

/// A request failed; becomes an [`ErrorBody`] with the status of its code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct KvError {
    pub code: ErrorCode,
    pub message: String,
    /// Set for [`ErrorCode::Compacted`]: the store's compact revision.
    #[serde(default)]
    pub compact_revision: i64,
}

impl KvError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        KvError {
            code,
            message: message.into(),
            compact_revision: 0,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::TooLarge, message)
    }

    pub fn compacted(compact_revision: i64) -> Self {
        KvError {
            code: ErrorCode::Compacted,
            message: format!(
                "mvcc: required revision has been compacted (compact revision {compact_revision})"
            ),
            compact_revision,
        }
    }

    pub fn future_revision(requested: i64, current: i64) -> Self {
        Self::new(
            ErrorCode::FutureRevision,
            format!(
                "mvcc: required revision is a future revision (requested {requested}, current {current})"
            ),
        )
    }

    pub fn lease_not_found(id: i64) -> Self {
        Self::new(
            ErrorCode::LeaseNotFound,
            format!("requested lease not found (ID {id})"),
        )
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// The outcome of a write is unknown (it may still be applied).
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Timeout, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// The HTTP status of this error's code.
    pub fn status(&self) -> u16 {
        match self.code {
            ErrorCode::BadRequest | ErrorCode::FutureRevision => 400,
            ErrorCode::TooLarge => 413,
            ErrorCode::Compacted => 410,
            ErrorCode::LeaseNotFound | ErrorCode::MemberNotFound => 404,
            ErrorCode::Unavailable => 503,
            ErrorCode::Timeout => 504,
            ErrorCode::Internal => 500,
        }
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.message.clone(),
            code: self.code,
            compact_revision: self.compact_revision,
        }
    }
}

impl From<redb::Error> for KvError {
    fn from(e: redb::Error) -> Self {
        KvError::internal(format!("storage: {e}"))
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for KvError {
            fn from(e: $t) -> Self {
                KvError::from(redb::Error::from(e))
            }
        }
    )*};
}
from_redb!(
    redb::StorageError,
    redb::TransactionError,
    redb::TableError,
    redb::CommitError
);
