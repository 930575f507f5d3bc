#!/usr/bin/env python3
"""The GPU exporter a team writes itself: nvidia-ml-py (pynvml) and prometheus_client.

This is the peer that scripts/bench.sh measures the agent against: a plain,
careful implementation of what such exporters do, not a strawman. Every interval it reads, per
GPU, the device series (utilization, memory used and total, power, temperature, SM clock), the
compute processes with their memory, and per-process utilization since the last sample it saw;
it maps each process to its pod through `/proc/<pid>/cgroup` (the pod UID) and the names in
`/var/log/pods/<namespace>_<pod>_<uid>/`; and it serves the result with prometheus_client's own
HTTP server. Per-process series of processes that are gone are removed.

    peer_exporter.py --nvml-library /path/libnvidia-ml.so.1 --rootfs / --port 9400 --interval 5

The NVML library is loaded from `--nvml-library` (or `$NVML_LIBRARY`) rather than the system
search path: pynvml's `_LoadNvmlLibrary` loads `libnvidia-ml.so.1` only while its module global
`nvmlLib` is None, so setting `pynvml.nvmlLib` to a `ctypes.CDLL` of the file first makes
`nvmlInit` use it (nvidia-ml-py 13.x, pynvml.py). The benchmark points it at the mock.
"""
import argparse
import ctypes
import os
import re
import sys
import threading
import time

import pynvml
from prometheus_client import Gauge, start_http_server

# The pod UID in a cgroup path: `pod<uid>` with dashes (cgroupfs) or underscores (systemd).
POD_UID = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")

LABELS = ["gpu", "uuid"]
PROC_LABELS = ["gpu", "uuid", "pid", "namespace", "pod"]

util = Gauge("peer_gpu_utilization_ratio", "GPU utilization (0-1)", LABELS)
mem_used = Gauge("peer_gpu_memory_used_bytes", "GPU memory used", LABELS)
mem_total = Gauge("peer_gpu_memory_total_bytes", "GPU memory total", LABELS)
power = Gauge("peer_gpu_power_watts", "GPU power draw", LABELS)
temp = Gauge("peer_gpu_temperature_celsius", "GPU temperature", LABELS)
sm_clock = Gauge("peer_gpu_sm_clock_hertz", "GPU SM clock", LABELS)
proc_mem = Gauge("peer_process_gpu_memory_used_bytes", "GPU memory of a process", PROC_LABELS)
proc_util = Gauge("peer_process_gpu_utilization_ratio", "SM utilization of a process (0-1)", PROC_LABELS)


def load_nvml(path):
    if path:
        pynvml.nvmlLib = ctypes.CDLL(path)
    pynvml.nvmlInit()


def pod_names(rootfs):
    """Pod UID -> (namespace, pod), from the kubelet's log folders."""
    names = {}
    try:
        for entry in os.listdir(os.path.join(rootfs, "var/log/pods")):
            parts = entry.split("_")
            if len(parts) == 3:
                names[parts[2]] = (parts[0], parts[1])
    except OSError:
        pass
    return names


def pod_uid(rootfs, pid):
    try:
        with open(os.path.join(rootfs, "proc", str(pid), "cgroup")) as f:
            m = POD_UID.search(f.read())
    except OSError:
        return None
    return m.group(1).replace("_", "-") if m else None


class Exporter:
    def __init__(self, rootfs):
        self.rootfs = rootfs
        self.devices = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            self.devices.append((str(i), pynvml.nvmlDeviceGetUUID(h), h))
        self.last_seen = {}  # uuid -> last process utilization timestamp
        self.proc_series = set()

    def sample(self):
        names = pod_names(self.rootfs)
        series = set()
        for gpu, uuid, h in self.devices:
            try:
                u = pynvml.nvmlDeviceGetUtilizationRates(h)
                m = pynvml.nvmlDeviceGetMemoryInfo(h)
                util.labels(gpu, uuid).set(u.gpu / 100)
                mem_used.labels(gpu, uuid).set(m.used)
                mem_total.labels(gpu, uuid).set(m.total)
                power.labels(gpu, uuid).set(pynvml.nvmlDeviceGetPowerUsage(h) / 1000)
                temp.labels(gpu, uuid).set(
                    pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU))
                sm_clock.labels(gpu, uuid).set(
                    pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM) * 1e6)
                procs = pynvml.nvmlDeviceGetComputeRunningProcesses(h)
            except pynvml.NVMLError as e:
                print(f"gpu {gpu}: {e}", file=sys.stderr)
                continue
            sm = {}
            try:
                samples = pynvml.nvmlDeviceGetProcessUtilization(h, self.last_seen.get(uuid, 0))
                for s in samples:
                    sm[s.pid] = s.smUtil
                    self.last_seen[uuid] = max(self.last_seen.get(uuid, 0), s.timeStamp)
            except pynvml.NVMLError_NotFound:
                pass  # no new samples
            except pynvml.NVMLError as e:
                print(f"gpu {gpu}: process utilization: {e}", file=sys.stderr)
            for p in procs:
                uid = pod_uid(self.rootfs, p.pid)
                ns, pod = names.get(uid, ("", "")) if uid else ("", "")
                labels = (gpu, uuid, str(p.pid), ns, pod)
                series.add(labels)
                proc_mem.labels(*labels).set(p.usedGpuMemory or 0)
                proc_util.labels(*labels).set(sm.get(p.pid, 0) / 100)
        for gone in self.proc_series - series:
            proc_mem.remove(*gone)
            proc_util.remove(*gone)
        self.proc_series = series


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nvml-library", default=os.environ.get("NVML_LIBRARY"))
    ap.add_argument("--rootfs", default="/")
    ap.add_argument("--address", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=9400)
    ap.add_argument("--interval", type=float, default=5.0, help="seconds")
    a = ap.parse_args()

    load_nvml(a.nvml_library)
    exporter = Exporter(a.rootfs)
    exporter.sample()
    start_http_server(a.port, addr=a.address)
    stop = threading.Event()
    next_at = time.monotonic()
    while not stop.is_set():
        next_at += a.interval
        stop.wait(max(0.0, next_at - time.monotonic()))
        exporter.sample()


if __name__ == "__main__":
    main()
