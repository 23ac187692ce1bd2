#!/usr/bin/env bash
# The main job's training as 2 processes of 1 thread (torchrun) against 1 process of 2 threads, 100 steps each, as
# whole processes in turn: one warm-up pair, then 3 counted pairs. Prints each run's wall time, and the steps/s that
# the one-process run logs at steps 50 and 100 (how fast this host runs the main job). Arguments are passed on to
# both trainings (e.g. --precision fp32).
#     bash benchmarks/main_job_ddp_pairs.sh [TRAIN ARGS...] > benchmarks/main_job_ddp_pairs_<cpu>.txt
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT
train=(-m bixt train -c configs/fashion-mnist.yaml --max_steps 100 --output_dir "$runs" "$@")
echo "# $(date -u +%FT%TZ) at $(git rev-parse --short HEAD); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | xargs) model $(grep -m1 '^model\s' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs; train arguments: ${*:-none}"
for pair in warm-up 1 2 3; do
  start=$(date +%s.%N)
  # the logs go with the temporary folder: a failed run shows the end of its log first
  .venv/bin/torchrun --standalone --nproc_per_node 2 "${train[@]}" --threads 1 > "$runs/ddp.log" 2>&1 ||
    { tail -5 "$runs/ddp.log" >&2; exit 1; }
  ddp=$(echo "$(date +%s.%N) - $start" | bc)
  start=$(date +%s.%N)
  .venv/bin/python "${train[@]}" --threads 2 > "$runs/one.log" 2>&1 || { tail -5 "$runs/one.log" >&2; exit 1; }
  one=$(echo "$(date +%s.%N) - $start" | bc)
  printf 'pair %s: 2 processes %.1f s, 1 process %.1f s, ratio %.2f\n' "$pair" "$ddp" "$one" "$(echo "$ddp / $one" | bc -l)"
  grep -o 'step [0-9]*/[0-9]*.*steps/s' "$runs/one.log" | sed 's/^/  1 process: /' || true
done
