"""Checks rendered Kubernetes objects: the kustomize overlays' and the Helm chart's alike.

Used by scripts/check_deploy.py. Each render (one YAML stream) is checked for:
  - schema: every built-in kind validates against the Kubernetes 1.28 and latest schemas (strict);
  - collisions: no two objects share an API group, kind, namespace and name (kustomize refuses
    that inside one kustomization, but not across two `kubectl apply -k`, and Helm never does); no
    two DaemonSets select the same pods; no two Services (hence no ServiceMonitor) select the same
    pods, which would scrape every agent twice;
  - the DaemonSet invariants of daemonset/README.md, per vendor (the `app.kubernetes.io/component`
    label: nvidia-agent or amd-agent), with the node affinity that finds GPU nodes;
  - every agent pod is selected by a headless Service on metrics/9445 whose job label (its
    app.kubernetes.io/name) is gpu-pod-exporter, which the rules and dashboards select on.
"""

import json
from pathlib import Path

import yaml

# Kubernetes versions the built-in kinds must validate against: the oldest we support (the
# kubelet's pod-resources List/GetAllocatableResources went GA in 1.28) and the newest schema
# kubernetes-validate ships.
K8S_VERSIONS = ["1.28.0", "latest"]

# Custom resources: no schema ships with kubernetes-validate, so they are skipped by name there and
# checked elsewhere for what matters to this project (the queries they carry, the labels they select).
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("keda.sh/v1alpha1", "ScaledObject"),
}

# The host paths the agent reads, and where --path.rootfs=/host makes it look for them.
EXPECTED_HOST_MOUNTS = {
    "/proc": "/host/proc",
    "/sys": "/host/sys",
    "/var/log/pods": "/host/var/log/pods",
    "/var/log/containers": "/host/var/log/containers",
    "/var/lib/kubelet/pod-resources": "/host/var/lib/kubelet/pod-resources",
}

# The node labels each vendor's agent must be scheduled by (one nodeSelectorTerm each; more terms,
# such as a user's own label, may follow). Sources are in agents/*/daemonset-patch.yaml and the
# chart's values.yaml; a render that lacks one of these would leave such clusters without agents.
NODE_TERMS = {
    "nvidia": [
        ("nvidia.com/gpu.present", "In", ["true"]),  # GPU feature discovery
        ("feature.node.kubernetes.io/pci-0302_10de.present", "In", ["true"]),  # NFD default
        ("feature.node.kubernetes.io/pci-0300_10de.present", "In", ["true"]),  # NFD default
        ("feature.node.kubernetes.io/pci-10de.present", "In", ["true"]),  # NFD, GPU operator config
        ("cloud.google.com/gke-accelerator", "Exists", None),  # GKE
    ],
    "amd": [
        ("feature.node.kubernetes.io/amd-gpu", "In", ["true"]),  # AMD GPU operator
        ("amd.com/gpu.family", "Exists", None),  # AMD node labeller
        ("feature.node.kubernetes.io/pci-0300_1002.present", "In", ["true"]),  # NFD default
        ("feature.node.kubernetes.io/pci-0380_1002.present", "In", ["true"]),  # NFD default
        ("feature.node.kubernetes.io/pci-1200_1002.present", "In", ["true"]),  # NFD default
        ("feature.node.kubernetes.io/pci-1002.present", "In", ["true"]),  # NFD, vendor only
    ],
}

VENDOR_OF_COMPONENT = {"nvidia-agent": "nvidia", "amd-agent": "amd"}


def load_docs(path):
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d]


