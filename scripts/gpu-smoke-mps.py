#!/usr/bin/env python3
"""The MPS part of scripts/gpu-smoke.sh, on a host with a real NVIDIA GPU (never run in CI).

Starts a private MPS control daemon on one GPU (its own pipe and log folders, so a daemon the
host already runs is not touched), runs two small PyTorch clients through it, and runs the agent
on a fake node tree whose procfs makes the two clients look like two pods and the MPS server like
the NVIDIA device plugin's MPS control daemon pod (each pid's real `comm` is copied, so the
kernel's 15-byte cut of `nvidia-cuda-mps-server` is what the agent reads). NVML is the real
driver's. Then it checks attribution rule 7 (docs/metrics.md, "MPS"):

  1. server in a pod, two clients: each client has its memory and no utilization ratio (NVML
     gives every SM sample to the server: a 0 would be false); no series names the server's
     pod; the server is in gpu_unattributed_*.
  2. the same with the server on the host.
  3. one client left: it holds the GPU alone and gets the GPU's utilization (and GPM).

The daemon is stopped and the clients ended at exit, whatever happened. Exit status 0 when every
check passed or the check could not run here (printed as SKIP, with the reason).
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

CLIENT = r"""
import sys, time, torch
end = time.time() + float(sys.argv[1])
x = torch.randn(4096, 4096, device="cuda")
while time.time() < end:
    for _ in range(20):
        x = torch.tanh(x @ x)
    torch.cuda.synchronize()
