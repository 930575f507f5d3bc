#!/usr/bin/env python3
"""Checks the deployment artifacts: manifests, rules, adapter/KEDA queries and dashboards.

Run by scripts/check-deploy.sh, which installs the tools and renders the kustomize overlays first:

    check_deploy.py check --rendered DIR --promtool PATH   (the chart is rendered beside DIR)
    check_deploy.py sync [--write]      the generated copies (PrometheusRule, the chart's files/)
    check_deploy.py expressions [--var NAME=VALUE ...]   every shipped PromQL expression, as JSON lines

`check` needs PyYAML, kubernetes-validate and helm-python-sdk (installed by check-deploy.sh into a
venv under target/). The object checks are in check_objects.py, the chart's in check_chart.py. Every failure is printed; the exit status is 1 if there was any.
"""

import argparse
import contextlib
import io
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_chart  # noqa: E402
import check_objects  # noqa: E402
import promql_names  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "daemonset/rules/gpu-pod-exporter.rules.yaml"
RULES_TEST = ROOT / "daemonset/rules/gpu-pod-exporter.rules.test.yaml"
PROMETHEUS_RULE = ROOT / "daemonset/overlays/prometheus-operator/prometheusrule.yaml"
SCRAPE_CONFIG = ROOT / "daemonset/prometheus/scrape-config.yaml"
AUTOSCALING = ROOT / "daemonset/autoscaling"
ADAPTER_VALUES = AUTOSCALING / "prometheus-adapter-values.yaml"
DASHBOARDS = ROOT / "dashboards"
DOCKERFILE = ROOT / "Dockerfile"

# The agent's series (fixed names). docs/metrics.md and the golden files add to
# this list whatever else the agent documents or emits (process_*, driver call errors, ...).
AGENT_METRICS = {
    "gpu_info", "gpu_up", "gpu_utilization_ratio", "gpu_memory_bandwidth_utilization_ratio",
    "gpu_memory_used_bytes", "gpu_memory_total_bytes", "gpu_power_watts", "gpu_temperature_celsius",
    "gpu_sm_clock_hertz", "gpu_sm_active_ratio", "gpu_sm_occupancy_ratio", "gpu_tensor_active_ratio",
    "gpu_dram_active_ratio", "gpu_energy_joules_total", "gpu_ecc_errors_total", "gpu_xid_errors_total",
    "gpu_clock_throttled", "gpu_pcie_transmit_bytes_per_second", "gpu_pcie_receive_bytes_per_second",
    "gpu_pcie_replay_errors_total", "gpu_nvlink_transmit_bytes_total", "gpu_nvlink_receive_bytes_total",
    "gpu_encoder_utilization_ratio", "gpu_decoder_utilization_ratio", "gpu_processes",
    "gpu_memory_reserved_bytes", "gpu_memory_clock_hertz", "gpu_memory_temperature_celsius",
    "gpu_power_limit_watts", "gpu_remapped_rows_total", "gpu_row_remap_pending", "gpu_row_remap_failed",
    "gpu_throttle_seconds_total",
    "gpu_unattributed_memory_bytes", "gpu_unattributed_processes",
    "pod_gpu_utilization_ratio", "pod_gpu_memory_used_bytes", "pod_gpu_allocated",
    "pod_gpu_sm_active_ratio", "pod_gpu_sm_occupancy_ratio", "pod_gpu_tensor_active_ratio",
    "pod_gpu_dram_active_ratio",
    "gpu_pod_exporter_build_info", "gpu_pod_exporter_collector_success",
    "gpu_pod_exporter_collector_duration_seconds", "gpu_pod_exporter_attribution_failures_total",
    "gpu_pod_exporter_driver_call_errors_total",
}

