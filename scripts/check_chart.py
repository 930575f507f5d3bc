"""Lints, renders and checks the Helm chart in charts/gpu-pod-exporter.

Used by scripts/check_deploy.py. The Helm engine is Helm's own Go SDK (Helm v4), bundled as a C
library in the helm-python-sdk wheel (scripts/deploy-requirements.txt): `lint` is `helm lint
--strict`, `render` is `helm template`, offline. Each value set in CASES is linted, rendered into
<out>/<case>.yaml and then checked like a kustomize overlay (scripts/check_objects.py), plus what
only the chart has: its monitors, the PrometheusRule and the dashboard ConfigMaps, which must equal
the repository's own rules and dashboards. Value sets that must be refused are rendered too.

The chart reads the rules and dashboards from files/ (Helm can read no file outside the chart);
`sync(write=True)` copies them there, and CI fails when the copies differ from the sources.
"""

import json
from pathlib import Path

import yaml

import check_objects

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts/gpu-pod-exporter"
RULES = ROOT / "daemonset/rules/gpu-pod-exporter.rules.yaml"
DASHBOARDS = ROOT / "dashboards"

# The generated copies: chart path -> source.
def generated():
    out = {CHART / "files/gpu-pod-exporter.rules.yaml": RULES}
    for src in sorted(DASHBOARDS.glob("*.json")):
        out[CHART / "files/dashboards" / src.name] = src
    return out


# Value sets: name -> (values, vendors the render must run, opt-ins it must show).
WEB_SECRET = "gpu-pod-exporter-web"
CASES = {
    "defaults": ({}, {"nvidia"}, set()),
    "mixed-everything": ({
        "vendors": {
            "nvidia": {"runtimeClassName": "nvidia",
                       "extraNodeSelectorTerms": [{"matchExpressions": [
                           {"key": "example.com/gpu-vendor", "operator": "In", "values": ["nvidia"]}]}],
                       "dcgm": {"address": "nvidia-dcgm.gpu-operator.svc:5555",
                                "imageDigest": "sha256:" + "1" * 64}},
            "amd": {"enabled": True, "sysPtrace": True},
        },
        "image": {"repository": "registry.example.com/gpu-pod-exporter", "tag": "0.1.0",
                  "digest": "sha256:" + "0" * 64},
        "webConfig": {"secretName": WEB_SECRET, "tls": True},
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"},
                           "tlsConfig": {"ca": {"secret": {"name": WEB_SECRET, "key": "ca.crt"}},
                                         "serverName": "gpu-pod-exporter"},
                           "basicAuth": {"username": {"name": "prom-auth", "key": "user"},
                                         "password": {"name": "prom-auth", "key": "password"}}},
        "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "dashboards": {"enabled": True, "namespace": "monitoring", "annotations": {"grafana_folder": "GPU"}},
        "extraArgs": ["--collect.interval=10s"],
    }, {"nvidia", "amd"}, {"nvidia-runtime-class", "amd-sys-ptrace", "nvidia-dcgm"}),
    "amd-podmonitor": ({
        "vendors": {"nvidia": {"enabled": False}, "amd": {"enabled": True}},
        "podMonitor": {"enabled": True},
        "webConfig": {"secretName": WEB_SECRET},  # basic auth only: probes stay on http
    }, {"amd"}, set()),
}

