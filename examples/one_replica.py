#!/usr/bin/env python3
"""One replica of a bundled scenario's server, pinned (minReplicas = maxReplicas = 1), under a
constant arrival rate for each rate given: its batch size (vllm:num_requests_running), its queue
(vllm:num_requests_waiting) and the waits. This is GKE's procedure for a batch-size or queue-size
target ("increase the load until the batch size peaks") run on the hpa-sim model instead of a
load test, and the curve docs/autoscaling.md reads the batch-size candidate's behaviour from.

    examples/one_replica.py SCENARIO.yaml RATE... [--hours H] [--sim PATH] [--out DIR]

Each rate runs for H hours (default 2); the first 10 minutes are left out of the batch and queue
figures. Batch and queue are the values the HPA would read: each a 1-minute average of the 15 s
scrapes, sampled at every sync. The waits are over every request of the run. Uses only the
standard library: the scenario's `requests:`, `profile:`, `server:` and `pipeline:` blocks are
copied as they are written.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from math import log

KEPT = ("requests", "profile", "server", "pipeline", "seed")


def top_level_blocks(text):
    """The scenario's top-level keys and their text (the key line and its indented lines)."""
    blocks, key = {}, None
    for line in text.splitlines(keepends=True):
        if line[:1] not in (" ", "#", "\n", "") and ":" in line:
            key = line.split(":", 1)[0].strip()
            blocks[key] = line
        elif key is not None and line[:1] == " ":
            blocks[key] += line
    return blocks


def run(sim, base_dir, blocks, rate, hours, work):
    trace = os.path.join(work, f"rate-{rate:g}.csv")
    with open(trace, "w", encoding="utf-8") as f:
        f.write("time_seconds,requests_per_second\n")
        for t in range(0, int(hours * 3600) + 1, 60):
            f.write(f"{t},{rate}\n")
    body = "".join(blocks[k] for k in KEPT if k in blocks)
    # A profile given as a file is relative to the scenario: make it absolute.
    prof = blocks.get("profile", "").split(":", 1)[-1].split("#")[0].strip()
    if prof.endswith((".yaml", ".yml")) and not os.path.isabs(prof):
        body = body.replace(blocks["profile"], f"profile: {os.path.join(base_dir, prof)}\n")
    scenario = os.path.join(work, f"rate-{rate:g}.yaml")
    with open(scenario, "w", encoding="utf-8") as f:
        f.write(
            f"""name: one-replica-{rate:g}
hpa:
  minReplicas: 1
  maxReplicas: 1
  metrics:
    - type: Pods
      pods: {{metric: {{name: vllm_num_requests_running}}, target: {{type: AverageValue, averageValue: "1"}}}}
    - type: Pods
      pods: {{metric: {{name: vllm_num_requests_waiting}}, target: {{type: AverageValue, averageValue: "1"}}}}
    - type: Pods
      pods: {{metric: {{name: gpu_tensor_active_ratio}}, target: {{type: AverageValue, averageValue: "1"}}}}
    - type: Pods
      pods: {{metric: {{name: gpu_utilization_ratio}}, target: {{type: AverageValue, averageValue: "1"}}}}
    - type: Pods
      pods: {{metric: {{name: vllm_request_success_rate}}, target: {{type: AverageValue, averageValue: "1"}}}}
initialReplicas: 1
trace: {{csv: {os.path.basename(trace)}}}
goal: {{p95QueueWaitSeconds: 1000000}}
{body}"""
        )
    report = os.path.join(work, f"report-{rate:g}")
    done = subprocess.run(
        [sim, "simulate", scenario, "--no-bounds", "--report", report],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(f"one_replica.py: {sim} simulate {scenario} failed:\n{done.stderr}")
    with open(os.path.join(report, "steps.csv"), encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if float(r["t"]) > 600]
    with open(os.path.join(report, "summary.json"), encoding="utf-8") as f:
        totals = json.load(f)["totals"]
    running = [float(r["vllm_num_requests_running"]) for r in rows]
    waiting = [float(r["vllm_num_requests_waiting"]) for r in rows]
    tensor = [float(r["gpu_tensor_active_ratio"]) for r in rows]
    util = [float(r["gpu_utilization_ratio"]) for r in rows]
    done = [float(r["vllm_request_success_rate"]) for r in rows]
    return {
        "tensor": sum(tensor) / len(tensor),
        "util": sum(util) / len(util),
        "done": sum(done) / len(done),
        "rate": rate,
        "batch_mean": sum(running) / len(running),
        "batch_max": max(running),
        "waiting_mean": sum(waiting) / len(waiting),
        "wait_mean": totals["waitMean"],
        "wait_p95": totals["waitP95"],
        "wait_p99": totals["waitP99"],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario")
    ap.add_argument("rates", nargs="+", type=float)
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--sim", default="target/release/hpa-sim")
    ap.add_argument("--out", help="keep the scenarios and reports here")
    a = ap.parse_args()
    with open(a.scenario, encoding="utf-8") as f:
        blocks = top_level_blocks(f.read())
    base_dir = os.path.dirname(os.path.abspath(a.scenario))
    work = a.out or tempfile.mkdtemp(prefix="one-replica-")
    os.makedirs(work, exist_ok=True)
    rows = [run(a.sim, base_dir, blocks, r, a.hours, work) for r in a.rates]
    print(
        "| requests/s | finished/s | batch (mean) | batch (largest 1-min average) | queue (mean) "
        "| tensor activity | NVML utilization | wait mean | p95 | p99 "
        "| elasticity: batch | tensor | NVML |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    prev = None
    for r in rows:
        # d ln(value) / d ln(rate) from the rate before: the HPA's proportional rule converges
        # in one step where it is 1, and overshoots, then oscillates, where it is over 2.
        el = {}
        for k in ("batch_mean", "tensor", "util"):
            el[k] = "-"
            if prev and prev[k] > 0 and r[k] > 0 and r["rate"] != prev["rate"]:
                el[k] = f"{log(r[k] / prev[k]) / log(r['rate'] / prev['rate']):.1f}"
        print(
            f"| {r['rate']:g} | {r['done']:.1f} | {r['batch_mean']:.1f} | {r['batch_max']:.1f} | {r['waiting_mean']:.1f} "
            f"| {r['tensor']:.3f} | {r['util']:.3f} "
            f"| {r['wait_mean']:.2f} s | {r['wait_p95']:.2f} s | {r['wait_p99']:.2f} s "
            f"| {el['batch_mean']} | {el['tensor']} | {el['util']} |"
        )
        prev = r
    return 0


if __name__ == "__main__":
    sys.exit(main())