def by_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def validate_objects(rep, docs, where):
    import kubernetes_validate

    for doc in docs:
        kind, api = doc.get("kind"), doc.get("apiVersion")
        name = f"{kind}/{doc.get('metadata', {}).get('name')}"
        if (api, kind) in CRD_KINDS:
            print(f"  skip: {where} {name}: custom resource {api} {kind}, no schema offline (checked elsewhere)")
            continue
        for version in K8S_VERSIONS:
            v = kubernetes_validate.latest_version() if version == "latest" else version
            try:
                kubernetes_validate.validate(doc, v, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = "/".join(str(p) for p in e.path)
                rep.fail(where, f"{name} invalid for Kubernetes {v} at {path}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError as e:
                rep.fail(where, f"{name}: {e.message}")
        rep.ok(f"{where} {name} validates (Kubernetes {', '.join(K8S_VERSIONS)}, strict)")


def selects(selector, labels):
    """Whether a matchLabels-style selector (a dict) selects pods with these labels."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_collisions(rep, docs, where):
    """No two objects with one identity; no two DaemonSets or Services over the same pods."""
    seen = {}
    for d in docs:
        group = d.get("apiVersion", "").rpartition("/")[0]
        md = d.get("metadata", {})
        key = (group, d.get("kind"), md.get("namespace", ""), md.get("name"))
        if key in seen:
            rep.fail(where, f"two objects are {d.get('kind')} {md.get('namespace', '')}/{md.get('name')}")
        seen[key] = True
    pods = [(ds["metadata"]["name"], ds["metadata"].get("namespace"), ds["spec"]["template"]["metadata"]["labels"])
            for ds in by_kind(docs, "DaemonSet")]
    for ds in by_kind(docs, "DaemonSet"):
        sel = ds["spec"]["selector"].get("matchLabels", {})
        if ds["spec"]["selector"].get("matchExpressions"):
            rep.fail(where, f"DaemonSet {ds['metadata']['name']}: matchExpressions selectors are not checked here")
        mine = [n for n, ns, labels in pods if ns == ds["metadata"].get("namespace") and selects(sel, labels)]
        if mine != [ds["metadata"]["name"]]:
            rep.fail(where, f"DaemonSet {ds['metadata']['name']}'s selector matches the pods of {mine}")
    for svc in by_kind(docs, "Service"):
        sel = svc["spec"].get("selector", {})
        mine = [n for n, ns, labels in pods if ns == svc["metadata"].get("namespace") and selects(sel, labels)]
        if len(mine) != 1:
            rep.fail(where, f"Service {svc['metadata']['name']} selects the pods of {mine}, not of one DaemonSet")
    rep.ok(f"{where}: {len(seen)} objects, no two alike; DaemonSets and Services select disjoint pods")


def node_terms(spec):
    terms = (spec.get("affinity", {}).get("nodeAffinity", {})
             .get("requiredDuringSchedulingIgnoredDuringExecution", {}).get("nodeSelectorTerms", []))
    out = []
    for t in terms:
        exprs = t.get("matchExpressions", [])
        if len(exprs) == 1 and not t.get("matchFields"):
            e = exprs[0]
            out.append((e.get("key"), e.get("operator"), e.get("values")))
        else:
            out.append(("<compound>", json.dumps(t, sort_keys=True), None))
    return out


def check_daemonset(rep, where, ds, opt_ins, image_prefix):
    """The invariants of daemonset/README.md for one agent DaemonSet. `opt_ins` is the set of
    opt-in components the render was made with ("nvidia-runtime-class", "amd-sys-ptrace",
    "nvidia-dcgm"), `image_prefix` what its image must start with."""
    name = ds["metadata"]["name"]
    where = f"{where} DaemonSet {name}"
    vendor = VENDOR_OF_COMPONENT.get(ds["metadata"].get("labels", {}).get("app.kubernetes.io/component"))
    if vendor is None:
        rep.fail(where, "has no app.kubernetes.io/component label nvidia-agent or amd-agent")
        return None
    spec = ds["spec"]["template"]["spec"]
    c = spec["containers"][0]
    sc = c.get("securityContext", {})
    args = c.get("args", [])
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    scheme = c.get("livenessProbe", {}).get("httpGet", {}).get("scheme", "HTTP")
    probe = {"path": "/healthz", "port": "metrics"} | ({"scheme": scheme} if scheme != "HTTP" else {})
    checks = {
        "hostPID is true": spec.get("hostPID") is True,
        "priorityClassName is system-node-critical": spec.get("priorityClassName") == "system-node-critical",
        "pod seccomp profile is RuntimeDefault": spec.get("securityContext", {}).get("seccompProfile", {}).get("type") == "RuntimeDefault",
        "readOnlyRootFilesystem": sc.get("readOnlyRootFilesystem") is True,
        "allowPrivilegeEscalation false": sc.get("allowPrivilegeEscalation") is False,
        "not privileged": not sc.get("privileged", False),
        "capabilities drop ALL": sc.get("capabilities", {}).get("drop") == ["ALL"],
        "args include --path.rootfs=/host": "--path.rootfs=/host" in args,
        "port metrics is 9445": any(p.get("name") == "metrics" and p.get("containerPort") == 9445 for p in c.get("ports", [])),
        "liveness probe GET /healthz on metrics": c.get("livenessProbe", {}).get("httpGet") == probe,
        "readiness probe GET /readyz on metrics": c.get("readinessProbe", {}).get("httpGet") == probe | {"path": "/readyz"},
        "requests and limits set": all(c.get("resources", {}).get(k, {}).get(r) for k in ("requests", "limits") for r in ("cpu", "memory")),
        "tolerations set": bool(spec.get("tolerations")),
        "no service account token": spec.get("automountServiceAccountToken") is False,
        "pod template carries the selector labels": selects(ds["spec"]["selector"].get("matchLabels"), ds["spec"]["template"]["metadata"]["labels"]),
        "pods labelled app.kubernetes.io/name=gpu-pod-exporter": ds["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/name") == "gpu-pod-exporter",
        f"image starts with {image_prefix}": c.get("image", "").startswith(image_prefix),
    }
    resources = json.dumps(c.get("resources", {}))
    checks["requests no GPU"] = "nvidia.com/gpu" not in resources and "amd.com/gpu" not in resources
    added = set(sc.get("capabilities", {}).get("add", []))
    terms = node_terms(spec)
    missing = [t for t in NODE_TERMS[vendor] if t not in terms]
    checks[f"node affinity has every {vendor} GPU node label (missing: {missing})"] = not missing
    other = {k for k, _, _ in NODE_TERMS["amd" if vendor == "nvidia" else "nvidia"]}
    checks["node affinity names no label of the other vendor"] = not any(k in other for k, _, _ in terms)
    if vendor == "amd":
        want = {"SYS_PTRACE"} if "amd-sys-ptrace" in opt_ins else set()
        checks[f"adds capabilities {sorted(want)} (SYS_PTRACE is opt-in)"] = added == want
        checks["--no-collector.nvidia"] = "--no-collector.nvidia" in args
        checks["no runtimeClassName"] = "runtimeClassName" not in spec
    else:
        checks["adds no capability"] = not added
        want = "nvidia" if "nvidia-runtime-class" in opt_ins else None
        checks[f"runtimeClassName {want} (nvidia is opt-in)"] = spec.get("runtimeClassName") == want
        checks["NVIDIA_VISIBLE_DEVICES=all"] = env.get("NVIDIA_VISIBLE_DEVICES") == "all"
        checks["NVIDIA_DRIVER_CAPABILITIES=utility"] = env.get("NVIDIA_DRIVER_CAPABILITIES") == "utility"
        checks["--no-collector.amd"] = "--no-collector.amd" in args
    # DCGM (components/nvidia-dcgm, the chart's vendors.nvidia.dcgm): only on the NVIDIA agent,
    # one address, and the image variant that carries libdcgm.so.4 (tag ...-dcgm).
    dcgm = [a for a in args if a.startswith("--dcgm.")]
    if vendor == "nvidia" and "nvidia-dcgm" in opt_ins:
        addresses = [a for a in dcgm if a.startswith("--dcgm.address=")]
        checks["one --dcgm.address (DCGM is opt-in)"] = len(addresses) == 1 and addresses[0] != "--dcgm.address="
        image = c.get("image", "").split("@")[0]
        checks["the DCGM image variant (tag ending -dcgm)"] = image.rsplit(":", 1)[-1].endswith("-dcgm")
    else:
        checks["no --dcgm.* flag (DCGM is opt-in, NVIDIA only)"] = not dcgm
    # Mounts: exactly the expected host paths, each read-only at <rootfs>/<path>; the only other
    # volume allowed is the web config's Secret, read-only, named by --web.config.file.
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = {}
    others = []
    for m in c.get("volumeMounts", []):
        v = volumes.get(m["name"], {})
        if "hostPath" in v:
            mounts[v["hostPath"]["path"]] = (m["mountPath"], m.get("readOnly") is True)
        else:
            others.append((v, m))
    checks["host mounts are exactly /proc, /sys, pod and container logs, pod-resources"] = (
        {k: v[0] for k, v in mounts.items()} == EXPECTED_HOST_MOUNTS)
    checks["every host mount is read-only"] = all(ro for _, ro in mounts.values())
    web_args = [a for a in args if a.startswith("--web.config.file=")]
    checks["volumes: host paths, and at most the web config Secret, read-only, named by --web.config.file"] = (
        len(volumes) == len(mounts) + len(others)
        and all("secret" in v and m.get("readOnly") is True for v, m in others)
        and len(others) == len(web_args) <= 1
        and all(a.split("=", 1)[1].startswith(m["mountPath"].rstrip("/") + "/") for a, (_, m) in zip(web_args, others)))
    checks["probes use HTTPS only with a web config"] = scheme == "HTTP" or bool(web_args)
    for what, good in checks.items():
        if not good:
            rep.fail(where, f"{what}: not so")
    rep.ok(f"{where} ({vendor}): DaemonSet invariants ({len(checks)} checks)")
    return vendor


def check_services(rep, docs, where):
    """Every agent pod is behind one headless Service on metrics/9445 with job label gpu-pod-exporter."""
    for ds in by_kind(docs, "DaemonSet"):
        labels = ds["spec"]["template"]["metadata"]["labels"]
        svcs = [s for s in by_kind(docs, "Service") if selects(s["spec"].get("selector"), labels)]
        if len(svcs) != 1:
            rep.fail(where, f"DaemonSet {ds['metadata']['name']}'s pods are behind {len(svcs)} Services, not one")
            continue
        svc = svcs[0]
        if svc["spec"].get("clusterIP") != "None":
            rep.fail(where, f"Service {svc['metadata']['name']} is not headless (clusterIP: None)")
        if [p.get("name") for p in svc["spec"]["ports"]] != ["metrics"] or svc["spec"]["ports"][0]["port"] != 9445:
            rep.fail(where, f"Service {svc['metadata']['name']}: port is not metrics/9445")
        if svc["metadata"].get("labels", {}).get("app.kubernetes.io/name") != "gpu-pod-exporter":
            rep.fail(where, f"Service {svc['metadata']['name']}: app.kubernetes.io/name (the job label) is not gpu-pod-exporter")
    rep.ok(f"{where}: every agent is behind one headless Service on metrics/9445, job label gpu-pod-exporter")


def check_monitor(rep, monitor, docs, where):
    """A ServiceMonitor (over the agents' Services) or PodMonitor (over their pods) that selects
    every agent, with honorLabels and job gpu-pod-exporter."""
    kind = monitor["kind"]
    sm = monitor["spec"]
    if kind == "ServiceMonitor":
        targets = [(s["metadata"]["name"], s["metadata"].get("namespace"), s["metadata"].get("labels", {}))
                   for s in by_kind(docs, "Service")]
        endpoints = sm.get("endpoints", [])
    else:
        targets = [(d["metadata"]["name"], d["metadata"].get("namespace"), d["spec"]["template"]["metadata"]["labels"])
                   for d in by_kind(docs, "DaemonSet")]
        endpoints = sm.get("podMetricsEndpoints", [])
    sel = sm.get("selector", {}).get("matchLabels", {})
    ns = sm.get("namespaceSelector", {}).get("matchNames")
    for name, namespace, labels in targets:
        if not selects(sel, labels) or (ns is not None and namespace not in ns):
            rep.fail(where, f"{kind} does not select {name}")
        job = labels.get(sm.get("jobLabel", ""), name)
        if job != "gpu-pod-exporter":
            rep.fail(where, f"{kind}: the job label of {name} would be {job!r}, the alerts expect gpu-pod-exporter")
    if len(endpoints) != 1 or endpoints[0].get("port") != "metrics" or endpoints[0].get("honorLabels") is not True:
        rep.fail(where, f"{kind} needs one endpoint on port metrics with honorLabels: true")
    elif endpoints[0].get("relabelings", [{}])[0].get("targetLabel") != "node":
        rep.fail(where, f"{kind}: the first relabeling does not set the node label the dashboards use")
    rep.ok(f"{where}: {kind} selects {len(targets)} agent target(s), honorLabels, job=gpu-pod-exporter")
    return endpoints[0] if endpoints else {}


def check_renders(rep, rendered, kind, renders, image_prefix):
    """Every render of `renders` (name -> (vendors, opt-ins)) exists, validates, has no colliding
    objects, and its DaemonSets and Services keep the invariants. Returns the docs by render."""
    out = {}
    for name, (vendors, opt_ins) in renders.items():
        path = rendered / f"{name}.yaml"
        if not path.exists():
            rep.fail(kind, f"{name} was not rendered")
            continue
        docs = out[name] = load_docs(path)
        where = f"{kind} {name}"
        validate_objects(rep, docs, where)
        check_collisions(rep, docs, where)
        found = {check_daemonset(rep, where, ds, opt_ins, image_prefix)
                 for ds in by_kind(docs, "DaemonSet")}
        if found != vendors or len(by_kind(docs, "DaemonSet")) != len(vendors):
            rep.fail(where, f"runs agents for {sorted(v or '?' for v in found)}, expected one each for {sorted(vendors)}")
        if vendors:
            check_services(rep, docs, where)
    return out
