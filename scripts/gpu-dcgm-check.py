#!/usr/bin/env python3
"""The measuring half of scripts/gpu-dcgm-check.sh (read its header first): compares the
profiling series of two running agents (GPM as shipped, and --dcgm.devices=all) under PyTorch
loads on GPU 0, and times DCGM's calls through ctypes. Never run in CI; not yet run on a real
GPU (no machine with DCGM was lent when it was written).

The ctypes layouts are those of dcgmlib/dcgm_structs.h (NVIDIA/DCGM), as the agent declares them
in src/collect/nvidia/dcgm/ffi.rs: dcgmConnectV2Params_v2 is 16 bytes, dcgmFieldValue_v2 4,128,
each struct's version MAKE_DCGM_VERSION(size, ver) = size | ver << 24.
"""

import argparse
import ctypes as C
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request

SERIES = ["gpu_graphics_active_ratio", "gpu_sm_active_ratio", "gpu_sm_occupancy_ratio",
          "gpu_tensor_active_ratio", "gpu_dram_active_ratio", "gpu_fp64_active_ratio",
          "gpu_fp32_active_ratio", "gpu_fp16_active_ratio"]
FIELDS = list(range(1001, 1009))  # DCGM_FI_PROF_GR_ENGINE_ACTIVE .. _PIPE_FP16_ACTIVE

# One PyTorch load per phase, on GPU 0, for argv[1] seconds.
LOADS = {
    "idle": None,
    "fp16 matmul (tensor cores)": """
x = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
while time.time() < end:
    for _ in range(10): y = x @ x
    torch.cuda.synchronize()
""",
    "fp32 element-wise (FP32 pipe, DRAM)": """
x = torch.randn(1 << 28, device="cuda")
while time.time() < end:
    for _ in range(10): x.mul_(1.0001).add_(0.5)
    torch.cuda.synchronize()
""",
    "fp64 matmul": """
x = torch.randn(4096, 4096, device="cuda", dtype=torch.float64)
while time.time() < end:
    y = x @ x
    torch.cuda.synchronize()
""",
}


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)', line)
        if m and not line.startswith("#"):
            labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
            out.setdefault(m.group(1), []).append((labels, float(m.group(4))))
    return out


def value(s, name, **want):
    for labels, v in s.get(name, []):
        if all(labels.get(k) == w for k, w in want.items()):
            return v
    return None


def wait_for(what, cond, seconds=90):
    end = time.time() + seconds
    while time.time() < end:
        try:
            if cond():
                return True
        except OSError:
            pass
        time.sleep(0.5)
    print(f"  [FAIL] timed out waiting for {what}")
    return False


def compare(ports, phase_seconds):
    gpm_port, dcgm_port = ports
    ok = wait_for("both agents ready, GPU 0 from GPM on one and from DCGM on the other", lambda: (
        value(scrape(gpm_port), "gpu_profiling_info", gpu="0", source="gpm") == 1.0
        and value(scrape(dcgm_port), "gpu_profiling_info", gpu="0", source="dcgm") == 1.0))
    if not ok:
        for port in ports:
            s = scrape(port)
            for labels, v in s.get("gpu_pod_exporter_driver_call_errors_total", []):
                print(f"  port {port}: driver call errors {labels} = {v}")
        return False
    cpu0 = [value(scrape(p), "process_cpu_seconds_total") for p in ports]
    t0 = time.time()
    agree = True
    for phase, code in LOADS.items():
        load = None
        if code:
            load = subprocess.Popen([sys.executable, "-c",
                                     "import sys, time, torch\nend = time.time() + float(sys.argv[1])\n" + code,
                                     str(phase_seconds)])
        time.sleep(min(5, phase_seconds / 4))  # ramp: one GPM window, DCGM's next sample
        sums = {(p, n): [] for p in ports for n in SERIES}
        end = time.time() + phase_seconds - min(5, phase_seconds / 4) - 1
        while time.time() < end:
            for p in ports:
                s = scrape(p)
                for n in SERIES:
                    v = value(s, n, gpu="0")
                    if v is not None:
                        sums[(p, n)].append(v)
            time.sleep(1)
        if load:
            load.wait()
        print(f"\n  phase: {phase}")
        print(f"  {'series':28} {'GPM':>8} {'DCGM':>8} {'diff':>8}  samples")
        for n in SERIES:
            g, d = sums[(gpm_port, n)], sums[(dcgm_port, n)]
            if not g or not d:
                print(f"  {n:28} {'-' if not g else f'{statistics.mean(g):8.3f}':>8} "
                      f"{'-' if not d else f'{statistics.mean(d):8.3f}':>8}  (absent on one side)")
                continue
            gm, dm = statistics.mean(g), statistics.mean(d)
            near = abs(gm - dm) <= max(0.05, 0.15 * max(gm, dm))
            agree &= near
            print(f"  {n:28} {gm:8.3f} {dm:8.3f} {dm - gm:+8.3f}  {len(g)}/{len(d)}"
                  f"{'' if near else '   <- differ'}")
    cpu1 = [value(scrape(p), "process_cpu_seconds_total") for p in ports]
    interval = value(scrape(gpm_port), "gpu_pod_exporter_collect_interval_seconds") or 1.0
    cycles = (time.time() - t0) / interval
    print(f"\n  agent CPU per cycle over {cycles:.0f} cycles: as shipped "
          f"{(cpu1[0] - cpu0[0]) / cycles * 1000:.2f} ms, with DCGM on every GPU "
          f"{(cpu1[1] - cpu0[1]) / cycles * 1000:.2f} ms")
    return agree


