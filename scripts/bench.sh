#!/usr/bin/env bash
# Builds the release agent and the mock, installs the peer exporter's libraries, then runs
# scripts/bench.py:
#
#   scripts/bench.sh                 the agent beside the peer (benches/peer/) on the mock with
#                                    the H200 cost model, on the reference node (8 GPUs, 64
#                                    processes in 32 pods) and on 8 GPUs with one pod each, at
#                                    5 s; prints both side by side, the ratios, and PASS/FAIL
#                                    against the agent's targets (about 4 minutes)
#   scripts/bench.sh compare --seconds 120
#   scripts/bench.sh compare --dcgm  the same with GPUs without GPM, their profiling from the mock
#                                    DCGM (the agent with --dcgm.address)
#   scripts/bench.sh core            the agent alone, free mock: 8 GPUs x 64 processes at 200 ms
#   scripts/bench.sh core --gpus 16 --processes 128 --costs h200
#
# The peer needs nvidia-ml-py and prometheus_client: pinned in benches/peer/requirements.txt,
# installed from PyPI into a venv under target/ (target/bench-tools/venv), as
# scripts/check-deploy.sh does for its tools. A tool that cannot be installed fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --release --workspace --locked

tools=target/bench-tools
venv=$tools/venv
requirements=benches/peer/requirements.txt
command -v python3 >/dev/null 2>&1 || { echo "error: python3 is needed (Debian: apt-get install python3 python3-venv)" >&2; exit 1; }
stamp="$(python3 --version 2>&1) $(sha256sum "$requirements" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$tools/stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "setting up $venv (nvidia-ml-py, prometheus_client)" >&2
  rm -rf "$venv"
  mkdir -p "$tools"
  python3 -m venv "$venv" >/dev/null 2>&1 \
    || { echo "error: cannot create a venv: install python3-venv (apt-get install python3-venv)" >&2; exit 1; }
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-input -r "$requirements" \
    || { echo "error: cannot install $requirements from PyPI into $venv" >&2; exit 1; }
  echo "$stamp" >"$tools/stamp"
fi
"$venv/bin/python" -c 'import pynvml, prometheus_client' \
  || { echo "error: $venv lacks nvidia-ml-py or prometheus_client; remove $tools and run again" >&2; exit 1; }

exec python3 scripts/bench.py --target "$target_dir/release" "$@"
