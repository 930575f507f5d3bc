# gpu-pod-exporter's container image: the DaemonSet in daemonset/ runs it.
#
#   docker build -t ghcr.io/gpu-pod-exporter/gpu-pod-exporter:0.1.0 .
#
# Multi-arch (amd64 and arm64: GH200/GB200 nodes are arm64), one image index, with BuildKit:
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     -t registry.example.com/gpu-pod-exporter:0.1.0 --push .
#
# The build stage runs on the builder's own platform and cross-compiles for the other (Debian's
# gcc-aarch64-linux-gnu or gcc-x86-64-linux-gnu as the linker), so no emulation is needed; only the
# final stage is per platform, and it only copies the binary. scripts/test.sh checks the same
# cross build (`cargo build --target aarch64-unknown-linux-gnu`) in CI.
#
# For AMD nodes that should also read ROCm SMI (energy, ECC, PCIe replays; see docs/metrics.md),
# build the `rocm-smi` feature; that image carries Debian's librocm_smi64 and needs it to start.
# It is built for amd64 only (the build stops with an error for another platform):
#
#   docker build --build-arg FEATURES=rocm-smi -t ghcr.io/gpu-pod-exporter/gpu-pod-exporter:0.1.0-rocm .
#
# For NVIDIA nodes whose GPUs predate Hopper (no GPM), an image that also carries DCGM's client
# library, libdcgm.so.4, so that the agent can read DCGM's profiling fields from a host engine
# (--dcgm.address; daemonset/components/nvidia-dcgm, docs/operations.md). The agent loads it at run
# time: the same binary, with or without it. The library comes from NVIDIA's CUDA repository for
# Debian 12 (package datacenter-gpu-manager-4-core, DCGM 4: it talks to a DCGM 4 host engine),
# fetched at build time, for the builder's own platform only (an arm64 image: build on arm64):
#
#   docker build --build-arg DCGM=4 -t ghcr.io/gpu-pod-exporter/gpu-pod-exporter:0.1.0-dcgm .
#
# (The repository's URL and package name are NVIDIA's documented ones; no registry or repository
# was reachable where this was written, so this variant's build is unchecked here.) It carries the
# client library only: `--dcgm.address=embedded` needs DCGM's modules, i.e. DCGM installed on the
# host and its library mounted from there.
#
# (ghcr.io/gpu-pod-exporter is a placeholder: push to your own registry and set the image in your
# kustomization or the chart's values.) scripts/check-deploy.sh checks that the port, entry point
# and runtime user here match the manifests, and that both base images are pinned by digest.
#
# Base images, pinned by the digest of their multi-arch index (tag kept for the reader). The
# digests are those that public Dockerfiles pin for these tags; they could not be pulled or
# checked where this file was written (no registry reachable there). Before relying on them, and to
# move to a newer base, read the current index digest and put it here:
#   docker buildx imagetools inspect rust:1-bookworm                       (the "Digest:" line)
#   docker buildx imagetools inspect gcr.io/distroless/cc-debian12:latest
# or override at build time: --build-arg RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:latest@sha256:…
ARG RUST_IMAGE=docker.io/library/rust:1-bookworm@sha256:93ce27a88655056a51dbdd8f5f2d7ddc071c7b0070fb288a37b5a285fc83971e
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:latest@sha256:e5d81ddde149641e2a9ba55be4545bc125c67de07508b03ba4c22e6eb0ded5aa

