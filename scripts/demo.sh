#!/usr/bin/env bash
# Runs gpu-pod-exporter on a simulated GPU node (the mock NVML library and a fake node tree)
# whose load moves over time. No GPU needed. Extra arguments go to the exporter.
set -euo pipefail
cd "$(dirname "$0")/.."
# `./scripts/demo.sh --amd`: an AMD node instead (amdgpu sysfs, DRM fdinfo and KFD files).
cargo build --release --workspace --locked
if [[ "${1:-}" == "--amd" ]]; then
    shift
    exec target/release/demo-node --amd -- "$@"
fi
exec target/release/demo-node -- "$@"
