//! cri: how kube-lite talks to a container runtime through the Kubernetes Container Runtime
//! Interface — the gRPC API the real kubelet uses with containerd and CRI-O.
//!
//! # Layout
//! - [`v1`]: the CRI v1 types and clients, generated at build time from the vendored
//!   `proto/runtime/v1/api.proto` (k8s.io/cri-api, Apache-2.0).
//! - [`Client`]: one connection to a runtime's socket (`unix:///run/containerd/containerd.sock`)
//!   with both services (RuntimeService, ImageService) and a deadline on every call, so a
//!   runtime that hangs never wedges the caller. It reconnects by itself when the runtime
//!   restarts.

use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;

pub mod cni;
pub mod containerd;
pub mod image;
use tonic::transport::{Channel, Endpoint};

/// CRI v1 (`runtime.v1`), generated.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("runtime.v1");
}

pub use tonic::{Code, Status};

use v1::image_service_client::ImageServiceClient;
use v1::runtime_service_client::RuntimeServiceClient;

/// The default deadline of a call (the kubelet's `--runtime-request-timeout` is 2 min; most
/// calls here are quick, so a hung runtime is noticed sooner).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A runtime endpoint as the kubelet's `--container-runtime-endpoint` takes it: `unix:///path`
/// or an absolute socket path.
pub fn socket_path(endpoint: &str) -> Result<PathBuf, String> {
    let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    if !path.starts_with('/') {
        return Err(format!(
            "invalid container runtime endpoint {endpoint:?}: expected unix:///path/to/socket"
        ));
    }
    Ok(PathBuf::from(path))
}

/// A connection to a CRI runtime. Cheap to clone (one HTTP/2 connection underneath).
#[derive(Clone, Debug)]
pub struct Client {
    pub endpoint: String,
    runtime: RuntimeServiceClient<Channel>,
    image: ImageServiceClient<Channel>,
    timeout: Duration,
}

impl Client {
    /// A client of the runtime at `endpoint`. Nothing is dialled until the first call, and a
    /// lost connection is dialled again on the next one.
    pub fn new(endpoint: &str) -> Result<Client, String> {
        let path = socket_path(endpoint)?;
        // The URI is a placeholder: the connector below dials the socket.
        let channel = Endpoint::from_static("http://cri.sock")
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector_lazy(tower::service_fn(move |_| {
                let path = path.clone();
                async move {
                    let s = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(s))
                }
            }));
        Ok(Client {
            endpoint: endpoint.to_string(),
            runtime: RuntimeServiceClient::new(channel.clone()).max_decoding_message_size(64 << 20),
            image: ImageServiceClient::new(channel).max_decoding_message_size(64 << 20),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The same connection with another default deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// The RuntimeService, for a call with the default deadline: `c.runtime().version(c.req(..))`.
    pub fn runtime(&self) -> RuntimeServiceClient<Channel> {
        self.runtime.clone()
    }

    /// The ImageService.
    pub fn image(&self) -> ImageServiceClient<Channel> {
        self.image.clone()
    }

    /// A request with the default deadline.
    pub fn req<T>(&self, msg: T) -> tonic::Request<T> {
        self.req_within(msg, self.timeout)
    }

    /// A request with its own deadline (an image pull, a stop with a grace period).
    pub fn req_within<T>(&self, msg: T, timeout: Duration) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.set_timeout(timeout);
        r
    }

    /// `Version`: the runtime's name and version, e.g. ("containerd", "1.6.20").
    pub async fn version(&self) -> Result<v1::VersionResponse, Status> {
        let r = self
            .runtime()
            .version(self.req(v1::VersionRequest {
                version: "v1".into(),
            }))
            .await?;
        Ok(r.into_inner())
    }
}

/// A CRI error in one line, as the kubelet words them (`rpc error: code = NotFound desc = …`).
pub fn describe(s: &Status) -> String {
    format!("rpc error: code = {:?} desc = {}", s.code(), s.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            socket_path("unix:///run/containerd/containerd.sock").unwrap(),
            PathBuf::from("/run/containerd/containerd.sock")
        );
        assert_eq!(
            socket_path("/tmp/c.sock").unwrap(),
            PathBuf::from("/tmp/c.sock")
        );
        assert!(socket_path("tcp://1.2.3.4:1").is_err());
        assert!(socket_path("relative.sock").is_err());
    }

    #[tokio::test]
    async fn a_runtime_that_never_answers_is_an_error_within_the_deadline() {
        // Accepts connections and reads, but never answers a call.
        let dir = std::env::temp_dir().join(format!("kl-cri-hang-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let listener = tokio::net::UnixListener::bind(&dir).unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let c = Client::new(&format!("unix://{}", dir.display()))
            .unwrap()
            .with_timeout(Duration::from_millis(500));
        let started = std::time::Instant::now();
        let e = c.version().await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert!(
            matches!(
                e.code(),
                Code::DeadlineExceeded | Code::Cancelled | Code::Unavailable
            ),
            "{}",
            describe(&e)
        );
        let _ = std::fs::remove_file(&dir);
    }

    #[tokio::test]
    async fn a_missing_socket_is_an_error_not_a_hang() {
        let c = Client::new("unix:///nonexistent/kube-lite-test.sock")
            .unwrap()
            .with_timeout(Duration::from_secs(2));
        let e = c.version().await.unwrap_err();
        assert_eq!(e.code(), Code::Unavailable, "{}", describe(&e));
    }
}