"""

PLUGIN_NS = "nvidia-device-plugin"
PLUGIN_POD = "nvidia-device-plugin-mps-control-daemon-smoke"
CLIENTS = [("smoke", "mps-client-a", "app"), ("smoke", "mps-client-b", "app")]


class Skip(Exception):
    pass


failures = []


def check(ok, what):
    print(f"  [{'ok' if ok else 'FAIL'}] {what}")
    if not ok:
        failures.append(what)


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    series = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)", line)
        if m:
            labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
            series.append((m.group(1), labels, float(m.group(4))))
    return series


def value(series, name, **want):
    found = [v for n, l, v in series if n == name and all(l.get(k) == w for k, w in want.items())]
    return found[0] if found else None


def cmd_name(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return os.path.basename(f.read().split(b"\0")[0].decode(errors="replace"))
    except OSError:
        return ""


def parent(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def pids_named(name):
    return {int(p) for p in os.listdir("/proc") if p.isdigit() and cmd_name(p) == name}


def seconds(duration):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s)", duration)
    return float(m[1]) / (1000 if m[2] == "ms" else 1) if m else 1.0


def in_environ(pid, needle):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return needle.encode() in f.read()
    except OSError:
        return False


class FakeNode:
    """A fake node tree (docs/design.md) whose procfs holds only the pids it is told about."""

    def __init__(self, root):
        self.root = root
        os.makedirs(os.path.join(root, "proc", "1"))  # every procfs has a pid 1
        os.makedirs(os.path.join(root, "var/log/containers"))

    def process(self, pid, cgroup):
        d = os.path.join(self.root, "proc", str(pid))
        os.makedirs(d, exist_ok=True)
        shutil.copyfile(f"/proc/{pid}/comm", os.path.join(d, "comm"))
        tmp = os.path.join(d, "cgroup.tmp")
        with open(tmp, "w") as f:
            f.write(cgroup)
        os.replace(tmp, os.path.join(d, "cgroup"))

    def pod(self, n, ns, pod, ctr, pid):
        uid = f"{n:08x}-6d2e-4f10-9b3c-5a7e1c0d2f4b"
        cid = f"{n:02x}" * 32
        log = f"/var/log/pods/{ns}_{pod}_{uid}/{ctr}/0.log"
        os.makedirs(os.path.dirname(self.root + log), exist_ok=True)
        open(self.root + log, "w").close()
        link = os.path.join(self.root, f"var/log/containers/{pod}_{ns}_{ctr}-{cid}.log")
        if not os.path.lexists(link):
            os.symlink(log, link)
        us = uid.replace("-", "_")
        self.process(pid, f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{us}.slice/"
                          f"cri-containerd-{cid}.scope\n")


def wait_until(port, what, cond, timeout, alive=lambda: None):
    end = time.time() + timeout
    last = []
    while time.time() < end:
        alive()
        try:
            last = scrape(port)
            if cond(last):
                return last
        except OSError:
            pass
        time.sleep(0.5)
    print(f"  timed out after {timeout}s waiting for: {what}")
    for n, l, v in last:
        if n.startswith(("pod_gpu_", "gpu_processes", "gpu_unattributed")):
            print(f"    {n}{l} {v}")
    return None


def rule_7_with_two_clients(s, gpu, layout):
    print(f"  -- {layout}")
    for n, l, v in s:
        if l.get("gpu") == gpu and n.startswith(("pod_gpu_", "gpu_unattributed", "gpu_processes")):
            print(f"    {n}" + (f"{{pod={l['pod']}}}" if "pod" in l else "") + f" {v}")
    util = value(s, "gpu_utilization_ratio", gpu=gpu)
    check(util is not None and util > 0.05, f"the GPU is busy under the clients: gpu_utilization_ratio = {util}")
    for _, pod, _ in CLIENTS:
        mem = value(s, "pod_gpu_memory_used_bytes", pod=pod, gpu=gpu)
        check(mem is not None and mem > 0, f"{pod}: pod_gpu_memory_used_bytes = {mem}")
        ratio = value(s, "pod_gpu_utilization_ratio", pod=pod, gpu=gpu)
        check(ratio is None, f"{pod}: no pod_gpu_utilization_ratio (NVML gives the server every sample), got {ratio}")
    check(not any(l.get("pod") == PLUGIN_POD for _, l, _ in s),
          f"the server is no pod's process: no series with pod={PLUGIN_POD}")
    n = value(s, "gpu_unattributed_processes", gpu=gpu)
    m = value(s, "gpu_unattributed_memory_bytes", gpu=gpu)
    check(n is not None and n >= 1, f"gpu_unattributed_processes = {n} (the server)")
    check(m is not None and m > 0, f"gpu_unattributed_memory_bytes = {m}")


def run(args):
    tmp = tempfile.mkdtemp(prefix="gpu-smoke-mps-")
    env = dict(os.environ)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env["CUDA_MPS_PIPE_DIRECTORY"] = os.path.join(tmp, "mps-pipe")
    env["CUDA_MPS_LOG_DIRECTORY"] = os.path.join(tmp, "mps-log")
    os.makedirs(env["CUDA_MPS_PIPE_DIRECTORY"])
    os.makedirs(env["CUDA_MPS_LOG_DIRECTORY"])
    node = FakeNode(os.path.join(tmp, "node"))
    agent = None
    clients = []
    daemon = False
    try:
        agent = subprocess.Popen(
            [args.binary, f"--web.listen-address=127.0.0.1:{args.port}", f"--collect.interval={args.interval}",
             "--no-collector.amd", f"--path.rootfs={node.root}", f"--path.procfs={node.root}/proc", *args.extra],
            stderr=open(os.path.join(tmp, "agent.log"), "w"))
        s = wait_until(args.port, f"gpu_info for GPU {args.gpu}",
                       lambda s: value(s, "gpu_info", gpu=args.gpu) is not None, 30)
        if s is None:
            check(False, f"the agent reports GPU {args.gpu}")
            return
        uuid = next(l["uuid"] for n, l, _ in s if n == "gpu_info" and l.get("gpu") == args.gpu)
        if any(n == "gpu_info" and l.get("gpu", "").startswith(args.gpu + ":") for n, l, _ in s):
            raise Skip(f"GPU {args.gpu} is in MIG mode (set SMOKE_MPS_GPU to a GPU that is not)")
        env["CUDA_VISIBLE_DEVICES"] = uuid
        print(f"  GPU {args.gpu} ({uuid}); MPS pipe folder {env['CUDA_MPS_PIPE_DIRECTORY']}")

        servers_before = pids_named("nvidia-cuda-mps-server")
        start = subprocess.run(["nvidia-cuda-mps-control", "-d"], env=env, capture_output=True, text=True)
        if start.returncode != 0:
            raise Skip(f"nvidia-cuda-mps-control -d failed: {(start.stdout + start.stderr).strip()}")
        daemon = True
        for _ in CLIENTS:
            clients.append(subprocess.Popen([sys.executable, "-c", CLIENT, "300"], env=env,
                                            stderr=open(os.path.join(tmp, f"client-{len(clients)}.log"), "w")))

        def alive():
            for i, c in enumerate(clients):
                if c.poll() is not None and c.returncode != -signal.SIGTERM:
                    with open(os.path.join(tmp, f"client-{i}.log")) as f:
                        err = f.read().strip()[-2000:]
                    raise Skip(f"an MPS client exited ({c.returncode}) before the check: {err}")

        # The control daemon (ours: it has our pipe folder in its environment) starts the server
        # for the first client, as its child.
        pipe = env["CUDA_MPS_PIPE_DIRECTORY"]
        server = None
        end = time.time() + 60
        while server is None and time.time() < end:
            alive()
            controls = {p for p in pids_named("nvidia-cuda-mps-control") if in_environ(p, pipe)}
            new = pids_named("nvidia-cuda-mps-server") - servers_before
            ours = sorted(p for p in new if parent(p) in controls or in_environ(p, pipe))
            if ours or len(new) == 1:
                server = (ours or sorted(new))[0]
            time.sleep(0.5)
        if server is None:
            raise Skip("no nvidia-cuda-mps-server process appeared within 60 s")
        with open(f"/proc/{server}/comm") as f:
            print(f"  MPS server pid {server}, comm {f.read().strip()!r}; clients {[c.pid for c in clients]}")
        node.pod(1, PLUGIN_NS, PLUGIN_POD, "mps-control-daemon", server)
        for i, (ns, pod, ctr) in enumerate(CLIENTS):
            node.pod(2 + i, ns, pod, ctr, clients[i].pid)

        interval = seconds(args.interval)
        both = lambda s: all(value(s, "pod_gpu_memory_used_bytes", pod=p, gpu=args.gpu) for _, p, _ in CLIENTS) \
            and (value(s, "gpu_processes", gpu=args.gpu) or 0) >= 3
        if wait_until(args.port, "both clients' memory on the GPU", both, 120, alive) is None:
            check(False, "both clients appear as pods with memory")
            return
        # Per-process utilization needs samples from two cycles.
        time.sleep(4 * interval)
        rule_7_with_two_clients(scrape(args.port), args.gpu, "server in the device plugin's pod")

        node.process(server, "0::/system.slice/nvidia-mps.service\n")
        time.sleep(3 * interval)
        rule_7_with_two_clients(scrape(args.port), args.gpu, "server on the host")

        print("  -- one client left")
        clients[1].terminate()
        clients[1].wait(timeout=30)
        gone = lambda s: value(s, "pod_gpu_memory_used_bytes", pod=CLIENTS[1][1], gpu=args.gpu) is None
        s = wait_until(args.port, "the second client's series gone", gone, 30, alive)
        if s is None:
            check(False, "the second client's series went with it")
            return
        time.sleep(3 * interval)
        s = scrape(args.port)
        util = value(s, "gpu_utilization_ratio", gpu=args.gpu)
        ratio = value(s, "pod_gpu_utilization_ratio", pod=CLIENTS[0][1], gpu=args.gpu)
        check(ratio is not None and ratio == util and ratio > 0,
              f"{CLIENTS[0][1]} holds the GPU alone: pod_gpu_utilization_ratio {ratio} == gpu_utilization_ratio {util}")
        sm = value(s, "gpu_sm_active_ratio", gpu=args.gpu)
        if sm is not None:
            pod_sm = value(s, "pod_gpu_sm_active_ratio", pod=CLIENTS[0][1], gpu=args.gpu)
            check(pod_sm == sm, f"and the GPU's GPM: pod_gpu_sm_active_ratio {pod_sm} == gpu_sm_active_ratio {sm}")
        for n, l, v in s:
            if n == "gpu_pod_exporter_driver_call_errors_total" and l.get("call") == "mps":
                print(f"  [info] MPS list errors: {l} = {v}")
    finally:
        for c in clients:
            if c.poll() is None:
                c.terminate()
        for c in clients:
            try:
                c.wait(timeout=30)
            except subprocess.TimeoutExpired:
                c.kill()
        if daemon:
            stop = subprocess.run(["nvidia-cuda-mps-control"], input="quit\n", env=env,
                                  capture_output=True, text=True, timeout=60)
            print(f"  MPS control daemon stopped (quit: exit {stop.returncode})")
        if agent is not None:
            agent.terminate()
            agent.wait(timeout=10)
            if failures:
                with open(os.path.join(tmp, "agent.log")) as f:
                    print("  agent log:\n" + f.read()[-4000:])
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--binary", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--interval", default="1s")
    p.add_argument("--gpu", default="0", help="the GPU's NVML index")
    p.add_argument("extra", nargs="*", help="more exporter flags, after --")
    args = p.parse_args()
    try:
        run(args)
    except Skip as e:
        print(f"SKIP: MPS check: {e}")
        return 0
    print("RESULT (MPS):", "PASS" if not failures else f"FAIL ({len(failures)} check(s))")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