# Series from other sources that the rules and dashboards may read. Queries on them return no
# data where that source is not deployed: the report lists which files depend on which.
EXTERNAL_METRICS = {
    "prometheus": {"up"},
    "kube-state-metrics": {
        "kube_pod_owner", "kube_replicaset_owner", "kube_pod_labels",
        "kube_node_info", "kube_node_status_capacity", "kube_pod_info", "kube_pod_status_ready",
        "kube_horizontalpodautoscaler_spec_target_metric",
        "kube_horizontalpodautoscaler_status_target_metric",
        "kube_horizontalpodautoscaler_status_current_replicas",
        "kube_horizontalpodautoscaler_status_desired_replicas",
        "kube_horizontalpodautoscaler_spec_min_replicas",
        "kube_horizontalpodautoscaler_spec_max_replicas",
        "kube_horizontalpodautoscaler_status_condition",
    },
    "vllm": {"vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc",
             "vllm:request_success_total"},
}

PROMETHEUS_RULE_HEADER = """\
# GENERATED from daemonset/rules/gpu-pod-exporter.rules.yaml by `scripts/check-deploy.sh --fix`.
# Do not edit: edit the plain rule file, then regenerate. CI fails when the two differ.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: gpu-pod-exporter
  namespace: gpu-pod-exporter
  labels:
    app.kubernetes.io/name: gpu-pod-exporter
    app.kubernetes.io/part-of: gpu-pod-exporter
spec:
"""


class Report:
    def __init__(self):
        self.failures = []
        self.notes = []

    def fail(self, where, msg):
        self.failures.append(f"{where}: {msg}")

    def ok(self, msg):
        print(f"  ok: {msg}")


def rel(path):
    return str(Path(path).resolve().relative_to(ROOT))


# ---------------------------------------------------------------------------------------------
# Rules: the PrometheusRule is the plain rule file, indented under `spec:`.

def prometheus_rule_text():
    body = RULES.read_text()
    lines = [("  " + line) if line.strip() else "" for line in body.splitlines()]
    return PROMETHEUS_RULE_HEADER + "\n".join(lines) + "\n"


def sync_rules(write):
    want = prometheus_rule_text()
    if write:
        PROMETHEUS_RULE.write_text(want)
        return 0
    if not PROMETHEUS_RULE.exists() or PROMETHEUS_RULE.read_text() != want:
        print(f"{rel(PROMETHEUS_RULE)} is not generated from {rel(RULES)}: run scripts/check-deploy.sh --fix",
              file=sys.stderr)
        return 1
    return 0


def check_rules(rep, promtool):
    print("==> rules")
    plain = yaml.safe_load(RULES.read_text())
    run(rep, [promtool, "check", "rules", str(RULES)], "promtool check rules " + rel(RULES))
    run(rep, [promtool, "test", "rules", RULES_TEST.name], "promtool test rules " + rel(RULES_TEST),
        cwd=RULES_TEST.parent)
    if sync_rules(write=False):
        rep.fail(rel(PROMETHEUS_RULE), "differs from the text generated from the plain rule file")
    else:
        cr = yaml.safe_load(PROMETHEUS_RULE.read_text())
        if cr.get("spec", {}).get("groups") != plain["groups"]:
            rep.fail(rel(PROMETHEUS_RULE), "spec.groups differ from the plain rule file's groups")
        else:
            rep.ok(f"{rel(PROMETHEUS_RULE)} == {rel(RULES)} (text and parsed groups)")
    records = record_needs()
    for group in plain["groups"]:
        # Each group's cost is fitted to its purpose, not left to the server's evaluation_interval
        # (docs/operations.md, "At fleet scale").
        if "interval" not in group:
            rep.fail(rel(RULES), f"rule group {group['name']} sets no interval")
        for rule in group["rules"]:
            if "record" in rule:
                if rule["record"].count(":") != 2:
                    rep.fail(rel(RULES), f"recording rule {rule['record']} is not named level:metric:operations")
            else:
                name = rule["alert"]
                if rule.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
                    rep.fail(rel(RULES), f"alert {name} has no severity label (critical, warning or info)")
                for key in ("summary", "description"):
                    if not rule.get("annotations", {}).get(key):
                        rep.fail(rel(RULES), f"alert {name} has no {key} annotation")
    rep.ok(f"{len(records)} recording rule names, every group has an interval, every alert has severity, "
           "summary and description")
    return records


def record_needs():
    """Recording rule name -> the other exporters it needs (transitively, through other rules)."""
    records = {}
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                needs = records.setdefault(rule["record"], set())
                for n in promql_names.metric_names(rule["expr"]):
                    needs.update(records.get(n, set()))
                    needs.update(src for src, names in EXTERNAL_METRICS.items() if n in names)
    return records


