//! HTTP clients for kube-lite.
//!
//! # Layout
//! - [`client`]: the HTTP layer to the API server (`Client`), JSON and `Status` errors.
//! - [`api`]: `Api<K>`, typed get/list/create/replace/patch/delete/watch for one kind.
//! - [`config`]: kubeconfig files.
//! - [`error`]: the client's error type.
//! - [`runtime`]: watcher → reflector → informer → queue → controller, and the Event recorder.
//! - [`ndjson`]: newline-delimited JSON framing of watch streams.

pub mod api;
pub mod client;
pub mod config;
pub mod error;
pub mod ndjson;
pub mod process;
pub mod runtime;

pub use crate::api::{Api, ListParams, Patch};
pub use crate::client::Client;
pub use crate::error::{Error, Result};
