//! Errors, and how kubectl words them: `Error from server (NotFound): …`, `The Deployment "x" is
//! invalid: …`, `The connection to the server … was refused …`, `error: …`
//! (kubectl's `cmdutil.CheckErr`). [`render`] is pure so the wording is snapshot-tested.

use api::Status;

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server answered with a `Status` (NotFound, AlreadyExists, Invalid, …).
    #[error("{}", .0.message)]
    Api(Box<Status>),
    /// Nothing listens at the server's address.
    #[error(
        "The connection to the server {host} was refused - did you specify the right host or port?"
    )]
    ConnectionRefused { host: String },
    /// Any other failure to talk to the server (DNS, timeouts, a cut connection).
    #[error("Unable to connect to the server: {0}")]
    Unreachable(String),
    /// A problem found on this side: flags, files, manifests, unknown kinds.
    #[error("{0}")]
    Message(String),
    /// Several failures (apply, get and delete carry on past one object's error).
    #[error("{} errors", .0.len())]
    Multiple(Vec<Error>),
    /// The command already said what went wrong; only the exit code is left to give.
    #[error("exit status {0}")]
    Exit(i32),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn msg(m: impl Into<String>) -> Self {
        Error::Message(m.into())
    }

    pub fn status(&self) -> Option<&Status> {
        match self {
            Error::Api(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status().is_some_and(|s| s.code == 404)
    }

    /// 409 Conflict (an optimistic-concurrency failure, not AlreadyExists).
    pub fn is_conflict(&self) -> bool {
        self.status().is_some_and(|s| s.reason == "Conflict")
    }

    /// The server could not be reached at all: no point trying the next object.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            Error::ConnectionRefused { .. } | Error::Unreachable(_)
        )
    }

    /// kubectl's `AddSourceToErr`: `error when creating "blog.yaml": <message>`.
    pub fn with_source(self, verb: &str, source: &str) -> Self {
        if source.is_empty() {
            return self;
        }
        match self {
            Error::Api(mut s) => {
                s.message = format!("error when {verb} {source:?}: {}", s.message);
                Error::Api(s)
            }
            Error::Message(m) => Error::Message(format!("error when {verb} {source:?}: {m}")),
            other => other,
        }
    }

    /// The process exit code kubectl uses for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Exit(code) => *code,
            _ => 1,
        }
    }

    /// Flatten nested lists of errors, dropping none.
    fn flatten(self) -> Vec<Error> {
        match self {
            Error::Multiple(v) => v.into_iter().flat_map(Error::flatten).collect(),
            e => vec![e],
        }
    }
}

impl From<client::Error> for Error {
    fn from(e: client::Error) -> Self {
        match e {
            client::Error::Api(s) => Error::Api(s),
            client::Error::ConnectionRefused { host } => Error::ConnectionRefused { host },
            client::Error::Transport(m) => Error::Unreachable(m),
            client::Error::Decode(m) => {
                Error::Message(format!("failed to decode the API server's response: {m}"))
            }
        }
    }
}

impl From<client::config::ConfigError> for Error {
    fn from(e: client::config::ConfigError) -> Self {
        Error::Message(e.to_string())
    }
}

/// Several errors as one, or Ok when there are none.
pub fn collect(mut errors: Vec<Error>) -> Result<()> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Multiple(errors)),
    }
}