def expr_needs(expr, records):
    """The exporters besides gpu-pod-exporter (and Prometheus itself) an expression reads."""
    needs = set()
    for n in promql_names.metric_names(expr):
        needs.update(records.get(n, set()))
        needs.update(src for src, names in EXTERNAL_METRICS.items() if n in names)
    return sorted(needs - {"prometheus"})


def rule_expressions():
    plain = yaml.safe_load(RULES.read_text())
    for group in plain["groups"]:
        for rule in group["rules"]:
            yield f"{rel(RULES)} {rule.get('record') or rule.get('alert')}", rule["expr"]


# ---------------------------------------------------------------------------------------------
# Kubernetes objects.

def load_docs(path):
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d]


def check_dockerfile(rep, spec, image):
    """The Dockerfile agrees with the DaemonSet (port, entry point, user) and pins its bases."""
    text = DOCKERFILE.read_text()
    expose = re.findall(r"^EXPOSE\s+(\d+)", text, re.M)
    entry = re.findall(r"^ENTRYPOINT\s+(.*)$", text, re.M)
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)\s*$", text, re.M))
    froms = [re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), f)
             for f in re.findall(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+\S+)?\s*$", text, re.M | re.I)]
    user = spec.get("securityContext", {}).get("runAsUser")
    if expose != ["9445"]:
        rep.fail(rel(DOCKERFILE), f"EXPOSE {expose} does not match the manifests' port 9445")
    if not entry or json.loads(entry[-1]) != ["/usr/local/bin/gpu-pod-exporter"]:
        rep.fail(rel(DOCKERFILE), "ENTRYPOINT is not [\"/usr/local/bin/gpu-pod-exporter\"]")
    for f in froms:
        if not re.fullmatch(r"[^@\s]+:[^@\s]+@sha256:[0-9a-f]{64}", f):
            rep.fail(rel(DOCKERFILE), f"base image {f} is not pinned as <image>:<tag>@sha256:<digest>")
    final = froms[-1].split("@")[0] if froms else ""
    want_tag = {0: ":latest", 65532: ":nonroot"}.get(user)
    if not want_tag or not final.endswith(want_tag):
        rep.fail(rel(DOCKERFILE), f"runtime image {final} does not match runAsUser {user}")
    if "--locked" not in text or "-p gpu-pod-exporter" not in text:
        rep.fail(rel(DOCKERFILE), "the build is not `cargo build --release --locked -p gpu-pod-exporter`")
    if not image.startswith("ghcr.io/gpu-pod-exporter/gpu-pod-exporter:"):
        rep.fail("manifests", f"unexpected image {image}")
    rep.ok(f"{rel(DOCKERFILE)}: port, entry point and user match the DaemonSet; {len(froms)} bases pinned by digest")


def check_scrape_config(rep, promtool):
    print("==> plain Prometheus scrape config")
    cfg = yaml.safe_load(SCRAPE_CONFIG.read_text())
    jobs = cfg.get("scrape_configs", [])
    if len(jobs) != 1 or jobs[0].get("job_name") != "gpu-pod-exporter" or jobs[0].get("honor_labels") is not True:
        rep.fail(rel(SCRAPE_CONFIG), "needs one job gpu-pod-exporter with honor_labels: true")
        return
    sd = jobs[0].get("kubernetes_sd_configs", [])
    if not sd or sd[0].get("role") not in ("pod", "endpoints"):
        rep.fail(rel(SCRAPE_CONFIG), "needs kubernetes_sd_configs with role pod or endpoints")
    # Debian's Prometheus is built without Kubernetes service discovery, so its promtool rejects
    # kubernetes_sd_configs as an unknown field. Check everything else (relabelings, honor_labels,
    # intervals) with a copy that discovers the same target statically.
    for job in jobs:
        job.pop("kubernetes_sd_configs", None)
        job["static_configs"] = [{"targets": ["127.0.0.1:9445"]}]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(cfg, f)
    run(rep, [promtool, "check", "config", f.name],
        f"promtool check config {rel(SCRAPE_CONFIG)} (kubernetes_sd_configs swapped for static_configs)")
    Path(f.name).unlink()