# Build: the workspace's release profile (thin LTO), exactly the versions in Cargo.lock. The proto
# for the kubelet client is compiled in Rust (protox), so no protoc is needed.
FROM --platform=$BUILDPLATFORM ${RUST_IMAGE} AS build
ARG TARGETARCH
ARG FEATURES=""
ARG DCGM=""
# The Rust target and the C cross toolchain for TARGETARCH (none when it is the builder's own).
RUN set -eu; \
    case "${TARGETARCH:-$(dpkg --print-architecture)}" in \
      amd64) target=x86_64-unknown-linux-gnu; gcc=x86-64-linux-gnu; deb=amd64 ;; \
      arm64) target=aarch64-unknown-linux-gnu; gcc=aarch64-linux-gnu; deb=arm64 ;; \
      *) echo "unsupported TARGETARCH ${TARGETARCH}: amd64 or arm64" >&2; exit 1 ;; \
    esac; \
    echo "$target" >/rust-target; \
    mkdir -p /out/lib; \
    apt-get update; \
    if [ "$deb" != "$(dpkg --print-architecture)" ]; then \
      if [ -n "$FEATURES" ]; then echo "FEATURES=$FEATURES is built for the builder's own platform only" >&2; exit 1; fi; \
      apt-get install -y --no-install-recommends "gcc-$gcc" "libc6-dev-$deb-cross"; \
      rustup target add "$target"; \
      env_target=$(echo "$target" | tr 'a-z-' 'A-Z_'); \
      echo "CARGO_TARGET_${env_target}_LINKER=$gcc-gcc" >/cross-env; \
    else \
      : >/cross-env; \
    fi; \
    if [ -n "$FEATURES" ]; then \
      apt-get install -y --no-install-recommends librocm-smi-dev libclang-dev; \
      cp -a /usr/lib/librocm_smi64.so.1* /out/lib/; \
    fi; \
    if [ -n "$DCGM" ]; then \
      if [ "$DCGM" != 4 ]; then echo "DCGM=$DCGM: only DCGM 4 (libdcgm.so.4) is supported" >&2; exit 1; fi; \
      case "$(dpkg --print-architecture)" in amd64) repo=x86_64 ;; arm64) repo=sbsa ;; esac; \
      if [ "$deb" != "$(dpkg --print-architecture)" ]; then echo "DCGM=$DCGM is built for the builder's own platform only" >&2; exit 1; fi; \
      curl -fsSLo /tmp/cuda-keyring.deb "https://developer.download.nvidia.com/compute/cuda/repos/debian12/$repo/cuda-keyring_1.1-1_all.deb"; \
      dpkg -i /tmp/cuda-keyring.deb; \
      apt-get update; \
      (cd /tmp && apt-get download datacenter-gpu-manager-4-core); \
      dpkg-deb -x /tmp/datacenter-gpu-manager-4-core_*.deb /tmp/dcgm; \
      cp -a /tmp/dcgm/usr/lib/*-linux-gnu/libdcgm.so.4* /out/lib/; \
      test -e /out/lib/libdcgm.so.4; \
    fi
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eu; target=$(cat /rust-target); if [ -s /cross-env ]; then export "$(cat /cross-env)"; fi; \
    cargo build --release --locked -p gpu-pod-exporter --features "$FEATURES" --target "$target" \
    && install -D -m 0755 "target/$target/release/gpu-pod-exporter" /out/gpu-pod-exporter

# Run: distroless cc (glibc and libgcc, no shell, no package manager), for the target platform.
# libnvidia-ml.so.1 is not in the image: on NVIDIA nodes the NVIDIA container runtime mounts the
# host driver's copy in (daemonset/agents/nvidia). `:latest` runs as root (uid 0), as the DaemonSet
# does: the kubelet's pod-resources socket is root-owned, and the pod drops every capability (see
# daemonset/base/daemonset.yaml for the full reasoning).
FROM ${RUNTIME_IMAGE}
COPY --from=build /out/gpu-pod-exporter /usr/local/bin/gpu-pod-exporter
# Empty unless FEATURES=rocm-smi (librocm_smi64.so.1; its libstdc++ is in distroless cc) or DCGM=4
# (libdcgm.so.4, found by --dcgm.library's default in /usr/lib).
COPY --from=build /out/lib/ /usr/lib/
EXPOSE 9445
ENTRYPOINT ["/usr/local/bin/gpu-pod-exporter"]
