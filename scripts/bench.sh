#!/usr/bin/env bash
# Builds the release agent and the mock, then prints CPU per sample cycle, RSS and /metrics
# latency for 8 GPUs x 64 processes (override: scripts/bench.sh --gpus 16 --processes 128).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --locked
exec python3 scripts/bench.py "$@"