def check_autoscaling(rep):
    print("==> autoscaling manifests")
    docs_by_file = {}
    for path in sorted(AUTOSCALING.glob("*.yaml")):
        if path == ADAPTER_VALUES:
            continue
        docs = load_docs(path)
        docs_by_file[path.name] = docs
        check_objects.validate_objects(rep, docs, rel(path))
    hpa = docs_by_file.get("hpa.yaml", [{}])[0]
    names = [m["pods"]["metric"]["name"] for m in hpa.get("spec", {}).get("metrics", []) if m.get("type") == "Pods"]
    # The recipes chosen with hpa-sim (docs/autoscaling.md): a load signal with the queue beside
    # it, tensor activity where the agent serves it, the engine's finished-request rate elsewhere.
    if names != ["gpu_tensor_active_ratio", "vllm_num_requests_waiting"]:
        rep.fail("hpa.yaml", f"Pods metrics are {names}")
    engine = docs_by_file.get("hpa-engine-signals.yaml", [{}])[0]
    engine_names = [m["pods"]["metric"]["name"] for m in engine.get("spec", {}).get("metrics", [])
                    if m.get("type") == "Pods"]
    if engine_names != ["vllm_request_success_rate", "vllm_num_requests_waiting"]:
        rep.fail("hpa-engine-signals.yaml", f"Pods metrics are {engine_names}")
    for key in ("scaleTargetRef", "minReplicas", "maxReplicas", "behavior"):
        if engine.get("spec", {}).get(key) != hpa.get("spec", {}).get(key):
            rep.fail("hpa-engine-signals.yaml", f"its {key} is not hpa.yaml's")
    # vLLM pre-allocates --gpu-memory-utilization of the GPU at start: per-pod memory says
    # nothing about its load, and no example may scale on it.
    for fname, docs in docs_by_file.items():
        if "memory_used" in json.dumps(docs):
            rep.fail(fname, "scales on GPU memory, which vLLM pre-allocates")
    served = {r["name"]["as"] for r in yaml.safe_load(ADAPTER_VALUES.read_text())["rules"]["custom"]}
    for fname, used in (("hpa.yaml", names), ("hpa-engine-signals.yaml", engine_names)):
        if not set(used) <= served:
            rep.fail(fname, f"metrics {set(used) - served} are not served by the adapter rules")
    so = docs_by_file.get("keda-scaledobject.yaml", [{}])[0]
    if so.get("spec", {}).get("scaleTargetRef", {}).get("name") != hpa.get("spec", {}).get("scaleTargetRef", {}).get("name"):
        rep.fail("keda-scaledobject.yaml", "scales another target than hpa.yaml")
    triggers = so.get("spec", {}).get("triggers", [])
    if [t.get("type") for t in triggers] != ["prometheus"] * len(names) or [t.get("name") for t in triggers] != names:
        rep.fail("keda-scaledobject.yaml", f"triggers {[t.get('name') for t in triggers]} are not hpa.yaml's metrics {names}")
    hpa_targets = [m["pods"]["target"]["averageValue"] for m in hpa["spec"]["metrics"] if m.get("type") == "Pods"]
    for t, target in zip(triggers, hpa_targets):
        milli = int(target[:-1]) if str(target).endswith("m") else int(float(target) * 1000)
        if round(float(t["metadata"]["threshold"]) * 1000) != milli:
            rep.fail("keda-scaledobject.yaml", f"threshold {t['metadata']['threshold']} is not hpa.yaml's target {target}")
    pm = docs_by_file.get("vllm-podmonitor.yaml", [{}])[0]
    dep = [d for d in docs_by_file.get("vllm-deployment.yaml", []) if d.get("kind") == "Deployment"]
    if dep:
        labels = dep[0]["spec"]["template"]["metadata"]["labels"]
        ports = [p["name"] for p in dep[0]["spec"]["template"]["spec"]["containers"][0]["ports"]]
        sel = pm.get("spec", {}).get("selector", {}).get("matchLabels", {})
        if any(labels.get(k) != v for k, v in sel.items()) or pm["spec"]["podMetricsEndpoints"][0]["port"] not in ports:
            rep.fail("vllm-podmonitor.yaml", "does not select the vLLM Deployment's pods and port")
    rep.ok("HPA metrics are served by the adapter; the engine-signal HPA differs only in its metrics; "
           "KEDA scales the same target; PodMonitor selects vLLM")


