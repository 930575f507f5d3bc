#!/usr/bin/env bash
# Benchmark on a host with a real NVIDIA GPU and driver: runs the agent on the
# system's NVML for a while at a given interval and prints
#   - the agent's CPU per cycle and in % of a core (utime+stime deltas of /proc/<pid>/stat, after
#     /readyz, so start-up and nvmlInit are left out), per thread too;
#   - its RSS (VmRSS, and VmHWM, the peak);
#   - its own figures: collector_duration_seconds, driver call errors;
#   - the cost of each NVML call family the agent makes (median wall and mean CPU of the calling
#     process over a few calls, on GPU 0), timed by a small Python + ctypes probe, and what the
#     agent's tiers should then cost per cycle. Skipped, saying why, without python3.
# Never run in CI (it needs a GPU). Without a GPU or driver it says SKIP and why, and exits 0.
#
# Usage: scripts/gpu-bench.sh [extra exporter flags...]
#   BIN: a prebuilt gpu-pod-exporter (a GPU host may have no Rust toolchain); without it the
#        release binary is built with cargo.
#   BENCH_SECONDS (60), BENCH_INTERVAL (1s), BENCH_HEALTH_INTERVAL (30s), BENCH_PORT (19447),
#   BENCH_PROBE=0 to leave the NVML probe out, BENCH_PROBE_CALLS (15).
#   BENCH_NVML_LIBRARY: another NVML to load (agent and probe), e.g. the mock with
#   MOCK_NVML_SCENARIO set, to try the script on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_RUN="${BENCH_SECONDS:-60}"
INTERVAL="${BENCH_INTERVAL:-1s}"
HEALTH="${BENCH_HEALTH_INTERVAL:-30s}"
PORT="${BENCH_PORT:-19447}"

skip() {
  echo "SKIP: gpu-bench: $*"
  exit 0
}