# Value sets the chart must refuse, and a word of the error it must give.
REFUSED = {
    "no-vendor": ({"vendors": {"nvidia": {"enabled": False}}}, "enable at least one"),
    "two-monitors": ({"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}}, "not both"),
    "dcgm-library-without-address": ({"vendors": {"nvidia": {"dcgm": {"library": "/opt/libdcgm.so.4"}}}},
                                     "only with vendors.nvidia.dcgm.address"),
}

RELEASE = {"name": "gpe", "namespace": "gpu-pod-exporter"}
IMAGES = ("ghcr.io/gpu-pod-exporter/gpu-pod-exporter:", "registry.example.com/gpu-pod-exporter:")


def sync(write):
    """Copies (write) or compares the rules and dashboards into the chart; returns the stale paths."""
    stale = []
    want = generated()
    have = set((CHART / "files/dashboards").glob("*.json"))
    for extra in sorted(have - set(want)):
        stale.append(extra)
        if write:
            extra.unlink()
    for dst, src in want.items():
        if not dst.exists() or dst.read_bytes() != src.read_bytes():
            stale.append(dst)
            if write:
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(src.read_bytes())
    return [] if write else stale


def render_all(rep, out):
    """Lints and renders every case into out/<case>.yaml; renders the refused cases too."""
    import helm_python

    out.mkdir(parents=True, exist_ok=True)
    print(f"  Helm engine: Helm SDK {helm_python.helm_sdk_version()} (helm-python-sdk {helm_python.__version__})")
    chart = helm_python.Chart.load(str(CHART))
    for name, (values, _, _) in CASES.items():
        report = helm_python.lint(str(CHART), values, strict=True, namespace=RELEASE["namespace"],
                                  kube_version="v1.28.0")
        problems = [f"{m['path']}: {m['error']}" for m in report.get("messages", []) if m.get("severity", 0) >= 2]
        problems += report.get("errors", [])
        if problems:
            rep.fail(f"chart {name}", "helm lint --strict: " + "; ".join(problems))
        else:
            rep.ok(f"chart {name}: helm lint --strict (Kubernetes 1.28)")
        try:
            manifests = chart.render(values, name=RELEASE["name"], namespace=RELEASE["namespace"], is_install=True)
        except helm_python.HelmError as e:
            rep.fail(f"chart {name}", f"helm template failed: {e}")
            continue
        text = "\n---\n".join(v for k, v in sorted(manifests.items()) if not k.endswith("NOTES.txt") and v.strip())
        (out / f"{name}.yaml").write_text(text)
    for name, (values, word) in REFUSED.items():
        try:
            chart.render(values, name=RELEASE["name"], namespace=RELEASE["namespace"], is_install=True)
            rep.fail(f"chart {name}", "rendered, but the chart must refuse these values")
        except helm_python.HelmError as e:
            if word not in str(e):
                rep.fail(f"chart {name}", f"refused with another error than expected ({word!r}): {e}")
            else:
                rep.ok(f"chart {name}: refused ({word})")


def check(rep, out):
    print("==> Helm chart (charts/gpu-pod-exporter)")
    for path in sync(write=False):
        rep.fail(str(path.relative_to(ROOT)), "is not a copy of its source: run scripts/check-deploy.sh --fix")
    render_all(rep, out)
    docs = check_objects.check_renders(rep, out, "chart", {k: (v, o) for k, (_, v, o) in CASES.items()}, IMAGES)
    plain_groups = yaml.safe_load(RULES.read_text())["groups"]
    for name, rendered in docs.items():
        values = CASES[name][0]
        where = f"chart {name}"
        for kind, key in (("ServiceMonitor", "serviceMonitor"), ("PodMonitor", "podMonitor")):
            monitors = check_objects.by_kind(rendered, kind)
            want = values.get(key, {}).get("enabled", False)
            if len(monitors) != int(want):
                rep.fail(where, f"{len(monitors)} {kind}s, expected {int(want)}")
            for m in monitors:
                ep = check_objects.check_monitor(rep, m, rendered, where)
                scheme = "https" if values.get("webConfig", {}).get("tls") else "http"
                if ep.get("scheme") != scheme:
                    rep.fail(where, f"{kind} scheme {ep.get('scheme')}, expected {scheme}")
                for field in ("tlsConfig", "basicAuth"):
                    if ep.get(field) != values.get(key, {}).get(field):
                        rep.fail(where, f"{kind} {field} is not the values' {field}")
        rules = check_objects.by_kind(rendered, "PrometheusRule")
        if len(rules) != int(values.get("prometheusRule", {}).get("enabled", False)):
            rep.fail(where, f"{len(rules)} PrometheusRules, expected {int(values.get('prometheusRule', {}).get('enabled', False))}")
        for r in rules:
            if r["spec"].get("groups") != plain_groups:
                rep.fail(where, f"PrometheusRule's groups differ from {RULES.relative_to(ROOT)}")
        dash = [d for d in check_objects.by_kind(rendered, "ConfigMap")
                if d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
        want = sorted(p.name for p in DASHBOARDS.glob("*.json")) if values.get("dashboards", {}).get("enabled") else []
        if sorted(k for d in dash for k in d.get("data", {})) != want:
            rep.fail(where, f"dashboard ConfigMaps hold {[list(d.get('data', {})) for d in dash]}, expected {want}")
        for d in dash:
            for fname, body in d["data"].items():
                if json.loads(body) != json.loads((DASHBOARDS / fname).read_text()):
                    rep.fail(where, f"dashboard {fname} differs from dashboards/{fname}")
            ns = values.get("dashboards", {}).get("namespace") or RELEASE["namespace"]
            if d["metadata"].get("namespace") != ns:
                rep.fail(where, f"dashboard ConfigMap {d['metadata']['name']} in {d['metadata'].get('namespace')}, not {ns}")
        rep.ok(f"{where}: monitors, PrometheusRule ({len(rules)}) and dashboards ({len(dash)}) as the values ask")
