#!/usr/bin/env bash
# Run every benchmark with its defaults (about 45-55 minutes on a 2-core CPU); results in outputs/bench/.
# Usage: bench/run_all.sh [python]   (default .venv/bin/python; benchmarks 4 and 6 need vLLM: the vLLM engine runs with
# $REASONEMBED_VLLM_PYTHON, else .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
run() { echo "=== $*"; nice -n 5 "$PY" "$@" || echo "!!! $1 failed (exit $?)"; }
run bench/train_throughput.py
run bench/encode_throughput.py
run bench/gradcache_memory.py
run bench/token_budget.py
if PYTHONPATH=. "${REASONEMBED_VLLM_PYTHON:-.venv/bin/python}" -c "import vllm, reasonembed" 2>/dev/null; then
  run bench/synthesis_throughput.py
else
  echo "=== skipping bench/synthesis_throughput.py: no interpreter with vllm (set REASONEMBED_VLLM_PYTHON)"
fi
run bench/eval_phases.py
if PYTHONPATH=. "${REASONEMBED_VLLM_PYTHON:-.venv/bin/python}" -c "import vllm, reasonembed" 2>/dev/null; then
  run bench/encode_backends.py --bf16
else
  echo "=== skipping bench/encode_backends.py: no interpreter with vllm (set REASONEMBED_VLLM_PYTHON)"
fi
echo "results:"; ls -1 outputs/bench/*.md
