#!/usr/bin/env bash
# Smoke test on a host with a real NVIDIA GPU and driver: builds the agent, runs it on the
# system's NVML, scrapes it, and checks that every device series exists with plausible values.
# Then an MPS check (attribution rule 7, scripts/gpu-smoke-mps.py): a private MPS control daemon
# on one GPU, two small PyTorch clients made to look like two pods, and the agent's answer.
# Prints what it saw. Exit status 0 only if every check passed; a check whose tools are missing
# says SKIP and why, and does not fail. Never run in CI (it needs a GPU).
#
# Usage: scripts/gpu-smoke.sh [extra exporter flags...]
#   BIN: a prebuilt gpu-pod-exporter to test (a GPU host may have no Rust toolchain); without
#   it, the release binary is built with cargo.
#   SMOKE_PORT (19445; the MPS check uses the next port), SMOKE_INTERVAL (1s),
#   SMOKE_MPS=0 to leave the MPS check out, SMOKE_MPS_GPU (0: the GPU's NVML index).
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${SMOKE_PORT:-19445}"
INTERVAL="${SMOKE_INTERVAL:-1s}"
if [ -n "${BIN:-}" ]; then
  if [ ! -x "$BIN" ]; then
    echo "BIN=$BIN is not an executable file" >&2
    exit 2
  fi
  echo "==> using the prebuilt $BIN"
else
  if ! command -v cargo >/dev/null 2>&1; then
    echo "no cargo on this host: pass a prebuilt binary as BIN=/path/to/gpu-pod-exporter" >&2
    exit 2
  fi
  echo "==> building"
  cargo build --release -p gpu-pod-exporter --locked
  BIN=target/release/gpu-pod-exporter
fi
log="$(mktemp)"
"$BIN" --web.listen-address="127.0.0.1:${PORT}" \
  --collect.interval="${INTERVAL}" --no-collector.amd "$@" 2>"$log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT

echo "==> waiting for /readyz"
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:${PORT}/readyz" >/dev/null 2>&1; then break; fi
  sleep 0.2
done
# GPM and per-process utilization need two samples: let three intervals pass. (Health series,
# on --collect.health-interval, are read on the first cycle and kept.)
sleep 4
scrape="$(mktemp)"
curl -fsS "http://127.0.0.1:${PORT}/metrics" >"$scrape"
echo "==> agent log"
cat "$log"

status=0
python3 - "$scrape" <<'PY' || status=1
import re, sys
text = open(sys.argv[1]).read()
series = {}
for line in text.splitlines():
    if not line or line.startswith('#'):
        continue
    m = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)', line)
    if not m:
        continue
    labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ''))
    series.setdefault(m.group(1), []).append((labels, float(m.group(4))))

def val(name, gpu):
    for labels, v in series.get(name, []):
        if labels.get('gpu') == gpu:
            return v
    return None

failures = []
def check(ok, what):
    print(f"  [{'ok' if ok else 'FAIL'}] {what}")
    if not ok:
        failures.append(what)

infos = series.get('gpu_info', [])
check(len(infos) > 0, f"gpu_info present for {len(infos)} device(s)")
succ = [v for l, v in series.get('gpu_pod_exporter_collector_success', []) if l.get('collector') == 'nvidia']
check(succ == [1.0], f"collector_success{{collector=nvidia}} = {succ}")
for labels, _ in infos:
    g = labels['gpu']
    print(f"GPU {g}: {labels.get('model')} uuid={labels.get('uuid')} pci={labels.get('pci_bus_id')} driver={labels.get('driver_version')}")
    check(labels.get('uuid', '').startswith(('GPU-', 'MIG-')), "non-empty NVIDIA UUID")
    check(val('gpu_up', g) == 1.0, f"gpu_up = {val('gpu_up', g)}")
    for name in ['gpu_utilization_ratio', 'gpu_memory_bandwidth_utilization_ratio']:
        v = val(name, g)
        check(v is not None and 0.0 <= v <= 1.0, f"{name} = {v} in 0..1")
    used, total = val('gpu_memory_used_bytes', g), val('gpu_memory_total_bytes', g)
    check(used is not None and total is not None and 0 <= used <= total and total > 0,
          f"memory used {used} <= total {total}")
    p = val('gpu_power_watts', g)
    check(p is not None and 0 < p < 2000, f"gpu_power_watts = {p} > 0")
    t = val('gpu_temperature_celsius', g)
    check(t is not None and 0 < t < 120, f"gpu_temperature_celsius = {t}")
    c = val('gpu_sm_clock_hertz', g)
    check(c is not None and c > 0, f"gpu_sm_clock_hertz = {c}")
    gpm = {n: val(n, g) for n in ['gpu_sm_active_ratio', 'gpu_sm_occupancy_ratio', 'gpu_tensor_active_ratio', 'gpu_dram_active_ratio']}
    present = {n: v for n, v in gpm.items() if v is not None}
    if present:
        check(all(0.0 <= v <= 1.0 for v in present.values()), f"GPM in 0..1: {present}")
    else:
        print("  [info] no GPM series (device without GPM support, e.g. pre-Hopper)")
    # The health tier (--collect.health-interval): read on the first cycle, kept in between.
    health = ['gpu_energy_joules_total', 'gpu_pcie_replay_errors_total',
              'gpu_pcie_transmit_bytes_per_second', 'gpu_encoder_utilization_ratio']
    print(f"  [info] health series: {[n for n in health if val(n, g) is not None]} present,"
          f" {[n for n in health if val(n, g) is None]} absent (not supported there)")
errs = series.get('gpu_pod_exporter_driver_call_errors_total', [])
for labels, v in errs:
    print(f"  [info] driver call errors: {labels} = {v}")
print()
print("RESULT:", "PASS" if not failures else f"FAIL ({len(failures)} check(s))")
sys.exit(1 if failures else 0)
PY
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
trap - EXIT

echo
echo "==> MPS (attribution rule 7)"
if [ "${SMOKE_MPS:-1}" = 0 ]; then
  echo "SKIP: MPS check (SMOKE_MPS=0)"
elif ! command -v nvidia-cuda-mps-control >/dev/null 2>&1; then
  echo "SKIP: MPS check: nvidia-cuda-mps-control is not installed (it comes with the driver's utilities)"
elif ! python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; then
  echo "SKIP: MPS check: PyTorch with CUDA is not installed for python3 (the two clients need it)"
else
  python3 scripts/gpu-smoke-mps.py --binary "$BIN" \
    --port "$((PORT + 1))" --interval "$INTERVAL" --gpu "${SMOKE_MPS_GPU:-0}" -- "$@" || status=1
fi
exit "$status"
