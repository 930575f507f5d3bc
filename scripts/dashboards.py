#!/usr/bin/env python3
"""Generates the Grafana dashboards in dashboards/ (stdlib only).

    python3 scripts/dashboards.py --write   # regenerate dashboards/*.json
    python3 scripts/dashboards.py --check   # fail if dashboards/*.json differ from what this writes

The JSON files are what users import; this script is their source, so that panel ids, grid
positions, the datasource variable and the query conventions stay uniform. Edit a dashboard here,
run --write, and commit both. scripts/check-deploy.sh runs --check.

Conventions: every query goes through the `${datasource}` variable (type datasource, Prometheus),
rates use $__rate_interval, per-pod figures come from the recording rules in
daemonset/rules/gpu-pod-exporter.rules.yaml, and panels that need another exporter say so in their
description.
"""

import json
import sys
from pathlib import Path

SCHEMA_VERSION = 41  # Grafana 12.x; older Grafanas load it as is, newer ones migrate it forward.
DS = {"type": "prometheus", "uid": "${datasource}"}
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "dashboards"

KSM = "Needs kube-state-metrics (no data without it)."

# When the per-pod GPM series exist (docs/metrics.md, "Profiling per pod").
GPM_PER_POD = ("The GPU's GPM figures, averaged over the pod's GPUs and the last minute; only for pods that "
               "hold their GPU (or MIG instance, on the instance's scale) alone. No data for pods on shared "
               "GPUs, GPUs before Hopper, or AMD.")

# The waste condition of the GPUAllocatedButIdle alert, as one instant query: allocated GPUs whose
# container used under 1 % of them over the last 30 minutes.
IDLE_ALLOCATED = (
    '(max_over_time(pod_gpu_utilization_ratio{namespace=~"$namespace"}[30m]) < 0.01)'
    " and on (namespace, pod, container, uuid) "
    '(pod_gpu_allocated{namespace=~"$namespace"} == 1)'
)


