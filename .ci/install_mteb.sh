#!/usr/bin/env bash
# Install the [mteb] extra (mteb, pinned in pyproject.toml and constraints.txt) into the environment of the given python,
# for the `mteb`-flagged notebook cells and tests/test_mteb.py. It adds mteb and polars only: every pinned package stays.
set -euo pipefail
PY=${1:-.venv/bin/python}
"$PY" -m pip install -q -c constraints.txt -e ".[mteb]"
"$PY" -c "import mteb; print('mteb', mteb.__version__)"
