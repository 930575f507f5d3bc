# gpu-pod-exporter's container image: the DaemonSet in daemonset/ runs it.
#
#   docker build -t ghcr.io/gpu-pod-exporter/gpu-pod-exporter:0.1.0 .
#
# For AMD nodes that should also read ROCm SMI (energy, ECC, PCIe replays; see docs/metrics.md),
# build the `rocm-smi` feature; that image carries Debian's librocm_smi64 and needs it to start:
#
#   docker build --build-arg FEATURES=rocm-smi -t ghcr.io/gpu-pod-exporter/gpu-pod-exporter:0.1.0-rocm .
#
# (ghcr.io/gpu-pod-exporter is a placeholder: push to your own registry and set the image in your
# kustomization.) scripts/check-deploy.sh checks that the port, entry point and runtime user here
# match the manifests.

# Build: the workspace's release profile (thin LTO), exactly the versions in Cargo.lock. The proto
# for the kubelet client is compiled in Rust (protox), so no protoc is needed.
FROM rust:1-bookworm AS build
ARG FEATURES=""
RUN mkdir -p /out/lib && if [ -n "$FEATURES" ]; then \
      apt-get update && apt-get install -y --no-install-recommends librocm-smi-dev libclang-dev \
      && cp -a /usr/lib/librocm_smi64.so.1* /out/lib/; \
    fi
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p gpu-pod-exporter --features "$FEATURES" \
    && install -D -m 0755 target/release/gpu-pod-exporter /out/gpu-pod-exporter

# Run: distroless cc (glibc and libgcc, no shell, no package manager). libnvidia-ml.so.1 is not in
# the image: on NVIDIA nodes the NVIDIA container runtime mounts the host driver's copy in
# (daemonset/overlays/nvidia). `:latest` runs as root (uid 0), as the DaemonSet does: the kubelet's
# pod-resources socket is root-owned, and the pod drops every capability (see
# daemonset/base/daemonset.yaml for the full reasoning).
FROM gcr.io/distroless/cc-debian12:latest
COPY --from=build /out/gpu-pod-exporter /usr/local/bin/gpu-pod-exporter
# Empty unless FEATURES=rocm-smi: librocm_smi64.so.1 (its libstdc++ is in distroless cc).
COPY --from=build /out/lib/ /usr/lib/
EXPOSE 9445
ENTRYPOINT ["/usr/local/bin/gpu-pod-exporter"]
