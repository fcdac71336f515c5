# pytest-sweep: thin wrappers around pytest, as in the sweep guide.
# Every target bootstraps the virtual environment it needs (.venv) on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RANGE_CONFIG ?= defconfigs/resnet18-digits-smoke
CONFIG_DIR ?= sweep_configs
PARALLEL ?= 2
# where sweep folders go (the guide's --output-dir); empty: test_matrix_results/
OUTPUT_DIR ?=
PYTEST_ARGS ?=

# The guide names the defconfigs resnet18/defconfigs/NAME; here they live in defconfigs/NAME.
RANGE_FILE := $(if $(wildcard $(RANGE_CONFIG)),$(RANGE_CONFIG),$(if $(wildcard defconfigs/$(notdir $(RANGE_CONFIG))),defconfigs/$(notdir $(RANGE_CONFIG)),$(RANGE_CONFIG)))
ifneq ($(RANGE_FILE),$(RANGE_CONFIG))
$(info RANGE_CONFIG=$(RANGE_CONFIG) not found; using $(RANGE_FILE))
endif
SWEEP_ARGS := $(if $(OUTPUT_DIR),--sweep-output=$(OUTPUT_DIR)) $(PYTEST_ARGS)

.PHONY: venv sweep sweep-parallel sweep-generate sweep-run sweep-clean test lint types docs unit bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# pinned: these install from local wheels; an unpinned torch is a multi-GB download
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	# dev: ruff and mypy; ray: the test suite runs the Ray backend on a simulated cluster;
	# docs: Sphinx, MyST-Parser and furo for the documentation site (built by `make test` too); search: Optuna;
	# tensorboard, mlflow: the trackers' tests read back what --sweep-tensorboard/--sweep-mlflow wrote
	$(PY) -m pip install -q -e ".[dev,ray,docs,search,tensorboard,mlflow]"
	touch $(STAMP)

## make sweep RANGE_CONFIG=FILE: generate every combination and run it (serial)
sweep: $(STAMP)
	$(PY) -m pytest --range-config=$(RANGE_FILE) $(SWEEP_ARGS)

## make sweep-parallel RANGE_CONFIG=FILE PARALLEL=4: the same on 4 xdist workers (one GPU each)
sweep-parallel: $(STAMP)
	$(PY) -m pytest --range-config=$(RANGE_FILE) -n $(PARALLEL) --dist=load $(SWEEP_ARGS)

## make sweep-generate RANGE_CONFIG=FILE: write sweep_configs/config_NNN + combinations_summary.txt
sweep-generate: $(STAMP)
	$(PY) -m pytest --range-config=$(RANGE_FILE) --sweep-generate=$(CONFIG_DIR)

## make sweep-run [OUTPUT_DIR=DIR]: run the configs generated into sweep_configs/
sweep-run: $(STAMP)
	$(PY) -m pytest --config-dir=$(CONFIG_DIR) $(SWEEP_ARGS)

## make sweep-clean: remove the generated configs (results stay in test_matrix_results/)
sweep-clean:
	rm -rf $(CONFIG_DIR)

## make test: lint, type checks, the docs build, then the project's own test suite (what CI runs)
test: lint types docs
	SWEEP_DOCS_SITE=$(DOCS_OUT)/html $(PY) -m pytest -q $(PYTEST_ARGS)

## make unit: the fast unit tests only (no pytest-in-pytest, no subprocess sweeps)
unit: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

## make lint: ruff (pytest-xdist's rules) and ruff format --check
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

## make types: mypy --strict on the installed layout, through a link tree pytest_sweep/{matrix,plugins,trainers}
TYPECHECK := build/typecheck
types: $(STAMP)
	rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)/pytest_sweep
	ln -s ../../../pytest_sweep/__init__.py ../../../pytest_sweep/py.typed $(TYPECHECK)/pytest_sweep/
	for pkg in matrix plugins trainers; do ln -s ../../../$$pkg $(TYPECHECK)/pytest_sweep/$$pkg; done
	cd $(TYPECHECK) && $(abspath $(PY)) -m mypy --config-file ../../pyproject.toml -p pytest_sweep

## make docs: the documentation site into build/docs/html; warnings and unresolved references fail it
## (-E: a full build every time; the reference pages are generated from the code, which Sphinx does not watch)
DOCS_OUT := build/docs
docs: $(STAMP)
	$(PY) -m sphinx -E -W --keep-going -n -q -b html -d $(DOCS_OUT)/doctrees docs $(DOCS_OUT)/html

## make bench: the benchmarks recorded in docs/benchmarks.md
bench: $(STAMP)
	$(PY) bench/run_all.py

clean: sweep-clean
	rm -rf $(VENV) .pytest_cache build .mypy_cache .ruff_cache