def autoscaling_expressions():
    """The adapter's and KEDA's queries, rendered as the adapter renders them for an HPA."""
    values = yaml.safe_load(ADAPTER_VALUES.read_text())
    for rule in values["rules"]["custom"]:
        where = f"{rel(ADAPTER_VALUES)} {rule['name']['as']}"
        yield where + " seriesQuery", rule["seriesQuery"]
        series = rule["seriesQuery"].split("{")[0]
        q = (rule["metricsQuery"].replace("<<.GroupBy>>", "pod").replace("<<.Series>>", series)
             .replace("<<.LabelMatchers>>", 'namespace="llm",pod=~"vllm-a|vllm-b"'))
        if "<<" in q:
            raise SystemExit(f"{where}: template field not rendered: {q}")
        yield where + " metricsQuery", q
    so = load_docs(AUTOSCALING / "keda-scaledobject.yaml")[0]
    for t in so["spec"]["triggers"]:
        yield f"daemonset/autoscaling/keda-scaledobject.yaml {t['name']}", t["metadata"]["query"]


# ---------------------------------------------------------------------------------------------
# Dashboards.

def grafana_substitute(expr, variables, overrides=None):
    """Replaces Grafana's variables the way Grafana would, with a value of the right shape:
    `overrides[name]` if given, a text box's default, a multi-value variable's "All" (.*), else a
    placeholder (query variables only ever appear inside label matcher strings)."""
    expr = re.sub(r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}", "5m", expr)
    overrides = overrides or {}

    def value(name):
        v = variables.get(name)
        if v is None:
            raise KeyError(name)
        if name in overrides:
            return overrides[name]
        if v.get("type") in ("textbox", "constant", "custom"):
            return str(v.get("query"))
        if v.get("includeAll"):
            return v.get("allValue", ".*")
        return "x"

    expr = re.sub(r"\$\{(\w+)(?::\w+)?\}", lambda m: value(m.group(1)), expr)
    return re.sub(r"\$(\w+)", lambda m: value(m.group(1)), expr)


def check_dashboards(rep, overrides=None):
    print("==> dashboards")
    exprs = []
    uids = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        where = rel(path)
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            rep.fail(where, f"invalid JSON: {e}")
            continue
        if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 39:
            rep.fail(where, f"schemaVersion {d.get('schemaVersion')} is older than 39")
        if d.get("uid") in uids:
            rep.fail(where, f"uid {d.get('uid')} also used by {uids[d['uid']]}")
        uids[d.get("uid")] = where
        variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
        ds = variables.get("datasource", {})
        if ds.get("type") != "datasource" or ds.get("query") != "prometheus":
            rep.fail(where, "needs a `datasource` variable of type datasource, query prometheus")
        panels = []

        def walk(ps):
            for p in ps:
                panels.append(p)
                walk(p.get("panels", []))

        walk(d.get("panels", []))
        ids = [p.get("id") for p in panels]
        dupes = sorted({i for i in ids if ids.count(i) > 1 or i is None}, key=str)
        if dupes:
            rep.fail(where, f"panel ids not unique: {dupes}")
        for p in panels:
            if p.get("type") == "row":
                continue
            pw = f"{where} panel {p.get('id')} {p.get('title')!r}"
            if p.get("datasource") != {"type": "prometheus", "uid": "${datasource}"}:
                rep.fail(pw, "datasource is not ${datasource}")
            refs = [t.get("refId") for t in p.get("targets", [])]
            if len(set(refs)) != len(refs) or not refs:
                rep.fail(pw, f"targets' refIds missing or repeated: {refs}")
            for t in p.get("targets", []):
                if t.get("datasource", p.get("datasource")) != p.get("datasource"):
                    rep.fail(pw, "a target uses another datasource")
                try:
                    exprs.append((f"{pw} {t.get('refId')}", grafana_substitute(t["expr"], variables, overrides)))
                except KeyError as e:
                    rep.fail(pw, f"uses undefined variable ${e.args[0]}")
        for v in variables.values():
            if v.get("type") != "query":
                continue
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q.strip())
            if not m:
                rep.fail(where, f"variable {v['name']}: expected label_values(<selector>, <label>), got {q}")
                continue
            exprs.append((f"{where} variable {v['name']}", grafana_substitute(m.group(1), variables, overrides)))
        rep.ok(f"{where}: JSON, schemaVersion {d.get('schemaVersion')}, {len(panels)} panels with unique ids, "
               f"datasource variable")
    run(rep, [sys.executable, str(ROOT / "scripts/dashboards.py"), "--check"],
        "dashboards/*.json are what scripts/dashboards.py generates")
    return exprs


