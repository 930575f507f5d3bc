#!/usr/bin/env bash
# Runs the whole test suite from a fresh clone: installs what the tests need (prometheus and
# promtool from Debian's `prometheus` package; kubectl and kubernetes-validate through
# check-deploy.sh), checks the deployment artifacts, formatting and lints, builds the workspace
# (the agent and the mock NVML library), and runs every test, the end-to-end one with a real
# Prometheus included. A missing tool fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  apt_install "${missing[@]}"
fi
for tool in promtool prometheus python3 cargo; do
  command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool is required and could not be installed" >&2; exit 1; }
done

echo "==> deployment artifacts (kustomize overlays, rules, dashboards)"
scripts/check-deploy.sh
echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo build (agent and mock NVML)"
cargo build --workspace --locked
echo "==> cargo test"
cargo test --workspace --locked -- --test-threads="${TEST_THREADS:-4}"
