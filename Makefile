# ratiofit — every target does its own set-up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: setup run test test-slow bench docs lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

## make run: set up, then run the quickstart spec (about a minute on 2 CPU cores)
run: $(STAMP)
	$(VENV)/bin/ratiofit run specs/quickstart.yaml -o runs/quickstart

## make test: set up, then the fast test suite (slow statistical checks excluded)
test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) bench/run_bench.py

docs: $(STAMP)
	$(PY) docs/generate.py

lint: $(STAMP)
	$(VENV)/bin/ruff check core plugins tests bench docs
	$(VENV)/bin/mypy

clean:
	rm -rf runs build *.egg-info .pytest_cache
