//! HTTP clients for kube-lite.
//!
//! # Layout
//! - [`kv`]: the kvstore client and its wire protocol ([`kv::proto`]).
//! - [`ndjson`]: newline-delimited JSON framing of watch streams.
pub mod kv;
pub mod ndjson;
