#!/usr/bin/env bash
# DCGM against GPM on a real Hopper (or newer) GPU, where both exist. Never run in CI (it needs a
# GPU and DCGM), and NOT YET RUN: no machine with DCGM was lent when it was written; the first run
# on one should record its output in docs/benchmarks.md ("DCGM").
#
# What it does, on a host with an NVIDIA driver, DCGM 4 (libdcgm.so.4, and nv-hostengine or its
# modules for an embedded engine) and PyTorch:
#   1. runs two agents side by side on the same GPUs: one as shipped (GPM on Hopper), one with
#      --dcgm.address and --dcgm.devices=all (DCGM's fields in place of GPM's);
#   2. loads GPU 0 with PyTorch in phases (idle, FP16 matmul on the tensor cores, FP32
#      element-wise, FP64 matmul), scrapes both every second, and prints each profiling series of
#      GPU 0 per phase from each source, with their difference;
#   3. probes DCGM's calls directly (ctypes): connect, the watch, one bulk read of every GPU's
#      eight fields; median wall time and mean CPU per call, as the mock's cost table needs;
#   4. prints each agent's CPU per cycle, from process_cpu_seconds_total.
# Exit status 0 when the sources agree within the tolerance on every phase (absolute 0.05, or 15 %
# of the larger), 1 when they do not, 2 when it cannot run here (said why).
#
# Usage: scripts/gpu-dcgm-check.sh
#   BIN: a prebuilt gpu-pod-exporter (a GPU host may have no Rust toolchain); without it, the
#   release binary is built with cargo.
#   DCGM_ADDRESS: the host engine (default: 127.0.0.1:5555 when one answers there, else embedded).
#   DCGM_LIBRARY (libdcgm.so.4), CHECK_PORT (19545; the second agent uses the next port),
#   CHECK_INTERVAL (1s), CHECK_PHASE_SECONDS (20), CHECK_PROBE_CALLS (15).
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${CHECK_PORT:-19545}"
INTERVAL="${CHECK_INTERVAL:-1s}"
LIBRARY="${DCGM_LIBRARY:-libdcgm.so.4}"
if [ -n "${BIN:-}" ]; then
  [ -x "$BIN" ] || { echo "BIN=$BIN is not an executable file" >&2; exit 2; }
else
  command -v cargo >/dev/null 2>&1 || { echo "no cargo here: pass a prebuilt binary as BIN=..." >&2; exit 2; }
  echo "==> building"
  cargo build --release -p gpu-pod-exporter --locked
  BIN=target/release/gpu-pod-exporter
fi
command -v python3 >/dev/null 2>&1 || { echo "SKIP: python3 is not installed" >&2; exit 2; }
python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null \
  || { echo "SKIP: PyTorch with CUDA is not available" >&2; exit 2; }
if [ -z "${DCGM_ADDRESS:-}" ]; then
  if (exec 3<>/dev/tcp/127.0.0.1/5555) 2>/dev/null; then DCGM_ADDRESS=127.0.0.1:5555; else DCGM_ADDRESS=embedded; fi
fi
echo "==> DCGM at $DCGM_ADDRESS, library $LIBRARY"

logs="$(mktemp -d)"
"$BIN" --web.listen-address="127.0.0.1:${PORT}" --collect.interval="$INTERVAL" --no-collector.amd \
  2>"$logs/gpm.log" &
gpm_pid=$!
"$BIN" --web.listen-address="127.0.0.1:$((PORT + 1))" --collect.interval="$INTERVAL" --no-collector.amd \
  --dcgm.address="$DCGM_ADDRESS" --dcgm.library="$LIBRARY" --dcgm.devices=all 2>"$logs/dcgm.log" &
dcgm_pid=$!
trap 'kill "$gpm_pid" "$dcgm_pid" 2>/dev/null || true; wait 2>/dev/null || true' EXIT

status=0
python3 scripts/gpu-dcgm-check.py --ports "$PORT" "$((PORT + 1))" --library "$LIBRARY" \
  --address "$DCGM_ADDRESS" --phase-seconds "${CHECK_PHASE_SECONDS:-20}" \
  --probe-calls "${CHECK_PROBE_CALLS:-15}" || status=$?
echo "==> agent logs"
echo "--- as shipped (GPM)"; cat "$logs/gpm.log"
echo "--- --dcgm.devices=all"; cat "$logs/dcgm.log"
exit "$status"
