//! The API server's part of Services: ClusterIPs and node ports, allocated when a Service is
//! written and released when it is deleted — in the same kvstore transaction as the write.
//!
//! # Layout
//! - [`ranges`]: `--service-cluster-ip-range`, `--service-node-port-range`, and picking a free
//!   value (static and dynamic bands, as Kubernetes' allocators).
//! - [`claims`]: one kvstore key per IP and node port in use; [`crate::storage`] writes and
//!   removes them with the Service, on condition, so nothing is ever handed out twice.
//! - [`registry`]: the Service strategy's steps (`clusterIP` ↔ `clusterIPs`, keeping allocated
//!   values on re-apply, dropping fields a type change makes meaningless).
//! - [`alloc`]: what a Service gets (IP families, ClusterIP, node ports) and the 422s when it
//!   asks for something out of range or taken.

pub mod alloc;
pub mod claims;
pub mod ranges;
pub mod registry;

pub use alloc::{AllocError, Allocator};
pub use claims::Used;

use api::core::Service;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::strategy::name_of;

impl Allocator {
    /// [`Allocator::allocate`] on a Service's JSON, errors as `Status`es.
    pub fn allocate_value(&self, v: &mut Value, old: Option<&Value>, used: &Used) -> ApiResult<()> {
        let decode = |v: &Value| -> ApiResult<Service> {
            serde_json::from_value(v.clone())
                .map_err(|e| ApiError::bad_request(format!("error decoding Service: {e}")))
        };
        let mut svc = decode(v)?;
        let old = old.map(decode).transpose()?;
        match self.allocate(&mut svc, old.as_ref(), used, &mut rand::rng()) {
            Ok(()) => {
                *v = serde_json::to_value(&svc).map_err(|e| ApiError::internal(e.to_string()))?;
                Ok(())
            }
            Err(AllocError::Invalid(errs)) => Err(ApiError::invalid(
                &api::resource::SERVICE,
                name_of(v),
                &errs,
            )),
            Err(AllocError::Internal(m)) => Err(ApiError::internal(m)),
        }
    }
}
