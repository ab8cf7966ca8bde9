# Development entry points. `make demo` and `make test` bootstrap .venv themselves.
PYTHON := $(shell scripts/find-python)
VENV := .venv
BIN := $(VENV)/bin
DISTS := . plugins/trollmoves_ftp plugins/trollmoves_ssh plugins/trollmoves_s3 plugins/trollmoves_roles plugins/trollmoves_mqtt plugins/trollmoves_http plugins/trollmoves_fsspec plugins/trollmoves_wis2
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv upstream demo test lint bench dist clean

venv: $(STAMP)

$(STAMP): pyproject.toml plugins/*/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(foreach d,$(DISTS),-e $(d)) -e '.[test,bench]'
	$(BIN)/python -m pip download -q -d $(VENV)/wheelhouse setuptools pluggy pyyaml trollsift watchdog
	touch $(STAMP)

demo: venv
	scripts/in-netns $(BIN)/python scripts/demo.py $(DEMO_ARGS)

test: venv upstream
	scripts/install-system-deps
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	scripts/in-netns $(BIN)/python -m pytest $(PYTEST_ARGS)

upstream:
	scripts/upstream-venv

lint: venv
	$(BIN)/ruff check .
	$(BIN)/lint-imports

bench: venv
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

# Wheels and sdists of every distribution in DISTS into $(DIST_DIR), checked with twine.
# BUILD_ARGS=--no-isolation builds with the venv's setuptools instead of a fresh one per build.
DIST_DIR ?= dist
dist: venv
	rm -rf $(DIST_DIR)
	$(foreach d,$(DISTS),$(BIN)/python -m build -q $(BUILD_ARGS) --outdir $(DIST_DIR) $(d) &&) true
	$(BIN)/twine check --strict $(DIST_DIR)/*

clean:
	rm -rf $(VENV) build dist *.egg-info plugins/*/*.egg-info plugins/*/build