# ---------------------------------------------------------------------------------------------
# Every expression: parses (promtool) and reads only known series.

def known_agent_metrics():
    names = set(AGENT_METRICS)
    for line in (ROOT / "docs/metrics.md").read_text().splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([a-z_:][a-z0-9_:]*)`", first_cell))
    for golden in (ROOT / "tests/golden").glob("*.prom"):
        names.update(re.findall(r"^# TYPE (\S+) ", golden.read_text(), re.M))
    return names


def check_expressions(rep, promtool, exprs, records):
    print("==> every PromQL expression (rules, dashboards, adapter, KEDA)")
    agent = known_agent_metrics()
    source_of = {}
    for src, names in EXTERNAL_METRICS.items():
        for n in names:
            source_of[n] = src
    depends = {}
    for where, expr in exprs:
        try:
            names = promql_names.metric_names(expr)
        except promql_names.PromQLSyntaxError as e:
            rep.fail(where, str(e))
            continue
        for n in sorted(names):
            if n in agent:
                continue
            if n in records:
                for src in records[n]:
                    depends.setdefault(src, set()).add(where.split(" ")[0])
                continue
            if n in source_of:
                depends.setdefault(source_of[n], set()).add(where.split(" ")[0])
                continue
            rep.fail(where, f"reads {n}, which neither the agent, a recording rule nor a listed source produces")
    # promtool has no PromQL-only parser: wrap each expression as a recording rule and check the file.
    groups = [{"name": f"e{i}: {where}", "rules": [{"record": "check:expression:parses", "expr": expr}]}
              for i, (where, expr) in enumerate(exprs)]
    with tempfile.NamedTemporaryFile("w", suffix=".rules.yaml", delete=False) as f:
        yaml.safe_dump({"groups": groups}, f, width=10_000)
    run(rep, [promtool, "check", "rules", f.name], f"{len(exprs)} expressions parse (promtool check rules)")
    Path(f.name).unlink()
    rep.ok(f"every metric read is the agent's ({len(agent)} names), a recording rule's ({len(records)}) or listed")
    for src, files in sorted(depends.items()):
        if src != "prometheus":
            print(f"  note: no data without {src} for parts of: {', '.join(sorted(files))}")


# ---------------------------------------------------------------------------------------------

def run(rep, cmd, what, cwd=None):
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if p.returncode != 0:
        rep.fail(what, (p.stdout + p.stderr).strip())
    else:
        rep.ok(what)


# What each rendered overlay (or example) is: the vendors it runs and its opt-in components.
RENDERS = {
    "nvidia": ({"nvidia"}, set()),
    "amd": ({"amd"}, set()),
    "mixed": ({"nvidia", "amd"}, set()),
    "prometheus-operator": (set(), set()),
    "example-custom-node-label": ({"nvidia", "amd"}, {"nvidia-runtime-class", "amd-sys-ptrace"}),
    "example-gpu-operator-dcgm": ({"nvidia"}, {"nvidia-dcgm"}),
}


def check(args):
    rep = Report()
    rendered = Path(args.rendered)
    print("==> rendered overlays")
    unknown = {p.stem for p in rendered.glob("*.yaml")} - set(RENDERS)
    if unknown:
        rep.fail("overlays", f"rendered but not listed in check_deploy.RENDERS (what should they run?): {sorted(unknown)}")
    # The shipped placeholder, or the example's `images:` replacement.
    images = ("ghcr.io/gpu-pod-exporter/gpu-pod-exporter:", "registry.example.com/gpu-pod-exporter:")
    docs = check_objects.check_renders(rep, rendered, "overlay", RENDERS, images)
    if {"nvidia", "amd", "mixed", "prometheus-operator"} <= set(docs):
        # Applied side by side, the two vendor overlays share only identical objects (the Namespace).
        ids = {}
        for name in ("nvidia", "amd"):
            for d in docs[name]:
                key = (d["apiVersion"], d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])
                if key in ids and ids[key] != d:
                    rep.fail("overlays nvidia + amd", f"both declare {key}, differently")
                ids[key] = d
        rep.ok("overlays nvidia and amd applied side by side share only identical objects")
        monitor = check_objects.by_kind(docs["prometheus-operator"], "ServiceMonitor")
        if len(monitor) != 1 or not check_objects.by_kind(docs["prometheus-operator"], "PrometheusRule"):
            rep.fail("overlay prometheus-operator", "needs one ServiceMonitor and a PrometheusRule")
        else:
            check_objects.check_monitor(rep, monitor[0], docs["mixed"], "overlays prometheus-operator + mixed")
        nvidia = check_objects.by_kind(docs["nvidia"], "DaemonSet")
        if nvidia:
            check_dockerfile(rep, nvidia[0]["spec"]["template"]["spec"], nvidia[0]["spec"]["template"]["spec"]["containers"][0]["image"])
    check_chart.check(rep, rendered.parent / "chart")
    check_scrape_config(rep, args.promtool)
    records = check_rules(rep, args.promtool)
    check_autoscaling(rep)
    exprs = list(rule_expressions()) + list(autoscaling_expressions()) + check_dashboards(rep)
    check_expressions(rep, args.promtool, exprs, records)
    if rep.failures:
        print(f"\n{len(rep.failures)} check(s) failed:", file=sys.stderr)
        for f in rep.failures:
            print(f"  FAIL {f}", file=sys.stderr)
        return 1
    return 0


def expressions(args):
    """Every PromQL expression the project ships, one JSON object per line, for tests that run
    them against a real Prometheus: {"where", "kind", "expr", "needs"}. `kind` is alert (empty
    while nothing is wrong, by design), record, dashboard, variable, adapter or keda; `needs` lists
    the exporters besides gpu-pod-exporter the expression reads (no data without them)."""
    overrides = dict(kv.split("=", 1) for kv in args.var)
    rules = yaml.safe_load(RULES.read_text())
    kinds = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            kinds[f"{rel(RULES)} {rule.get('record') or rule.get('alert')}"] = "record" if "record" in rule else "alert"
    with contextlib.redirect_stdout(io.StringIO()):
        dash = check_dashboards(Report(), overrides)
    records = record_needs()
    for where, expr in list(rule_expressions()) + list(autoscaling_expressions()) + dash:
        if where in kinds:
            kind = kinds[where]
        elif where.startswith("dashboards/"):
            kind = "variable" if " variable " in where else "dashboard"
        else:
            kind = "keda" if "keda" in where else "adapter"
        print(json.dumps({"where": where, "kind": kind, "expr": expr, "needs": expr_needs(expr, records)}))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("expressions", help=expressions.__doc__.split("\n")[0])
    e.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                   help="a dashboard variable's value (default: All for multi-value variables, the text box's default)")
    c = sub.add_parser("check")
    c.add_argument("--rendered", required=True, help="folder of rendered overlays, <overlay>.yaml each")
    c.add_argument("--promtool", required=True)
    s = sub.add_parser("sync", help="the generated copies: the PrometheusRule, the chart's rules and dashboards")
    s.add_argument("--write", action="store_true")
    args = ap.parse_args()
    if args.cmd == "sync":
        stale = check_chart.sync(args.write)
        for path in stale:
            print(f"{path.relative_to(ROOT)} is not a copy of its source: run scripts/check-deploy.sh --fix", file=sys.stderr)
        return max(sync_rules(args.write), 1 if stale else 0)
    if args.cmd == "expressions":
        return expressions(args)
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
