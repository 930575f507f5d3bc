#!/usr/bin/env bash
# The fleet-scale benchmark, from one command: a real Prometheus scrapes N simulated GPU nodes
# every 15 s with the shipped rules and alerts loaded, and prints head series, ingestion,
# memory, each rule group's evaluation time and the HPA's and KEDA's query latency
# (scripts/fleet_scale.py says what and how). Prints figures; asserts nothing; CI does not run it.
#
#   scripts/fleet-scale.sh                          N = 100, 500, 1000 (about 7 minutes each)
#   scripts/fleet-scale.sh --nodes 50 --warmup 60 --measure 60
#   scripts/fleet-scale.sh --rules old.rules.yaml --rules daemonset/rules/gpu-pod-exporter.rules.yaml
#                                                    two rule files, one Prometheus each, at every N
#   scripts/fleet-scale.sh --nodes 500 --compare-rules old.rules.yaml
#                                                    the shipped rules loaded, and old.rules.yaml's
#                                                    rules timed beside them (same data, same load)
#   scripts/fleet-scale.sh --kinds exclusive        a fleet of one node kind only
#
# First it records what each kind of node serves: the release agent on four fake nodes with a
# fake kubelet (tests/series_budget.rs, which prints the per-node series budget), into
# target/fleet-scale/. Prometheus and promtool come from Debian's `prometheus` package, installed
# as scripts/test.sh installs them.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! { command -v prometheus && command -v promtool; } >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "==> installing prometheus (Debian's package)" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
command -v python3 >/dev/null 2>&1 || { echo "error: python3 is needed" >&2; exit 1; }

record=target/fleet-scale/record
echo "==> recording the agent's /metrics on each kind of node (release build)" >&2
cargo build --release --workspace --locked
rm -rf "$record"
SERIES_BUDGET_RECORD="$PWD/$record" \
  cargo test --release --locked --test series_budget -- --nocapture --test-threads=1 series_per_node
exec python3 scripts/fleet_scale.py --templates "$record" "$@"
