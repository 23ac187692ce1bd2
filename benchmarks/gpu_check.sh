#!/usr/bin/env bash
# The GPU check of issue 14, one command on a machine with a CUDA device (run from the repository root, after
# `make install`): the `gpu` tests (fused, chunked and Triton attention against explicit, fp32 and bf16, masks and
# gradients), then BiXT vs Transformer inference throughput on LRA retrieval at 4,096 tokens, batch 256, bf16
# autocast (the paper's A100 figure: 8.4x). Everything it prints and writes lands in ${OUT:-benchmarks/gpu}/.
set -euo pipefail
PY=${PY:-.venv/bin/python}
out=${OUT:-benchmarks/gpu}
mkdir -p "$out"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())" \
  | tee "$out/device.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$out/device.txt" 2>&1 || true
"$PY" -m pytest -q -p no:cacheprovider -m gpu tests/test_attention_gpu.py 2>&1 | tee "$out/gpu_tests.txt"
"$PY" -m bixt bench --model bixt_lra_retrieval transformer_lra_retrieval --tokens 4096 --batch 256 --mode infer \
  --precision bf16 --device cuda --warmup 2 --repeats 5 --rounds 2 --out "$out/lra_retrieval_4k_b256_bf16.jsonl" \
  2>&1 | tee "$out/lra_bench.txt"
"$PY" - "$out/lra_retrieval_4k_b256_bf16.jsonl" <<'PY' | tee "$out/lra_ratio.txt"
import json, sys
rows = {r["model"]: r for r in map(json.loads, open(sys.argv[1]))}
bixt, vit = rows["bixt_lra_retrieval"], rows["transformer_lra_retrieval"]
print(f"BiXT / Transformer samples/s at 4,096 tokens, batch 256, bf16: "
      f"{bixt['samples_per_s'] / vit['samples_per_s']:.2f}x (paper, A100: 8.4x); "
      f"CUDA peak memory {bixt.get('cuda_peak_mem_mb', 0):.0f} / {vit.get('cuda_peak_mem_mb', 0):.0f} MB")
PY
