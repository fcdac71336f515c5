# pytest-sweep: thin wrappers around pytest, as in the sweep guide.
# Every target bootstraps the virtual environment it needs (.venv) on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RANGE_CONFIG ?= defconfigs/resnet18-digits-smoke
CONFIG_DIR ?= sweep_configs
PYTEST_ARGS ?=

.PHONY: venv sweep sweep-generate sweep-run sweep-clean test bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# pinned: these install from local wheels; an unpinned torch is a multi-GB download
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e .
	touch $(STAMP)

## make sweep RANGE_CONFIG=FILE: generate every combination and run it (serial)
sweep: $(STAMP)
	$(PY) -m pytest --range-config=$(RANGE_CONFIG) $(PYTEST_ARGS)

## make sweep-generate RANGE_CONFIG=FILE: write sweep_configs/config_NNN + combinations_summary.txt
sweep-generate: $(STAMP)
	$(PY) -m pytest --range-config=$(RANGE_CONFIG) --sweep-generate=$(CONFIG_DIR)

## make sweep-run: run the configs generated into sweep_configs/
sweep-run: $(STAMP)
	$(PY) -m pytest --config-dir=$(CONFIG_DIR) $(PYTEST_ARGS)

## make sweep-clean: remove the generated configs (results stay in test_matrix_results/)
sweep-clean:
	rm -rf $(CONFIG_DIR)

## make test: the project's own test suite
test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

## make bench: the benchmarks recorded in docs/benchmarks.md
bench: $(STAMP)
	$(PY) bench/run_all.py

clean: sweep-clean
	rm -rf $(VENV) .pytest_cache
