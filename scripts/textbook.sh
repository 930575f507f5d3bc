#!/usr/bin/env bash
# Prints the table of docs/autoscaling.md "How exact the serving model is": hpa-sim's serving
# model reduced to textbook queues (M/D/1, join-the-shortest-queue, round-robin, M/D/256) at the
# default tick, against Pollaczek-Khinchine, Erlang's waiting-time distribution and small
# discrete-event simulations written in the test (hpa-sim/tests/textbook.rs), including the long
# M/D/1 runs at rho 0.95 (16 million requests per service time) that `cargo test` leaves out.
#
#   scripts/textbook.sh        (a release build, then about a minute on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
echo "| case | requests | reference | reference mean / p95 | hpa-sim mean / p95 | error |"
echo "|---|---|---|---|---|---|"
cargo test --release --locked -p hpa-sim --test textbook -- --include-ignored --nocapture --test-threads=1 2>&1 \
  | grep -E '\| [0-9]+ \|' | sed -E 's/^[^|]*\|/|/'
