#!/usr/bin/env bash
# Reproduces the recipe table of docs/autoscaling.md: every candidate metric set of the
# bundled scenarios, each over a range of targets, tuned by hpa-sim. Each table row gives the
# candidate's GPU-hours, their ratios to the lower bound and to the best schedule found with the
# future known, and the p95 and p99 queue waits.
#
#   examples/recipe.sh [OUT_DIR]      (default out/recipe; about 5 minutes of CPU on 2 threads after
#                                      the build, 12 minutes on 2 busy cores, plus about ten runs
#                                      per scenario for its bounds)
#
# Writes OUT_DIR/<scenario>/ (sweep.txt, candidates.md, sweep.json, sweep.csv, SVG plots).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out/recipe}"
cargo build --release --locked -p hpa-sim
sim=target/release/hpa-sim
llm_sweeps=(
  --sweep candidate=nvml-utilization,tensor-active,sm-active,queue,queue-kv-cache,queue-tensor-active,queue-nvml-utilization
  --sweep target.gpu_utilization_ratio=0.7,0.8,0.9
  --sweep share.gpu_tensor_active_ratio=0.6:0.9:0.1
  --sweep target.gpu_sm_active_ratio=0.7,0.8,0.9
  --sweep target.vllm_num_requests_waiting=1,2,3,5
  --sweep target.vllm_kv_cache_usage_perc=0.5,0.7,0.9
)
for s in diurnal-chat launch-day; do
  mkdir -p "$out/$s"
  "$sim" tune "examples/$s.yaml" "${llm_sweeps[@]}" --report "$out/$s" > "$out/$s.txt"
  echo "==> $s"; cat "$out/$s/candidates.md"
done
mkdir -p "$out/batch-embedding"
"$sim" tune examples/batch-embedding.yaml \
  --sweep candidate=nvml-utilization,tensor-active,sm-active,queue \
  --sweep target.gpu_utilization_ratio=0.7,0.8,0.9 \
  --sweep share.gpu_tensor_active_ratio=0.6:0.9:0.1 \
  --sweep target.gpu_sm_active_ratio=0.7,0.8,0.9 \
  --sweep target.vllm_num_requests_waiting=5,20,50,100 \
  --report "$out/batch-embedding" > "$out/batch-embedding.txt"
echo "==> batch-embedding"; cat "$out/batch-embedding/candidates.md"