class Board:
    """Lays panels out left to right, top to bottom, on Grafana's 24-column grid."""

    def __init__(self):
        self.panels = []
        self.next_id = 1
        self.x = 0
        self.y = 0
        self.row_h = 0

    def _place(self, w, h):
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def _id(self):
        i = self.next_id
        self.next_id += 1
        return i

    def row(self, title):
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.panels.append({
            "collapsed": False,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
            "id": self._id(),
            "panels": [],
            "title": title,
            "type": "row",
        })
        self.y += 1

    def panel(self, kind, title, targets, *, w=12, h=8, unit=None, description="",
              min_=None, max_=None, options=None, field=None, overrides=None,
              transformations=None, instant=False, table=False):
        defaults = {}
        if unit:
            defaults["unit"] = unit
        if min_ is not None:
            defaults["min"] = min_
        if max_ is not None:
            defaults["max"] = max_
        if field:
            defaults.update(field)
        refs = "ABCDEFGHIJ"
        p = {
            "datasource": DS,
            "description": description,
            "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
            "gridPos": self._place(w, h),
            "id": self._id(),
            "options": options or {},
            "targets": [
                {
                    "datasource": DS,
                    "editorMode": "code",
                    "expr": expr,
                    "format": "table" if table else "time_series",
                    "instant": instant,
                    "legendFormat": legend,
                    "range": not instant,
                    "refId": refs[i],
                }
                for i, (expr, legend) in enumerate(targets)
            ],
            "title": title,
            "type": kind,
        }
        if transformations:
            p["transformations"] = transformations
        self.panels.append(p)

    def timeseries(self, title, targets, **kw):
        kw.setdefault("options", {
            "legend": {"calcs": ["lastNotNull", "max"], "displayMode": "table", "placement": "bottom",
                       "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        })
        field = kw.pop("field", {})
        field.setdefault("custom", {"drawStyle": "line", "fillOpacity": 10, "lineWidth": 1,
                                    "showPoints": "never", "spanNulls": False})
        self.panel("timeseries", title, targets, field=field, **kw)

    def stat(self, title, expr, *, w=4, h=4, unit=None, thresholds=None, description="", **kw):
        field = {"thresholds": {"mode": "absolute", "steps": thresholds or [{"color": "green", "value": None}]}}
        if "decimals" in kw:
            field["decimals"] = kw.pop("decimals")
        self.panel("stat", title, [(expr, "")], w=w, h=h, unit=unit, description=description,
                   instant=True, field=field, options={
                       "colorMode": "value", "graphMode": "none", "justifyMode": "auto",
                       "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                       "textMode": "auto",
                   }, **kw)

    def bargauge(self, title, expr, legend, *, unit=None, description="", **kw):
        self.panel("bargauge", title, [(expr, legend)], unit=unit, description=description,
                   instant=True, options={
                       "displayMode": "gradient", "orientation": "horizontal",
                       "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                       "showUnfilled": True,
                   }, **kw)

    def table(self, title, expr, *, hide=(), description="", **kw):
        self.panel("table", title, [(expr, "")], description=description, instant=True, table=True,
                   options={"showHeader": True, "cellHeight": "sm"},
                   transformations=[{"id": "organize", "options": {
                       "excludeByName": {name: True for name in ("Time", "__name__", *hide)},
                   }}], **kw)


def var_datasource():
    return {
        "current": {}, "hide": 0, "includeAll": False, "label": "Data source", "multi": False,
        "name": "datasource", "options": [], "query": "prometheus", "refresh": 1, "regex": "",
        "type": "datasource",
    }


def var_query(name, label, query, *, multi=True, include_all=True):
    v = {
        "current": {}, "datasource": DS, "definition": query, "hide": 0,
        "includeAll": include_all, "label": label, "multi": multi, "name": name, "options": [],
        "query": query,  # a plain string: every Grafana version reads it (and converts it in its editor)
        "refresh": 2, "regex": "", "sort": 1, "type": "query",
    }
    if include_all:
        v["allValue"] = ".*"
    return v


def var_textbox(name, label, default, description):
    return {
        "current": {"text": default, "value": default}, "description": description, "hide": 0,
        "label": label, "name": name, "options": [{"selected": True, "text": default, "value": default}],
        "query": default, "type": "textbox",
    }


def dashboard(uid, title, description, board, variables, tags=()):
    return {
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
            "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
            "type": "dashboard",
        }]},
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [{
            "asDropdown": True, "icon": "external link", "includeVars": False, "keepTime": True,
            "tags": ["gpu-pod-exporter"], "targetBlank": False, "title": "GPU dashboards",
            "type": "dashboards",
        }],
        "panels": board.panels,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["gpu-pod-exporter", "gpu", *tags],
        "templating": {"list": variables},
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


def gpu_node():
    b = Board()
    sel = 'node=~"$node", gpu=~"$gpu"'
    nsel = 'node=~"$node"'
    red_above_0 = [{"color": "green", "value": None}, {"color": "red", "value": 1}]
    b.row("Overview")
    b.stat("GPUs", f"count(gpu_info{{{sel}}})", description="Devices the agents report (MIG instances count as devices).")
    b.stat("GPUs down", f"count(gpu_up{{{sel}}} == 0) or vector(0)", thresholds=red_above_0,
           description="Devices whose last sample failed or hung (gpu_up 0); alert GPUDown after 5 minutes.")
    b.stat("Collectors failing", f"count(gpu_pod_exporter_collector_success{{{nsel}}} == 0) or vector(0)",
           thresholds=red_above_0, description="Agents whose collector's last cycle failed.")
    b.stat("Mean utilization", f"avg(gpu_utilization_ratio{{{sel}}})", unit="percentunit", decimals=1)
    b.stat("Memory in use", f"sum(gpu_memory_used_bytes{{{sel}}}) / sum(gpu_memory_total_bytes{{{sel}}})",
           unit="percentunit", decimals=1)
    b.stat("Power", f"sum(gpu_power_watts{{{sel}}})", unit="watt")

    b.row("Devices")
    legend = "{{node}} gpu {{gpu}}"
    b.timeseries("GPU utilization", [(f"gpu_utilization_ratio{{{sel}}}", legend)], unit="percentunit", min_=0, max_=1,
                 description="Share of the driver's sample period in which a kernel ran (NVML) or the GPU was busy (amdgpu).")
    b.timeseries("Memory bandwidth utilization", [(f"gpu_memory_bandwidth_utilization_ratio{{{sel}}}", legend)],
                 unit="percentunit", min_=0, max_=1)
    b.timeseries("Memory used and total", [
        (f"gpu_memory_used_bytes{{{sel}}}", "used {{node}} gpu {{gpu}}"),
        (f"gpu_memory_total_bytes{{{sel}}}", "total {{node}} gpu {{gpu}}"),
    ], unit="bytes", min_=0, overrides=[{
        "matcher": {"id": "byFrameRefID", "options": "B"},
        "properties": [{"id": "custom.lineStyle", "value": {"dash": [10, 10], "fill": "dash"}},
                       {"id": "custom.fillOpacity", "value": 0}],
    }])
    b.timeseries("Memory held outside pods", [(f"gpu_unattributed_memory_bytes{{{sel}}}", legend)],
                 unit="bytes", min_=0,
                 description="GPU memory of processes in no pod: host daemons and jobs, an MPS server, "
                             "processes the agent could not attribute (gpu_unattributed_memory_bytes).")
    b.timeseries("Power and its limit", [
        (f"gpu_power_watts{{{sel}}}", legend),
        (f"gpu_power_limit_watts{{{sel}}}", "limit {{node}} gpu {{gpu}}"),
    ], unit="watt", min_=0, overrides=[{
        "matcher": {"id": "byFrameRefID", "options": "B"},
        "properties": [{"id": "custom.lineStyle", "value": {"dash": [10, 10], "fill": "dash"}},
                       {"id": "custom.fillOpacity", "value": 0}],
    }], description="Power draw, and (dashed) the limit the driver enforces (NVIDIA, read every health interval).")
    b.timeseries("Temperature", [(f"gpu_temperature_celsius{{{sel}}}", legend)], unit="celsius")
    b.timeseries("SM clock", [(f"gpu_sm_clock_hertz{{{sel}}}", legend)], unit="hertz", min_=0)
    b.timeseries("SM, tensor and DRAM activity (GPM)", [
        (f"gpu_sm_active_ratio{{{sel}}}", "SM active {{node}} gpu {{gpu}}"),
        (f"gpu_tensor_active_ratio{{{sel}}}", "tensor active {{node}} gpu {{gpu}}"),
        (f"gpu_dram_active_ratio{{{sel}}}", "DRAM active {{node}} gpu {{gpu}}"),
    ], unit="percentunit", min_=0, max_=1,
        description="NVIDIA GPM (Hopper and newer): what share of the SMs and tensor pipes actually work, which "
                    "gpu_utilization_ratio does not tell. No data on older GPUs, on AMD, or where the driver "
                    "restricts profiling counters to admin users.")
    b.timeseries("Processes per GPU", [(f"gpu_processes{{{sel}}}", legend)], min_=0, field={"decimals": 0})
    b.panel("state-timeline", "GPU up", [(f"gpu_up{{{sel}}}", legend)], w=24, h=6,
            description="1 when the device answered its last sample, 0 when it failed or hung.",
            field={"color": {"mode": "thresholds"},
                   "mappings": [{"type": "value", "options": {
                       "0": {"color": "red", "index": 0, "text": "down"},
                       "1": {"color": "green", "index": 1, "text": "up"}}}],
                   "thresholds": {"mode": "absolute", "steps": [
                       {"color": "red", "value": None}, {"color": "green", "value": 1}]}},
            options={"showValue": "never", "mergeValues": True, "rowHeight": 0.8,
                     "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False}})
    b.table("Devices", f"gpu_info{{{sel}}}", w=24, h=7,
            hide=("Value", "job", "instance", "namespace", "pod", "container", "endpoint", "service"),
            description="Model, driver and PCI address of every device (gpu_info).")

    b.row("Health (NVIDIA)")
    b.timeseries("XID errors", [(
        f"increase(gpu_xid_errors_total{{{sel}}}[$__rate_interval]) > 0", "{{node}} gpu {{gpu}} XID {{xid}}")],
        min_=0, w=8, field={"decimals": 0, "custom": {"drawStyle": "bars", "fillOpacity": 80, "lineWidth": 1,
                                                      "showPoints": "never", "spanNulls": False}},
        description="XID events by code. 48, 63, 64, 74, 79, 92, 94, 95, 119 and 120 point at the hardware or the "
                    "driver (alert GPUHardwareXidError); 13, 31 and 43 are usually the application's own faults. "
                    "A device's counter appears with its first event.")
    b.timeseries("ECC errors", [(
        f"rate(gpu_ecc_errors_total{{{sel}}}[$__rate_interval]) > 0", "{{node}} gpu {{gpu}} {{type}}")],
        unit="cps", min_=0, w=8, description="Aggregate ECC errors per second. Uncorrected ones alert (GPUUncorrectedECCErrors).")
    b.timeseries("Clock slowdown reasons active", [(
        f"gpu_clock_throttled{{{sel}}} == 1", "{{node}} gpu {{gpu}} {{reason}}")],
        min_=0, max_=1, w=8, field={"decimals": 0, "custom": {"drawStyle": "points", "pointSize": 4, "fillOpacity": 0,
                                                            "lineWidth": 1, "showPoints": "always", "spanNulls": False}},
        description="Clock event reasons while active. sw_power_cap is normal under load; the hw_* reasons mean the "
                    "hardware is slowing the GPU down (alert GPUHardwareSlowdown).")
    b.timeseries("PCIe throughput", [
        (f"gpu_pcie_transmit_bytes_per_second{{{sel}}}", "tx {{node}} gpu {{gpu}}"),
        (f"gpu_pcie_receive_bytes_per_second{{{sel}}}", "rx {{node}} gpu {{gpu}}"),
    ], unit="Bps", min_=0, w=8)
    b.timeseries("NVLink throughput", [
        (f"rate(gpu_nvlink_transmit_bytes_total{{{sel}}}[$__rate_interval])", "tx {{node}} gpu {{gpu}}"),
        (f"rate(gpu_nvlink_receive_bytes_total{{{sel}}}[$__rate_interval])", "rx {{node}} gpu {{gpu}}"),
    ], unit="Bps", min_=0, w=8, description="All links summed. No data on GPUs without NVLink.")
    b.timeseries("PCIe replay errors", [(
        f"rate(gpu_pcie_replay_errors_total{{{sel}}}[$__rate_interval])", "{{node}} gpu {{gpu}}")],
        unit="cps", min_=0, w=8, description="A rising rate points at a bad riser, slot or link.")
    b.timeseries("Time throttled, by reason", [(
        f"rate(gpu_throttle_seconds_total{{{sel}}}[$__rate_interval]) > 0", "{{node}} gpu {{gpu}} {{reason}}")],
        unit="percentunit", min_=0, max_=1, w=8,
        description="Share of time the clocks were held below their target, by NVML's violation counters. power is "
                    "normal for a GPU running flat out (alert GPUPowerThrottling, info, above half the time); "
                    "thermal means the cooling cannot keep up (alert GPUThermalThrottling, above a tenth).")
    b.timeseries("Memory temperature and clock", [
        (f"gpu_memory_temperature_celsius{{{sel}}}", "{{node}} gpu {{gpu}}"),
        (f"gpu_memory_clock_hertz{{{sel}}} / 1e6", "clock MHz {{node}} gpu {{gpu}}"),
    ], w=8, description="HBM temperature (absent on GDDR boards) and the memory clock in MHz.")
    b.table("Row remapping", f"max by (node, gpu, uuid) (gpu_row_remap_pending{{{sel}}} + 2 * gpu_row_remap_failed{{{sel}}}) > 0",
            w=8, h=8, description="GPUs with a remap pending (1: reset the GPU when drained; alert GPURowRemapPending) or "
                                  "failed (2 or 3: the GPU needs service; alert GPURowRemapFailed). Empty when all is well. "
                                  "NVML reports none for a GPU with MIG instances.",
            overrides=[{"matcher": {"id": "byName", "options": "Value"},
                        "properties": [{"id": "mappings", "value": [{"type": "value", "options": {
                            "1": {"color": "orange", "index": 0, "text": "pending: reset"},
                            "2": {"color": "red", "index": 1, "text": "failed: service"},
                            "3": {"color": "red", "index": 2, "text": "failed: service"}}}]},
                                       {"id": "custom.cellOptions", "value": {"type": "color-background"}}]}])

    b.row("Agent")
    b.timeseries("Collector success", [(f"gpu_pod_exporter_collector_success{{{nsel}}}", "{{node}} {{collector}}")],
                 min_=0, max_=1, w=8)
    b.timeseries("Driver call errors", [(
        f"sum by (node, collector, call, error) (rate(gpu_pod_exporter_driver_call_errors_total{{{nsel}}}[$__rate_interval]))",
        "{{node}} {{call}} {{error}}")], unit="reqps", min_=0, w=8,
        description="Failed driver calls per second, by call family and error.")
    b.timeseries("Collector cycle duration", [(f"gpu_pod_exporter_collector_duration_seconds{{{nsel}}}", "{{node}} {{collector}}")],
                 unit="s", min_=0, w=8)
    b.timeseries("Scrape up", [(f'up{{job="gpu-pod-exporter", {nsel}}}', "{{node}}")], min_=0, max_=1, w=8)
    b.timeseries("Agent resident memory", [(f'process_resident_memory_bytes{{job="gpu-pod-exporter", {nsel}}}', "{{node}}")],
                 unit="bytes", min_=0, w=8)
    b.timeseries("Agent CPU", [(f'rate(process_cpu_seconds_total{{job="gpu-pod-exporter", {nsel}}}[$__rate_interval])', "{{node}}")],
                 unit="short", min_=0, w=8, description="CPU cores the agent uses.")

    return dashboard("gpu-pod-exporter-node", "GPU / Nodes",
                     "Devices on each GPU node: load, memory, power, health, and the agent itself.", b, [
                         var_datasource(),
                         var_query("node", "Node", "label_values(gpu_info, node)"),
                         var_query("gpu", "GPU", 'label_values(gpu_info{node=~"$node"}, gpu)'),
                     ], tags=("nodes",))


def gpu_workloads():
    b = Board()
    ns = 'namespace=~"$namespace"'
    nsp = 'namespace=~"$namespace", pod=~"$pod"'
    b.row("Overview")
    b.stat("GPUs allocated", f"sum(pod_gpu_allocated{{{ns}}}) or vector(0)", w=6,
           description="Devices the kubelet allocated to containers.")
    b.stat("Allocated, idle 30 min", f"count({IDLE_ALLOCATED}) or vector(0)", w=6,
           thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 1}],
           description="Allocated GPUs whose container used under 1 % of them in the last 30 minutes (alert GPUAllocatedButIdle).")
    b.stat("Busy GPU-equivalents", f"sum(pod_gpu_utilization_ratio{{{ns}}}) or vector(0)", w=6, decimals=2,
           description="The pods' utilization ratios added up: how many whole GPUs their work would fill.")
    b.stat("Pods on GPUs", f"count(namespace_pod:pod_gpu_memory_used_bytes:sum{{{ns}}} > 0) or vector(0)", w=6,
           description="Pods holding GPU memory.")

    b.row("Pods")
    b.timeseries("GPU utilization by pod", [(
        f"namespace_pod:pod_gpu_utilization_ratio:avg1m{{{nsp}}}", "{{namespace}}/{{pod}}")],
        unit="percentunit", min_=0, max_=1,
        description="Each pod's GPU utilization, averaged over its GPUs and the last minute: the value the "
                    "Prometheus Adapter serves the HPA as gpu_utilization_ratio.")
    b.timeseries("GPU memory by pod", [(
        f"namespace_pod:pod_gpu_memory_used_bytes:sum{{{nsp}}}", "{{namespace}}/{{pod}}")], unit="bytes", min_=0)
    b.timeseries("Tensor-pipe activity by pod (GPM)", [(
        f"namespace_pod:pod_gpu_tensor_active_ratio:avg1m{{{nsp}}}", "{{namespace}}/{{pod}}")],
        unit="percentunit", min_=0, description=GPM_PER_POD + " For an LLM server this keeps rising with "
                                                            "the load where GPU utilization has flattened out.")
    b.timeseries("SM activity by pod (GPM)", [
        (f"namespace_pod:pod_gpu_sm_active_ratio:avg1m{{{nsp}}}", "SM active {{namespace}}/{{pod}}"),
        (f"namespace_pod:pod_gpu_sm_occupancy_ratio:avg1m{{{nsp}}}", "SM occupancy {{namespace}}/{{pod}}"),
    ], unit="percentunit", min_=0, max_=1,
        description=GPM_PER_POD + " SM active: share of time the SMs had work; occupancy: resident warps "
                                  "over the maximum.")
    b.timeseries("GPU utilization by container and GPU", [(
        f"pod_gpu_utilization_ratio{{{nsp}}}", "{{namespace}}/{{pod}}/{{container}} {{node}} gpu {{gpu}}")],
        unit="percentunit", min_=0, max_=1, w=24,
        description="The agent's own series: one per container and device. Shared devices without per-process "
                    "data have none (the agent never guesses).")
    b.bargauge("Top 10 pods by GPU utilization", f"topk(10, namespace_pod:pod_gpu_utilization_ratio:avg1m{{{ns}}})",
               "{{namespace}}/{{pod}}", unit="percentunit", min_=0, max_=1)
    b.bargauge("Top 10 pods by GPU memory", f"topk(10, namespace_pod:pod_gpu_memory_used_bytes:sum{{{ns}}})",
               "{{namespace}}/{{pod}}", unit="bytes", min_=0)
    b.table("Allocated but idle (under 1 % for 30 min)", IDLE_ALLOCATED, w=24, h=7,
            hide=("Value", "job", "instance", "endpoint", "service"),
            description="Containers that hold a GPU they do not use: the waste the GPUAllocatedButIdle alert reports.")

    b.row("Namespaces and workloads")
    b.timeseries("GPU utilization by namespace", [(
        f"namespace:pod_gpu_utilization_ratio:avg1m{{{ns}}}", "{{namespace}}")], unit="percentunit", min_=0, max_=1)
    b.timeseries("GPUs allocated and busy by namespace", [
        (f"namespace:pod_gpu_allocated:sum{{{ns}}}", "allocated {{namespace}}"),
        (f"sum by (namespace) (pod_gpu_utilization_ratio{{{ns}}})", "busy {{namespace}}"),
    ], min_=0, description="Allocated GPUs against the GPU-equivalents their pods keep busy.")
    b.timeseries("GPU utilization by workload", [(
        f"namespace_workload:pod_gpu_utilization_ratio:avg1m{{{ns}}}", "{{namespace}}/{{workload}} ({{workload_type}})")],
        unit="percentunit", min_=0, max_=1,
        description="Mean of the workload's pods' utilization. " + KSM)
    b.timeseries("GPUs allocated by workload", [(
        f"namespace_workload:pod_gpu_allocated:sum{{{ns}}}", "{{namespace}}/{{workload}} ({{workload_type}})")],
        min_=0, description=KSM)

    b.row("Attribution")
    b.timeseries("Attribution failures", [(
        "sum by (reason) (rate(gpu_pod_exporter_attribution_failures_total[$__rate_interval]))", "{{reason}}")],
        unit="reqps", min_=0, w=24,
        description="GPU processes or allocations the agents could not match to a pod, per second, by reason. "
                    "process_vanished is normal churn; anything else that persists hides pods from this dashboard.")

    return dashboard("gpu-pod-exporter-workloads", "GPU / Workloads",
                     "Which pods, namespaces and workloads use the GPUs, how much, and which hold GPUs idle.", b, [
                         var_datasource(),
                         var_query("namespace", "Namespace",
                                   'label_values({__name__=~"pod_gpu_utilization_ratio|pod_gpu_memory_used_bytes|pod_gpu_allocated"}, namespace)'),
                         var_query("pod", "Pod",
                                   'label_values({__name__=~"pod_gpu_utilization_ratio|pod_gpu_memory_used_bytes|pod_gpu_allocated", namespace=~"$namespace"}, pod)'),
                     ], tags=("workloads",))


def gpu_autoscaling():
    b = Board()
    hpa = 'namespace="$namespace", horizontalpodautoscaler="$hpa"'
    # Exactly the query the Prometheus Adapter renders for the HPA (prometheus-adapter-values.yaml).
    per_pod_tensor = 'avg by (pod) (avg_over_time(pod_gpu_tensor_active_ratio{namespace="$namespace", pod=~"$pods"}[1m]))'
    per_pod_util = 'avg by (pod) (avg_over_time(pod_gpu_utilization_ratio{namespace="$namespace", pod=~"$pods"}[1m]))'
    per_pod_queue = 'sum by (pod) (avg_over_time(vllm:num_requests_waiting{namespace="$namespace", pod=~"$pods"}[1m]))'
    per_pod_done = 'sum by (pod) (rate(vllm:request_success_total{namespace="$namespace", pod=~"$pods"}[1m]))'
    # kube-state-metrics exports fractional targets (milli-value / 1000) since v2.4.2.
    tensor_target = (f'kube_horizontalpodautoscaler_spec_target_metric{{{hpa}, metric_name="gpu_tensor_active_ratio", '
                     'metric_target_type="average"}')
    queue_target = (f'kube_horizontalpodautoscaler_spec_target_metric{{{hpa}, metric_name="vllm_num_requests_waiting", '
                    'metric_target_type="average"}')
    done_target = (f'kube_horizontalpodautoscaler_spec_target_metric{{{hpa}, metric_name="vllm_request_success_rate", '
                   'metric_target_type="average"}')
    dashed = [{"matcher": {"id": "byRegexp", "options": "target.*|tolerance.*"},
               "properties": [{"id": "custom.lineStyle", "value": {"dash": [10, 10], "fill": "dash"}},
                              {"id": "custom.fillOpacity", "value": 0}]}]

    b.row("Replicas")
    b.stat("Current replicas", f"kube_horizontalpodautoscaler_status_current_replicas{{{hpa}}}", w=6, description=KSM)
    b.stat("Desired replicas", f"kube_horizontalpodautoscaler_status_desired_replicas{{{hpa}}}", w=6, description=KSM)
    b.stat("Min replicas", f"kube_horizontalpodautoscaler_spec_min_replicas{{{hpa}}}", w=6, description=KSM)
    b.stat("Max replicas", f"kube_horizontalpodautoscaler_spec_max_replicas{{{hpa}}}", w=6, description=KSM)
    b.timeseries("Replicas: current, desired, and each metric's proposal", [
        (f"kube_horizontalpodautoscaler_status_current_replicas{{{hpa}}}", "current"),
        (f"kube_horizontalpodautoscaler_status_desired_replicas{{{hpa}}}", "desired"),
        (f"ceil(sum({per_pod_tensor}) / scalar({tensor_target}))", "tensor activity proposes"),
        (f"ceil(sum({per_pod_queue}) / scalar({queue_target}))", "queue proposes"),
        (f"ceil(sum({per_pod_done}) / scalar({done_target}))", "finished rate proposes"),
        (f"kube_horizontalpodautoscaler_spec_max_replicas{{{hpa}}}", "max"),
    ], min_=0, w=24, field={"decimals": 0},
        description="Each metric's proposal is ceil(sum of the pods' values / target) = ceil(pods x mean / target), "
                    "before the HPA's 0.1 tolerance, min/max and behavior limits; the HPA takes the largest. A metric "
                    "the HPA does not have draws no line (hpa.yaml: tensor activity and the queue; "
                    "hpa-engine-signals.yaml: the finished rate and the queue). Current, desired, max and the "
                    "targets: " + KSM)

    b.row("Can the HPAs scale? (conditions)")
    b.table("HPA conditions in $namespace",
            'max by (horizontalpodautoscaler, condition, status) (kube_horizontalpodautoscaler_status_condition'
            '{namespace="$namespace", condition=~"ScalingActive|AbleToScale"} == 1)',
            w=12, h=8, hide=("Value",),
            description="Every HPA of the namespace, with the status of its ScalingActive and AbleToScale conditions. "
                        "ScalingActive false: the HPA cannot get its metric and holds its replicas (alert "
                        "HPAScalingInactive after 10 minutes; `kubectl describe hpa` says why, docs/autoscaling.md "
                        "gives the recipe for each GPU), or its target is scaled to zero. AbleToScale false: it cannot "
                        "read or write its target's scale. " + KSM,
            overrides=[{"matcher": {"id": "byName", "options": "status"},
                        "properties": [{"id": "mappings", "value": [{"type": "value", "options": {
                            "true": {"color": "green", "index": 0},
                            "false": {"color": "red", "index": 1},
                            "unknown": {"color": "orange", "index": 2}}}]},
                                       {"id": "custom.cellOptions", "value": {"type": "color-background"}}]}])
    b.panel("state-timeline", "ScalingActive and AbleToScale of $hpa", [
        (f'max by (condition) (kube_horizontalpodautoscaler_status_condition{{{hpa}, condition=~"ScalingActive|AbleToScale", status="true"}})',
         "{{condition}}"),
    ], w=12, h=8,
        description="1 (true) while the condition holds. ScalingActive false: no usable metric, the replicas stay where "
                    "they are. " + KSM,
        field={"color": {"mode": "thresholds"},
               "mappings": [{"type": "value", "options": {
                   "0": {"color": "red", "index": 0, "text": "false"},
                   "1": {"color": "green", "index": 1, "text": "true"}}}],
               "thresholds": {"mode": "absolute", "steps": [
                   {"color": "red", "value": None}, {"color": "green", "value": 1}]}},
        options={"showValue": "never", "mergeValues": True, "rowHeight": 0.8,
                 "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}})

    b.row("Tensor activity metric (gpu_tensor_active_ratio)")
    b.timeseries("Per-pod value served to the HPA", [(per_pod_tensor, "{{pod}}")], unit="percentunit", min_=0,
                 description="The Prometheus Adapter's query for gpu_tensor_active_ratio, as it renders it for the HPA's "
                             "pods. " + GPM_PER_POD)
    b.timeseries("Mean against target", [
        (f"avg({per_pod_tensor})", "mean of pods"),
        (f'kube_horizontalpodautoscaler_status_target_metric{{{hpa}, metric_name="gpu_tensor_active_ratio", metric_target_type="average"}}',
         "HPA's current value"),
        (tensor_target, "target"),
        (f"{tensor_target} * 1.1", "tolerance: scale out above"),
        (f"{tensor_target} * 0.9", "tolerance: scale in below"),
    ], unit="percentunit", min_=0, overrides=dashed,
        description="The HPA scales on the mean of the per-pod values. The target and the HPA's current value: " + KSM)

    b.row("Queue metric (vllm_num_requests_waiting): the load the users see")
    b.timeseries("Requests waiting per pod (vLLM)", [(per_pod_queue, "{{pod}}")], min_=0,
                 description="vLLM's vllm:num_requests_waiting, as the adapter serves it to the HPA (needs vLLM's "
                             "metrics scraped, vllm-podmonitor.yaml). Zero while the replicas keep up; it grows with "
                             "any overload and then drives the scale-out. A queue that stays above 0 between bursts "
                             "says the load signal's target is too high for this model (docs/autoscaling.md).")
    b.timeseries("Queue: mean against target", [
        (f"avg({per_pod_queue})", "mean of pods"),
        (queue_target, "target"),
        (f"{queue_target} * 1.1", "tolerance: scale out above"),
    ], min_=0, overrides=dashed,
        description="The HPA scales out on the queue when the mean passes the target by more than the tolerance. "
                    "The target: " + KSM)

    b.row("Finished-request rate (vllm_request_success_rate, the engine-signal recipe)")
    b.timeseries("Requests finished per second, per pod", [(per_pod_done, "{{pod}}")], min_=0, unit="reqps",
                 description="rate(vllm:request_success_total[1m]) per pod, as the adapter serves it to "
                             "hpa-engine-signals.yaml's HPA (GPUs without a load signal). It follows the load up to a "
                             "replica's capacity, then stays there: the queue beside it covers the rest.")
    b.timeseries("Finished rate: mean against target", [
        (f"avg({per_pod_done})", "mean of pods"),
        (done_target, "target"),
        (f"{done_target} * 1.1", "tolerance: scale out above"),
        (f"{done_target} * 0.9", "tolerance: scale in below"),
    ], min_=0, unit="reqps", overrides=dashed,
        description="Empty for an HPA that does not scale on it. A mean pinned under the target while the queue "
                    "grows says one replica now finishes fewer requests than the target assumes (longer answers): "
                    "measure the capacity again. The target: " + KSM)

    b.row("Why not NVML utilization")
    b.timeseries("Why not NVML utilization: both against the load", [
        (f"avg({per_pod_util})", "mean NVML utilization"),
        (f"avg({per_pod_tensor}) / scalar({tensor_target})", "mean tensor activity / target"),
    ], unit="percentunit", min_=0,
        description="NVML utilization reads ~0.9 from 41 % of an LLM server's capacity on (measured on an H200), so "
                    "an HPA on it holds replicas the load does not need; tensor activity keeps following the load. "
                    "See docs/autoscaling.md.")

    return dashboard("gpu-pod-exporter-autoscaling", "GPU / Autoscaling",
                     "An HPA that scales an LLM server on its GPUs' tensor activity (or, without a GPU load signal, "
                     "its finished-request rate) beside its queue: each metric against its target, the replicas "
                     "each proposes, what the HPA did, and whether it can scale at all.", b, [
                         var_datasource(),
                         # Namespaces with GPU pods, whether or not their GPUs give the HPA's metric: the
                         # dashboard must show an HPA that cannot get it.
                         var_query("namespace", "Namespace",
                                   'label_values({__name__=~"pod_gpu_allocated|pod_gpu_tensor_active_ratio"}, namespace)',
                                   multi=False, include_all=False),
                         var_query("hpa", "HPA",
                                   'label_values(kube_horizontalpodautoscaler_spec_max_replicas{namespace="$namespace"}, horizontalpodautoscaler)',
                                   multi=False, include_all=False),
                         var_textbox("pods", "Pods (regex)", "vllm-.*",
                                     "A regex of the names of the pods the HPA scales (Deployment vllm: vllm-.*)."),
                     ], tags=("autoscaling",))


BOARDS = {
    "gpu-node.json": gpu_node,
    "gpu-workloads.json": gpu_workloads,
    "gpu-autoscaling.json": gpu_autoscaling,
}


def render(fn):
    return json.dumps(fn(), indent=2, ensure_ascii=False) + "\n"


def main(argv):
    if argv not in (["--write"], ["--check"]):
        print(__doc__, file=sys.stderr)
        return 2
    stale = []
    for name, fn in BOARDS.items():
        path = OUT / name
        text = render(fn)
        if argv == ["--write"]:
            OUT.mkdir(exist_ok=True)
            path.write_text(text)
        elif not path.exists() or path.read_text() != text:
            stale.append(str(path.relative_to(ROOT)))
    if stale:
        print("dashboards out of date (run `python3 scripts/dashboards.py --write`): " + ", ".join(stale),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
