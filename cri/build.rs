//! Generates the CRI v1 client from the vendored `proto/runtime/v1/api.proto` (Kubernetes'
//! `k8s.io/cri-api`, Apache-2.0, see `proto/LICENSE`). protox compiles the proto in Rust, so
//! no `protoc` is needed; only the client half is generated.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/runtime/v1/api.proto");
    let fds = protox::compile(["runtime/v1/api.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .compile_fds(fds)?;
    Ok(())
}
