#!/usr/bin/env bash
# GPU mode of the benchmark: the same side-by-side comparison as `make bench`, at the
# issue's production scale (500 classifications, 200 extractions, 100 reports), on
#   1. an 8B-shaped model with random weights (vLLM's dummy loader: real kernels, no weights), and
#   2. the embedded model (SmolLM2-135M),
# each against vLLM's own OpenAI server from the same virtualenv.
#
# Air-gapped node: nothing is downloaded. The virtualenv must already hold vLLM installed
# from wheels brought along, on the node's own torch (see ../shared/ENVIRONMENT.md: e.g. the
# vllm 0.26.0 wheel on torch 2.11.0+cu130), plus this project (`pip install --no-deps -e .`
# and its pure-Python dependencies as wheels) and the converted embedded model in
# ~/.cache/wrapserve/models (copy it from a CPU box where `make model` ran).
#
#   benchmarks/gpu/run_gpu.sh [extra benchmarks.run flags]
#
# Results: benchmarks/results/gpu-dummy-8b/ and benchmarks/results/gpu-smollm2/ (latest.json,
# latest.md, plots). Copy the device line and the headline figures into benchmarks/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
WORK=${WORK:-$(mktemp -d /tmp/wrapserve-gpu-bench.XXXXXX)}
# Both servers are up at once (driven one at a time): each gets a bit under half the GPU.
FRACTION=${FRACTION:-0.42}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$WORK/device.txt"
"$PY" -c 'import torch, vllm; print("torch", torch.__version__, "cuda", torch.version.cuda, "vllm", vllm.__version__)' \
  | tee -a "$WORK/device.txt"

"$PY" -m benchmarks.gpu.dummy_model --out "$WORK/models"
COMMON=(--classify 500 --extract 200 --report 100 --concurrency 256 --sweep 1,16,64,256
        --memory-fraction "$FRACTION" --kv-cache-gib 0 --no-eager --skip-compile)

WRAPSERVE_MODELS_DIR="$WORK/models/manifests" "$PY" -m benchmarks.run "${COMMON[@]}" \
  --model dummy-8b --weights-dir "$WORK/models" --load-format dummy \
  --out benchmarks/results/gpu-dummy-8b "$@"

"$PY" -m benchmarks.run "${COMMON[@]}" --model smollm2-135m-instruct \
  --out benchmarks/results/gpu-smollm2 "$@"

cp "$WORK/device.txt" benchmarks/results/gpu-dummy-8b/device.txt
cp "$WORK/device.txt" benchmarks/results/gpu-smollm2/device.txt
echo "done: benchmarks/results/gpu-*/latest.md"