/// What kubectl prints on stderr for an error, ending with a newline.
pub fn render(err: &Error) -> String {
    let mut s = match err {
        Error::Multiple(errs) if errs.len() != 1 => {
            // kubectl prints each error of an aggregate on its own line, without `error: `.
            let flat: Vec<Error> = errs
                .iter()
                .map(clone_shallow)
                .flat_map(Error::flatten)
                .collect();
            flat.iter()
                .filter(|e| !matches!(e, Error::Exit(_)))
                .map(|e| message_for(e) + "\n")
                .collect()
        }
        Error::Multiple(errs) => return errs.first().map(render).unwrap_or_default(),
        Error::Exit(_) => return String::new(),
        Error::Api(s) if s.reason == "Invalid" => invalid(s),
        Error::Message(m) if m.starts_with("error: ") => m.clone(),
        Error::Message(m) => format!("error: {m}"),
        other => message_for(other),
    };
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// kubectl's `StandardErrorMessage`, falling back to the bare message.
fn message_for(err: &Error) -> String {
    match err {
        Error::Api(s) if s.reason == "Invalid" => invalid(s).trim_end().to_string(),
        Error::Api(s) if s.reason == "Unauthorized" => {
            format!("error: You must be logged in to the server ({})", s.message)
        }
        Error::Api(s) if !s.reason.is_empty() => {
            format!("Error from server ({}): {}", s.reason, s.message)
        }
        Error::Api(s) => format!("Error from server: {}", s.message),
        other => other.to_string(),
    }
}

/// `The Deployment "Bad_Name" is invalid: <cause>`, or one `* field: message` line per cause.
fn invalid(s: &Status) -> String {
    let Some(details) = &s.details else {
        return if s.message.is_empty() {
            "The request is invalid".to_string()
        } else {
            format!("The request is invalid: {}", s.message)
        };
    };
    let mut head = "The request is invalid".to_string();
    if !details.kind.is_empty() || !details.name.is_empty() {
        head = format!("The {} {:?} is invalid", details.kind, details.name);
    } else if !s.message.is_empty() && details.causes.is_empty() {
        head = format!("{head}: {}", s.message);
    }
    let mut causes: Vec<String> = Vec::new();
    for c in &details.causes {
        let line = format!("{}: {}", c.field, c.message);
        if !causes.contains(&line) {
            causes.push(line);
        }
    }
    match causes.len() {
        0 => head,
        1 => format!("{head}: {}\n", causes[0]),
        _ => {
            let mut out = format!("{head}: \n");
            for c in causes {
                out.push_str(&format!("* {c}\n"));
            }
            out
        }
    }
}

/// Errors are not `Clone` (they may come from I/O); rendering only needs their text.
fn clone_shallow(e: &Error) -> Error {
    match e {
        Error::Api(s) => Error::Api(s.clone()),
        Error::ConnectionRefused { host } => Error::ConnectionRefused { host: host.clone() },
        Error::Unreachable(m) => Error::Unreachable(m.clone()),
        Error::Message(m) => Error::Message(m.clone()),
        Error::Multiple(v) => Error::Multiple(v.iter().map(clone_shallow).collect()),
        Error::Exit(c) => Error::Exit(*c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::meta::{StatusCause, StatusDetails};

    fn status(code: u16, reason: &str, message: &str) -> Error {
        Error::Api(Box::new(Status::failure(code, reason, message)))
    }

    fn invalid_status(causes: &[(&str, &str)]) -> Error {
        let mut s = Status::failure(
            422,
            "Invalid",
            "Deployment.apps \"Bad_Name\" is invalid: […]",
        );
        s.details = Some(StatusDetails {
            name: "Bad_Name".into(),
            group: "apps".into(),
            kind: "Deployment".into(),
            causes: causes
                .iter()
                .map(|(f, m)| StatusCause {
                    reason: "FieldValueInvalid".into(),
                    message: m.to_string(),
                    field: f.to_string(),
                })
                .collect(),
            ..Default::default()
        });
        Error::Api(Box::new(s))
    }

    #[test]
    fn not_found() {
        insta::assert_snapshot!(render(&status(
            404,
            "NotFound",
            "deployments.apps \"web\" not found"
        )));
    }

    #[test]
    fn already_exists_with_source() {
        let e = status(
            409,
            "AlreadyExists",
            "configmaps \"blog-config\" already exists",
        )
        .with_source("creating", "blog.yaml");
        insta::assert_snapshot!(render(&e));
    }

    #[test]
    fn invalid_with_one_cause() {
        let e = invalid_status(&[(
            "metadata.name",
            "Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'",
        )]);
        insta::assert_snapshot!(render(&e));
    }

    #[test]
    fn invalid_with_causes() {
        let e = invalid_status(&[
            (
                "metadata.name",
                "Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'",
            ),
            (
                "spec.replicas",
                "Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                "spec.replicas",
                "Invalid value: -1: must be greater than or equal to 0",
            ),
        ]);
        insta::assert_snapshot!(render(&e));
    }

    #[test]
    fn invalid_without_details() {
        let e = status(422, "Invalid", "the JSON patch could not be applied");
        assert_eq!(
            render(&e),
            "The request is invalid: the JSON patch could not be applied\n"
        );
    }

    #[test]
    fn connection_refused() {
        insta::assert_snapshot!(render(&Error::ConnectionRefused {
            host: "127.0.0.1:8080".into()
        }));
    }

    #[test]
    fn client_side_messages_get_the_error_prefix() {
        assert_eq!(
            render(&Error::msg(
                "error parsing blog.yaml: did not find expected key"
            )),
            "error: error parsing blog.yaml: did not find expected key\n"
        );
        assert_eq!(
            render(&Error::msg("error: already prefixed")),
            "error: already prefixed\n"
        );
    }

    #[test]
    fn several_errors_one_per_line() {
        let e = Error::Multiple(vec![
            Error::msg(
                "resource mapping not found for name: \"w\" namespace: \"\" from \"x.yaml\": no matches for kind \"Widget\" in version \"v1\"",
            ),
            status(404, "NotFound", "pods \"a\" not found"),
        ]);
        insta::assert_snapshot!(render(&e));
        // An aggregate of one prints like the error itself.
        let one = Error::Multiple(vec![status(404, "NotFound", "pods \"a\" not found")]);
        assert_eq!(
            render(&one),
            "Error from server (NotFound): pods \"a\" not found\n"
        );
        assert!(collect(vec![]).is_ok());
    }
}
