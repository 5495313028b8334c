#!/usr/bin/env bash
# Fail when nbdev-clean or nbdev-export would change any tracked notebook or module (nbdev's CI check).
set -euo pipefail
BIN=${1:-.venv/bin}
snap() { find nbs reasonembed -type f \( -name '*.ipynb' -o -name '*.py' \) -not -path '*/.ipynb_checkpoints/*' -not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 md5sum; }
before=$(snap)
"$BIN/nbdev-clean"
"$BIN/nbdev-export"
after=$(snap)
if [ "$before" != "$after" ]; then
  echo "nbdev-clean / nbdev-export changed these files: run them and commit the result:" >&2
  diff <(echo "$before") <(echo "$after") >&2 || true
  exit 1
fi
echo "notebooks clean, package in sync"
