//! Generates the kubelet pod-resources v1 client and server from `proto/`, with `protox`
//! parsing the proto in Rust so that building needs no `protoc` binary.

const PROTO: &str = "proto/podresources/v1/api.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO}");
    println!("cargo:rerun-if-changed=build.rs");
    let fds = protox::compile([PROTO], ["proto/podresources/v1"])?;
    // The server half is small and is what the fake kubelet in tests/ serves.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        .compile_fds(fds)?;
    Ok(())
}