# A duration as the agent takes it (500ms, 5s, 1m) -> seconds, for the arithmetic here.
secs() {
  python3 -c 'import re,sys
t=0.0
for n,u in re.findall(r"(\d+)(ms|s|m|h)", sys.argv[1]):
    t += int(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[u]
print(t)' "$1" 2>/dev/null || awk -v d="$1" 'BEGIN { if (d ~ /ms$/) print d/1000; else if (d ~ /m$/) print d*60; else print d+0 }'
}

LIB="${BENCH_NVML_LIBRARY:-}"
nvml_flag=()
[ -n "$LIB" ] && nvml_flag=(--nvml.library="$LIB")

# --- is there a GPU? ---------------------------------------------------------------------
if [ -n "$LIB" ]; then
  [ -r "$LIB" ] || skip "BENCH_NVML_LIBRARY=$LIB cannot be read"
  echo "==> NVML from $LIB (not the system's)"
elif [ ! -e /dev/nvidiactl ] && ! ls /dev/nvidia[0-9]* >/dev/null 2>&1; then
  skip "no NVIDIA device nodes (/dev/nvidiactl, /dev/nvidia0): no GPU or no driver on this host"
elif ! { ldconfig -p 2>/dev/null | grep -q 'libnvidia-ml\.so\.1'; } &&
  ! ls /usr/lib*/libnvidia-ml.so.1 /usr/lib/*/libnvidia-ml.so.1 >/dev/null 2>&1; then
  skip "the driver's NVML (libnvidia-ml.so.1) is not installed"
fi
if [ ! -r /proc/self/stat ]; then
  skip "no /proc to measure the agent's CPU with"
fi

# --- the binary --------------------------------------------------------------------------
if [ -n "${BIN:-}" ]; then
  [ -x "$BIN" ] || { echo "BIN=$BIN is not an executable file" >&2; exit 2; }
else
  command -v cargo >/dev/null 2>&1 ||
    skip "no cargo on this host and no BIN=/path/to/gpu-pod-exporter given"
  echo "==> building"
  cargo build --release -p gpu-pod-exporter --locked
  BIN=target/release/gpu-pod-exporter
fi
echo "==> $BIN $("$BIN" --version 2>/dev/null || true), interval $INTERVAL, health $HEALTH, ${SECONDS_RUN}s"

log="$(mktemp)"
"$BIN" --web.listen-address="127.0.0.1:${PORT}" --collect.interval="$INTERVAL" \
  --collect.health-interval="$HEALTH" --no-collector.amd ${nvml_flag[@]+"${nvml_flag[@]}"} "$@" 2>"$log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT

start=$(date +%s.%N)
ready=""
for _ in $(seq 1 150); do
  if curl -fsS "http://127.0.0.1:${PORT}/readyz" >/dev/null 2>&1; then
    ready=$(date +%s.%N)
    break
  fi
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "the agent exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$ready" ] || { cat "$log"; echo "not ready after 15 s" >&2; exit 1; }
echo "ready after $(awk -v a="$start" -v b="$ready" 'BEGIN { printf "%.2f", b - a }') s"

# utime + stime (fields 14, 15) of a stat line; the comm (field 2) may hold spaces.
ticks() { sed 's/^.*) //' "$1" | awk '{ print $12 + $13 }'; }
threads() {
  for t in /proc/"$pid"/task/*; do
    printf '%s\t%s\n' "$(cat "$t/comm")" "$(ticks "$t/stat")"
  done | sort
}
t0=$(ticks /proc/"$pid"/stat)
threads >"$log.t0"
w0=$(date +%s.%N)
sleep "$SECONDS_RUN"
t1=$(ticks /proc/"$pid"/stat)
threads >"$log.t1"
w1=$(date +%s.%N)
scrape="$(mktemp)"
curl -fsS "http://127.0.0.1:${PORT}/metrics" >"$scrape" || true
rss=$(awk '/^VmRSS/ { print $2 }' /proc/"$pid"/status)
hwm=$(awk '/^VmHWM/ { print $2 }' /proc/"$pid"/status)
gpus=$(grep -c '^gpu_info{' "$scrape" || true)

hz=$(getconf CLK_TCK)
interval_s=$(secs "$INTERVAL")
echo
echo "==> the agent"
awk -v t0="$t0" -v t1="$t1" -v w0="$w0" -v w1="$w1" -v hz="$hz" -v i="$interval_s" -v g="$gpus" 'BEGIN {
  cpu = (t1 - t0) / hz; wall = w1 - w0; cycles = wall / i;
  printf "  CPU: %.3f s in %.1f s = %.3f %% of a core; %.2f ms per cycle (%d cycles)", cpu, wall, 100 * cpu / wall, 1000 * cpu / cycles, cycles;
  if (g > 0) printf ", %.2f ms per GPU per cycle (%d GPUs)", 1000 * cpu / cycles / g, g;
  printf "\n  (one tick is %.0f ms: run longer for a finer figure)\n", 1000 / hz }'
echo "  RSS: $((rss / 1024)) MiB now, $((hwm / 1024)) MiB peak"
echo "  CPU by thread (ticks of 1/${hz} s):"
# Summed by thread name (two `async` threads, say); a thread started since counts from 0.
awk -F '\t' 'NR == FNR { before[$1] += $2; next } { after[$1] += $2 }
  END { for (n in after) { d = after[n] - before[n]; if (d > 0) printf "    %-16s %d\n", n, d } }' \
  "$log.t0" "$log.t1" | sort -k2 -nr || true
echo "  its own figures:"
grep -E '^gpu_pod_exporter_(collector_duration_seconds|driver_call_errors_total|collector_success)' "$scrape" |
  sed 's/^/    /' || echo "    (none scraped)"
grep -E '^gpu_processes\{' "$scrape" | sed 's/^/    /' || true
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
trap - EXIT

# --- the NVML call families, timed -------------------------------------------------------
echo
echo "==> NVML calls on GPU 0 (median wall, mean CPU of this process, ${BENCH_PROBE_CALLS:-15} calls each)"
if [ "${BENCH_PROBE:-1}" = 0 ]; then
  echo "SKIP: NVML probe (BENCH_PROBE=0)"
  exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "SKIP: NVML probe: python3 is not installed"
  exit 0
fi
python3 - "${BENCH_PROBE_CALLS:-15}" "$interval_s" "$(secs "$HEALTH")" "${LIB:-libnvidia-ml.so.1}" <<'PY'
import ctypes as C, statistics, sys, time

calls, interval, health, lib = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
try:
    nvml = C.CDLL(lib)
except OSError as e:
    print(f"SKIP: NVML probe: cannot load {lib} ({e})")
    sys.exit(0)
if nvml.nvmlInit_v2() != 0:
    print("SKIP: NVML probe: nvmlInit_v2 failed")
    sys.exit(0)
h = C.c_void_p()
if nvml.nvmlDeviceGetHandleByIndex_v2(0, C.byref(h)) != 0:
    print("SKIP: NVML probe: no GPU 0")
    sys.exit(0)

u, u2 = C.c_uint(), C.c_uint()
ull = C.c_ulonglong()
buf = C.create_string_buffer(96)
class Util(C.Structure):
    _fields_ = [("gpu", C.c_uint), ("memory", C.c_uint)]
class Mem(C.Structure):
    _fields_ = [("total", C.c_ulonglong), ("free", C.c_ulonglong), ("used", C.c_ulonglong)]
util, mem = Util(), Mem()
# Sized for the answer; only the count matters here.
procs = (C.c_ubyte * (64 * 64))()
samples = (C.c_ubyte * (64 * 64))()

def count_call(f):
    def call():
        n = C.c_uint(64)
        return f(n)
    return call

# family (the agent's `call` label), tier, the call
probes = [
    ("utilization", "fast", "nvmlDeviceGetUtilizationRates", lambda: nvml.nvmlDeviceGetUtilizationRates(h, C.byref(util))),
    ("memory", "fast", "nvmlDeviceGetMemoryInfo", lambda: nvml.nvmlDeviceGetMemoryInfo(h, C.byref(mem))),
    ("power", "fast", "nvmlDeviceGetPowerUsage", lambda: nvml.nvmlDeviceGetPowerUsage(h, C.byref(u))),
    ("temperature", "fast", "nvmlDeviceGetTemperature", lambda: nvml.nvmlDeviceGetTemperature(h, 0, C.byref(u))),
    ("clock", "fast", "nvmlDeviceGetClockInfo(SM)", lambda: nvml.nvmlDeviceGetClockInfo(h, 1, C.byref(u))),
    ("processes", "fast", "nvmlDeviceGetComputeRunningProcesses_v3", count_call(lambda n: nvml.nvmlDeviceGetComputeRunningProcesses_v3(h, C.byref(n), procs))),
    ("throttle", "fast", "nvmlDeviceGetCurrentClocksThrottleReasons", lambda: nvml.nvmlDeviceGetCurrentClocksThrottleReasons(h, C.byref(ull))),
    ("process_utilization", "fast, shared GPUs", "nvmlDeviceGetProcessUtilization", count_call(lambda n: nvml.nvmlDeviceGetProcessUtilization(h, samples, C.byref(n), C.c_ulonglong(int(time.time() * 1e6) - int(interval * 1e6))))),
    ("mig", "once if unsupported", "nvmlDeviceGetMigMode", lambda: nvml.nvmlDeviceGetMigMode(h, C.byref(u), C.byref(u2))),
    ("energy", "health", "nvmlDeviceGetTotalEnergyConsumption", lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(h, C.byref(ull))),
    ("ecc", "health", "nvmlDeviceGetTotalEccErrors (x2)", lambda: nvml.nvmlDeviceGetTotalEccErrors(h, 0, 1, C.byref(ull)) or nvml.nvmlDeviceGetTotalEccErrors(h, 1, 1, C.byref(ull))),
    ("pcie", "health", "nvmlDeviceGetPcieThroughput (TX+RX)", lambda: nvml.nvmlDeviceGetPcieThroughput(h, 0, C.byref(u)) or nvml.nvmlDeviceGetPcieThroughput(h, 1, C.byref(u))),
    ("pcie", "health", "nvmlDeviceGetPcieReplayCounter", lambda: nvml.nvmlDeviceGetPcieReplayCounter(h, C.byref(u))),
    ("encoder", "health", "nvmlDeviceGetEncoderUtilization", lambda: nvml.nvmlDeviceGetEncoderUtilization(h, C.byref(u), C.byref(u2))),
    ("decoder", "health", "nvmlDeviceGetDecoderUtilization", lambda: nvml.nvmlDeviceGetDecoderUtilization(h, C.byref(u), C.byref(u2))),
    ("uuid", "health", "nvmlDeviceGetUUID", lambda: nvml.nvmlDeviceGetUUID(h, buf, 96)),
    ("name", "once", "nvmlDeviceGetName", lambda: nvml.nvmlDeviceGetName(h, buf, 96)),
]

rows, cost = [], {"fast": 0.0, "fast, shared GPUs": 0.0, "health": 0.0}
for family, tier, name, f in probes:
    walls, rcs = [], set()
    c0 = time.process_time()
    for _ in range(calls):
        t = time.perf_counter()
        rcs.add(f())
        walls.append(time.perf_counter() - t)
    cpu = (time.process_time() - c0) / calls * 1000
    wall = statistics.median(walls) * 1000
    # 0 SUCCESS, 3 NOT_SUPPORTED, 6 NOT_FOUND, 7 INSUFFICIENT_SIZE (a count query)
    rc = ",".join(str(r) for r in sorted(rcs))
    rows.append((family, tier, name, wall, cpu, rc))
    if tier in cost:
        cost[tier] += cpu
print("  (not probed: GPM samples, NVLink field values, the MPS list; each under 0.1 ms on an H200)")
print(f"  {'family':20} {'tier':20} {'call':44} {'wall ms':>8} {'CPU ms':>8}  rc")
for family, tier, name, wall, cpu, rc in rows:
    print(f"  {family:20} {tier:20} {name:44} {wall:8.3f} {cpu:8.3f}  {rc}")
per_cycle = cost["fast"] + cost["health"] * interval / health
print()
print(f"  expected NVML CPU per GPU per cycle: fast tier {cost['fast']:.2f} ms"
      f" (+{cost['fast, shared GPUs']:.2f} ms on a GPU with two processes or more),"
      f" health tier {cost['health']:.2f} ms every {health:g} s = {per_cycle:.2f} ms per {interval:g} s cycle")
nvml.nvmlShutdown()
PY
