//! The Kubernetes API client of kube-lite (the kvstore's client is the `kvclient` crate), and
//! the start-up every component binary shares.
//!
//! # Layout
//! - [`client`]: the HTTP layer to the API server (`Client`), JSON and `Status` errors.
//! - [`api`]: `Api<K>`, typed get/list/create/replace/patch/delete/watch for one kind.
//! - [`config`]: kubeconfig files.
//! - [`error`]: the client's error type.
//! - [`runtime`]: watcher → reflector → informer → queue → controller, and the Event recorder.
//! - [`ndjson`]: newline-delimited JSON framing of watch streams.
//! - [`process`]: a component's start-up — logging from `RUST_LOG`, the shutdown token
//!   (SIGINT/SIGTERM), one-line fatal errors — used by every `main.rs`.

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