class ConnectParams(C.Structure):
    _fields_ = [("version", C.c_uint), ("persist", C.c_uint), ("timeoutMs", C.c_uint),
                ("unix", C.c_uint)]


class Entity(C.Structure):
    _fields_ = [("group", C.c_uint), ("id", C.c_uint)]


class Value(C.Union):
    _fields_ = [("i64", C.c_int64), ("dbl", C.c_double), ("blob", C.c_char * 4096)]


class FieldValue(C.Structure):
    _fields_ = [("version", C.c_uint), ("group", C.c_uint), ("id", C.c_uint), ("field", C.c_ushort),
                ("type", C.c_ushort), ("status", C.c_int), ("unused", C.c_uint), ("ts", C.c_int64),
                ("value", Value)]


assert C.sizeof(ConnectParams) == 16 and C.sizeof(FieldValue) == 4128


def engine_cpu():
    """CPU seconds of a running nv-hostengine (the host engine's side of each call), if any."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if open(f"/proc/{pid}/comm").read().strip() == "nv-hostengine":
                fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            continue
    return None


def timed(label, calls, f, rows):
    walls, rcs = [], set()
    c0, e0 = time.process_time(), engine_cpu()
    for _ in range(calls):
        t = time.perf_counter()
        rcs.add(f())
        walls.append(time.perf_counter() - t)
    cpu = (time.process_time() - c0) / calls * 1000
    e1 = engine_cpu()
    engine = "" if e0 is None or e1 is None else f"{(e1 - e0) / calls * 1000:8.3f}"
    rows.append((label, statistics.median(walls) * 1000, cpu, engine, ",".join(map(str, sorted(rcs)))))


def probe(library, address, calls):
    try:
        dcgm = C.CDLL(library)
    except OSError as e:
        print(f"  SKIP: DCGM probe: cannot load {library} ({e})")
        return
    if dcgm.dcgmInit() != 0:
        print("  SKIP: DCGM probe: dcgmInit failed")
        return
    rows = []
    handle = C.c_size_t()

    def connect():
        if address == "embedded":
            return dcgm.dcgmStartEmbedded(1, C.byref(handle))
        p = ConnectParams(16 | (2 << 24), 0, 5000, int("/" in address))
        return dcgm.dcgmConnect_v2(address.encode(), C.byref(p), C.byref(handle))

    timed("dcgm_connect: " + ("dcgmStartEmbedded" if address == "embedded" else "dcgmConnect_v2"),
          1, connect, rows)
    if rows[-1][4] != "0":
        print(f"  SKIP: DCGM probe: connecting failed ({rows[-1][4]})")
        return
    ids, n = (C.c_uint * 32)(), C.c_int()
    timed("dcgm_watch: dcgmGetAllSupportedDevices", calls,
          lambda: dcgm.dcgmGetAllSupportedDevices(handle, ids, C.byref(n)), rows)
    entities = (Entity * n.value)(*[Entity(1, ids[i]) for i in range(n.value)])
    group, fg = C.c_size_t(), C.c_size_t()
    dcgm.dcgmGroupCreate(handle, 1, b"gpu-dcgm-check", C.byref(group))
    for e in entities:
        dcgm.dcgmGroupAddEntity(handle, group, e.group, e.id)
    fields = (C.c_ushort * 8)(*FIELDS)
    dcgm.dcgmFieldGroupCreate(handle, 8, fields, f"gpu-dcgm-check-{os.getpid()}".encode(), C.byref(fg))
    timed("dcgm_watch: dcgmWatchFields (every GPU, 1 s)", 1,
          lambda: dcgm.dcgmWatchFields(handle, group, fg, C.c_longlong(1_000_000), C.c_double(3.0), 2), rows)
    time.sleep(2.5)
    values = (FieldValue * (n.value * 8))()

    def read():
        for v in values:
            v.version = 4128 | (2 << 24)
        return dcgm.dcgmEntitiesGetLatestValues(handle, entities, n.value, fields, 8, 0, values)

    timed(f"dcgm_values: dcgmEntitiesGetLatestValues ({n.value} GPUs x 8 fields)", calls, read, rows)
    one = (Entity * 1)(entities[0])

    def read_one():
        for v in values[:8]:
            v.version = 4128 | (2 << 24)
        return dcgm.dcgmEntitiesGetLatestValues(handle, one, 1, fields, 8, 0, values)

    timed("dcgm_values: dcgmEntitiesGetLatestValues (1 GPU x 8 fields)", calls, read_one, rows)
    print(f"\n  DCGM call costs ({calls} calls each; engine CPU: nv-hostengine's, when one runs here)")
    print(f"  {'call':62} {'wall ms':>8} {'CPU ms':>8} {'engine ms':>9}  rc")
    for label, wall, cpu, engine, rc in rows:
        print(f"  {label:62} {wall:8.3f} {cpu:8.3f} {engine:>9}  {rc}")
    statuses = sorted({v.status for v in values[:8]})
    print(f"  statuses of GPU {entities[0].id}'s eight fields: {statuses}")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ports", type=int, nargs=2, required=True)
    ap.add_argument("--library", required=True)
    ap.add_argument("--address", required=True)
    ap.add_argument("--phase-seconds", type=float, default=20)
    ap.add_argument("--probe-calls", type=int, default=15)
    args = ap.parse_args()
    print("==> GPM (as shipped) against DCGM (--dcgm.devices=all), GPU 0")
    agree = compare(args.ports, args.phase_seconds)
    print("\n==> DCGM's calls, timed")
    probe(args.library, args.address, args.probe_calls)
    print("\nRESULT:", "PASS: the sources agree" if agree else "FAIL: the sources differ (or DCGM never answered)")
    sys.exit(0 if agree else 1)


if __name__ == "__main__":
    main()
