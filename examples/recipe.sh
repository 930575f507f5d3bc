#!/usr/bin/env bash
# Reproduces the recipe tables of docs/autoscaling.md: every candidate metric set of the
# bundled scenarios, each over a range of targets, tuned by hpa-sim. Each table row gives the
# candidate's GPU-hours, their ratios to the lower bound and to the best schedule found with the
# future known, and the p95 and p99 queue waits. Before them, GKE's procedure for its batch-size
# and queue targets run on the model (one replica at increasing constant rates); after them, the
# shipped recipe's scale-up and scale-down windows swept.
#
#   examples/recipe.sh [OUT_DIR]      (default out/recipe; about 12 minutes on 2 cores after the
#                                      build, docs/benchmarks.md)
#
# Writes OUT_DIR/one-replica-*.md, OUT_DIR/<scenario>/ (sweep.txt, candidates.md, sweep.json,
# sweep.csv, SVG plots) and OUT_DIR/behavior-<scenario>/.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out/recipe}"
cargo build --release --locked -p hpa-sim
sim=target/release/hpa-sim
# GKE's procedure for its batch-size and queue-size targets, run on the model: one replica of
# each server, pinned, at increasing constant rates (docs/autoscaling.md, "GKE's signals").
mkdir -p "$out"
examples/one_replica.py examples/diurnal-chat.yaml 10 20 30 40 50 55 60 62 64 65 66 \
  --sim "$sim" --out "$out/one-replica-chat" > "$out/one-replica-chat.md"
examples/one_replica.py examples/batch-embedding.yaml 50 100 150 200 250 280 290 300 \
  --sim "$sim" --out "$out/one-replica-embedding" > "$out/one-replica-embedding.md"
echo "==> one replica (chat)"; cat "$out/one-replica-chat.md"
echo "==> one replica (embedding)"; cat "$out/one-replica-embedding.md"
# Batch size: GKE starts 10 % under the peak (256, maxNumSeqs, for the chat server; ~150 for
# the embedding server, whose batch is held by prefill) and lowers it until the latency is met.
# Queue size: GKE starts at 3-5 and raises it while the latency holds.
llm_sweeps=(
  --sweep candidate=nvml-utilization,tensor-active,sm-active,queue,batch-size,batch-size-queue,request-rate,request-rate-queue,queue-kv-cache,queue-tensor-active,queue-nvml-utilization
  --sweep target.gpu_utilization_ratio=0.7,0.8,0.9
  --sweep share.gpu_tensor_active_ratio=0.6:0.9:0.1
  --sweep target.gpu_sm_active_ratio=0.7,0.8,0.9
  --sweep target.vllm_num_requests_waiting=3,5,10,20,50
  --sweep target.vllm_num_requests_running=230,160,80,40,20,10,5
  --sweep target.vllm_kv_cache_usage_perc=0.2,0.35,0.5
  --sweep target.vllm_request_success_rate=40,45,50,52,55
)
for s in diurnal-chat launch-day; do
  mkdir -p "$out/$s"
  "$sim" tune "examples/$s.yaml" "${llm_sweeps[@]}" --report "$out/$s" > "$out/$s.txt"
  echo "==> $s"; cat "$out/$s/candidates.md"
done
mkdir -p "$out/batch-embedding"
"$sim" tune examples/batch-embedding.yaml \
  --sweep candidate=nvml-utilization,tensor-active,sm-active,queue,batch-size,request-rate,request-rate-queue,queue-tensor-active \
  --sweep target.gpu_utilization_ratio=0.7,0.8,0.9 \
  --sweep share.gpu_tensor_active_ratio=0.6:0.9:0.1 \
  --sweep target.gpu_sm_active_ratio=0.7,0.8,0.9 \
  --sweep target.vllm_num_requests_waiting=5,20,100,500,1000 \
  --sweep target.vllm_num_requests_running=135,100,50,25,10,5 \
  --sweep target.vllm_request_success_rate=200,230,260 \
  --report "$out/batch-embedding" > "$out/batch-embedding.txt"
echo "==> batch-embedding"; cat "$out/batch-embedding/candidates.md"
# The shipped recipe's behavior: its windows swept on the two chat traces.
for s in diurnal-chat launch-day; do
  mkdir -p "$out/behavior-$s"
  "$sim" tune "examples/$s.yaml" --sweep candidate=queue-tensor-active \
    --sweep share.gpu_tensor_active_ratio=0.8 --sweep target.vllm_num_requests_waiting=5 \
    --sweep scaleUp.stabilizationWindowSeconds=0,60,120 \
    --sweep scaleDown.stabilizationWindowSeconds=300,600,900 \
    --report "$out/behavior-$s" > "$out/behavior-$s.txt"
  echo "==> behavior, $s"; cat "$out/behavior-$s.txt"
done
