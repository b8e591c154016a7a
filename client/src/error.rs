//! Errors of the Kubernetes API client.

use api::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server answered with a `Status` (NotFound, Conflict, Invalid, …).
    #[error("{}", .0.message)]
    Api(Box<Status>),
    /// The server could not be reached or the connection broke.
    #[error("failed to reach the API server: {0}")]
    Transport(String),
    /// Nothing listens at the server's address (`host:port`): the server is not running, or
    /// this is the wrong address. Told apart from [`Error::Transport`] so that a CLI can say so.
    #[error("the connection to the server {host} was refused")]
    ConnectionRefused { host: String },
    /// The server answered something that is not what was asked for.
    #[error("failed to decode the API server's response: {0}")]
    Decode(String),
}

impl Error {
    pub fn status(&self) -> Option<&Status> {
        match self {
            Error::Api(s) => Some(s),
            _ => None,
        }
    }

    pub fn code(&self) -> Option<i32> {
        self.status().map(|s| s.code)
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    pub fn is_conflict(&self) -> bool {
        self.code() == Some(409) && self.status().is_some_and(|s| s.reason == "Conflict")
    }

    pub fn is_already_exists(&self) -> bool {
        self.status().is_some_and(|s| s.reason == "AlreadyExists")
    }

    /// 410 Gone / Expired: the resourceVersion asked for was compacted.
    pub fn is_gone(&self) -> bool {
        self.code() == Some(410)
    }

    /// The server was not reached, or the connection broke: no answer from it at all.
    pub fn is_transport(&self) -> bool {
        matches!(self, Error::Transport(_) | Error::ConnectionRefused { .. })
    }
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        if e.is_decode() {
            Error::Decode(e.to_string())
        } else {
            Error::Transport(e.to_string())
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
