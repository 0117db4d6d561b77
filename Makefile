# flare-node — `make demo` and `make test` do every set-up step themselves on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
PY        := $(VENV)/bin/python
BIN       := $(VENV)/bin
TOOLS     := .tools
PYTHON312 ?= $(shell tools/find-python312)

# No Hub access is needed or wanted: fail fast instead of retrying for 20 s.
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# forge and anvil keep state under $HOME/.foundry: keep it inside the project.
export FLARE_TOOLS_HOME := $(CURDIR)/$(TOOLS)/home
export SOLCX_BINARY_PATH := $(CURDIR)/tools/solc

.PHONY: help setup demo test test-fast test-slow lint fmt typecheck layers contracts-test slither bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

# ---------------------------------------------------------------- set-up (stamped: re-runs are fast)

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(TOOLS)/slither/.installed: tools/slither-requirements.txt
	@test -x $(TOOLS)/slither/bin/python || $(PYTHON312) -m venv $(TOOLS)/slither
	$(TOOLS)/slither/bin/python -m pip install --quiet -r tools/slither-requirements.txt
	@touch $@

setup: $(VENV)/.installed node_modules/.installed  ## create .venv and install Python and npm tools

# ---------------------------------------------------------------- the two commands

demo: setup  ## run a 4-node federation for 3 rounds on the embedded chain and store
	$(BIN)/flare-node demo

test: setup lint contracts-test slither  ## everything CI runs: lint, types, layers, forge, slither, pytest
	$(BIN)/pytest -m "not slow" -q --durations=15

# ---------------------------------------------------------------- pieces

test-fast: setup  ## Python tests only, no contract suite
	$(BIN)/pytest -m "not slow" -q

test-slow: setup  ## the slow suites left out of `make test`
	$(BIN)/pytest -m slow -q

lint: setup typecheck layers  ## ruff, mypy, import-linter
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

fmt: setup node_modules/.installed
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench
	cd contracts && HOME=$(FLARE_TOOLS_HOME) ../node_modules/.bin/forge fmt

typecheck: setup
	$(BIN)/mypy

layers: setup
	$(BIN)/lint-imports

contracts-test: node_modules/.installed  ## forge unit, fuzz and invariant tests
	tools/forge-test

slither: node_modules/.installed $(TOOLS)/slither/.installed  ## static analysis, fails on medium
	tools/slither-check

bench: setup  ## print the benchmark figures (compression and training take minutes on a CPU)
	$(PY) bench/gas.py
	$(PY) bench/vrf.py
	$(PY) bench/cid.py
	$(PY) bench/train.py --threads 1
	$(PY) bench/compression.py

clean:
	rm -rf $(VENV) node_modules $(TOOLS) contracts/out contracts/cache .mypy_cache .ruff_cache .pytest_cache
