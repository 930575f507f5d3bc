#!/usr/bin/env bash
# Runs gpu-pod-exporter on a simulated GPU node (the mock NVML library and a fake node tree)
# whose load moves over time. No GPU needed. Extra arguments go to the exporter.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --locked
exec target/release/demo-node -- "$@"
