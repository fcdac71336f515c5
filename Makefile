# pytest-sweep: thin wrappers around pytest, as in the sweep guide.
# Every target bootstraps the virtual environment it needs (.venv) on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The strict editable install links every file of the package under build/__editable__.*/pytest_sweep
# (mypy and editors follow it; nothing else of the checkout is importable as pytest_sweep).  A new or
# removed module changes its folder's time stamp, and the links are made again.
PACKAGE_DIRS := src/pytest_sweep matrix plugins trainers trainers/assets
EDITABLE := $(VENV)/.editable
RANGE_CONFIG ?= defconfigs/resnet18-digits-smoke
CONFIG_DIR ?= sweep_configs
PARALLEL ?= 2
# where sweep folders go (the guide's --output-dir); empty: test_matrix_results/
OUTPUT_DIR ?=
PYTEST_ARGS ?=
## the suite's xdist workers (make test): one per core; the Ray tests share one worker (loadgroup)
TEST_WORKERS ?= auto

# The guide names the defconfigs resnet18/defconfigs/NAME; here they live in defconfigs/NAME.
RANGE_FILE := $(if $(wildcard $(RANGE_CONFIG)),$(RANGE_CONFIG),$(if $(wildcard defconfigs/$(notdir $(RANGE_CONFIG))),defconfigs/$(notdir $(RANGE_CONFIG)),$(RANGE_CONFIG)))
ifneq ($(RANGE_FILE),$(RANGE_CONFIG))
$(info RANGE_CONFIG=$(RANGE_CONFIG) not found; using $(RANGE_FILE))
endif
SWEEP_ARGS := $(if $(OUTPUT_DIR),--sweep-output=$(OUTPUT_DIR)) $(PYTEST_ARGS)

.PHONY: venv sweep sweep-parallel sweep-generate sweep-run sweep-clean test test-wheel lint types docs unit bench clean

venv: $(EDITABLE)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# exact versions from constraints.txt (the metadata has ranges): torch 2.14.1 and torchvision
	# 0.29.1 install from local wheels.  dev: ruff, pylint and mypy; ray: the suite runs the Ray backend on
	# a simulated cluster; vision: CIFAR-10/MNIST; docs: Sphinx, MyST-Parser and furo for the
	# documentation site (built by `make test` too); search: Optuna; tensorboard, mlflow: the trackers'
	# tests read back what --sweep-tensorboard/--sweep-mlflow wrote; setuptools: the editable install
	# is remade without build isolation
	$(PY) -m pip install -q -c constraints.txt setuptools -e ".[dev,ray,vision,docs,search,tensorboard,mlflow]" --config-settings editable_mode=strict
	touch $(STAMP) $(EDITABLE)

$(EDITABLE): $(STAMP) $(PACKAGE_DIRS)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e . --config-settings editable_mode=strict
	touch $(EDITABLE)

## make sweep RANGE_CONFIG=FILE: generate every combination and run it (serial)
sweep: $(EDITABLE)
	$(PY) -m pytest --range-config=$(RANGE_FILE) $(SWEEP_ARGS)

## make sweep-parallel RANGE_CONFIG=FILE PARALLEL=4: the same on 4 xdist workers (one GPU each)
sweep-parallel: $(EDITABLE)
	$(PY) -m pytest --range-config=$(RANGE_FILE) -n $(PARALLEL) --dist=load $(SWEEP_ARGS)

## make sweep-generate RANGE_CONFIG=FILE: write sweep_configs/config_NNN + combinations_summary.txt
sweep-generate: $(EDITABLE)
	$(PY) -m pytest --range-config=$(RANGE_FILE) --sweep-generate=$(CONFIG_DIR)

## make sweep-run [OUTPUT_DIR=DIR]: run the configs generated into sweep_configs/
sweep-run: $(EDITABLE)
	$(PY) -m pytest --config-dir=$(CONFIG_DIR) $(SWEEP_ARGS)

## make sweep-clean: remove the generated configs (results stay in test_matrix_results/)
sweep-clean:
	rm -rf $(CONFIG_DIR)

## make test: lint, type checks, the docs build, the project's own test suite, then test-wheel (what CI runs)
test: lint types docs
	SWEEP_DOCS_SITE=$(DOCS_OUT)/html $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)
	$(PY) .ci/test_wheel.py

## make test-wheel: end-to-end tests against the built wheel, installed normally outside the checkout
test-wheel: $(STAMP)
	$(PY) .ci/test_wheel.py

## make unit: the fast unit tests only (no pytest-in-pytest, no subprocess sweeps)
unit: $(EDITABLE)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

## make lint: ruff (pytest-xdist's rules), ruff format --check, and no copy-pasted blocks in the
## product code (pylint's duplicate-code check alone; its settings are pyproject's [tool.pylint])
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pylint $(PACKAGE_DIRS)

## make types: mypy --strict on the installed package, pytest_sweep.* (the strict editable install), then on tests/
## (each test file a top-level module, as pytest's rootdir conftest imports them; relaxations in pyproject)
types: $(EDITABLE)
	$(PY) -m mypy -p pytest_sweep
	$(PY) -m mypy tests

## make docs: the documentation site into build/docs/html; warnings and unresolved references fail it
## (-E: a full build every time; the reference pages are generated from the code, which Sphinx does not watch)
DOCS_OUT := build/docs
docs: $(EDITABLE)
	$(PY) -m sphinx -E -W --keep-going -n -q -b html -d $(DOCS_OUT)/doctrees docs $(DOCS_OUT)/html

## make bench: the benchmarks recorded in docs/benchmarks.md
bench: $(EDITABLE)
	$(PY) bench/run_all.py

clean: sweep-clean
	rm -rf $(VENV) .pytest_cache build .mypy_cache .ruff_cache
