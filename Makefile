# ratiofit — every target does its own set-up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: setup run test test-slow bench bench-pythia docs docs-tables lint clean

$(STAMP): pyproject.toml examples/ratiofit-example-plugins/pyproject.toml \
		examples/ratiofit-papers/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m pip install --quiet --no-deps -e examples/ratiofit-example-plugins
	$(PY) -m pip install --quiet --no-deps -e examples/ratiofit-papers
	touch $(STAMP)

setup: $(STAMP)

## make run: set up, then run the quickstart spec (about three minutes on 2 CPU cores: one
## training, three bootstrap replicas for the reweighter's error, the fit and its closure gate)
run: $(STAMP)
	$(VENV)/bin/ratiofit run specs/quickstart.yaml -o runs/quickstart

## make test: set up, then the fast test suite (slow statistical checks excluded); the
## slowest tests are listed at the end (the suite's budget is 15 minutes on 2 cores)
test: $(STAMP)
	$(PY) -m pytest -q --durations=25

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

## make bench: every benchmark (the SRGN one retrains from scratch at each Powell call, as
## srgn.md does, and takes about a quarter of an hour on 2 CPU cores)
bench: $(STAMP)
	$(PY) bench/run_bench.py
	$(PY) bench/bench_unbinned.py
	$(PY) bench/bench_inference.py
	$(PY) bench/bench_dask.py
	$(PY) bench/bench_uncertainty.py
	$(PY) bench/bench_srgn.py
	$(PY) bench/bench_reweight.py
	$(PY) bench/bench_sources.py

## make bench-pythia: the pythia source alone (events/s against a bare next() loop, 1 and 2
## processes; bench/results/pythia_source.json; about 1.5 minutes on 2 idle CPU cores)
bench-pythia: $(STAMP)
	$(PY) bench/bench_pythia.py

## make docs-tables: regenerate the result tables in docs/ from the run directories
docs-tables: $(STAMP)
	$(PY) docs/generate.py

## make docs: the spec/plugin reference (docs/plugins.md, ratiofit's own plugins) from the
## schema and the option declarations, then the site (warnings are errors) in docs/_build/html
docs: $(STAMP)
	$(PY) -m pip install --quiet -e ".[docs]"
	RATIOFIT_DISABLE_PLUGIN_AUTOLOAD=1 $(PY) -c "import sys; sys.path[:0] = ['docs']; import generate; generate.plugin_reference()"
	$(VENV)/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

lint: $(STAMP)
	$(VENV)/bin/ruff check core plugins tests bench docs
	$(VENV)/bin/mypy

clean:
	rm -rf runs build *.egg-info .pytest_cache
