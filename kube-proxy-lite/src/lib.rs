//! kube-proxy-lite: the node's service proxy, as kube-proxy. It watches Services and
//! EndpointSlices and makes each Service's virtual IP (and node port) lead to its ready
//! endpoints: with nftables rules where it has the privileges, with a small user-space proxy
//! on loopback virtual IPs where it has not (a laptop without root).
//!
//! # Layout
//! - [`model`]: what is programmed — Service ports and their endpoints.
//! - [`nft`]: the nftables back end (one table, replaced atomically).
//! - [`userspace`]: the back end without privileges: listeners on loopback virtual IPs.

pub mod model;
pub mod nft;
pub mod userspace;
