# Development entry points. `make demo` and `make test` bootstrap .venv themselves.
PYTHON := $(shell scripts/find-python)
VENV := .venv
BIN := $(VENV)/bin
DISTS := . plugins/trollmoves_ftp plugins/trollmoves_ssh plugins/trollmoves_s3 plugins/trollmoves_roles plugins/trollmoves_mqtt
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv upstream demo test lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml plugins/*/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(foreach d,$(DISTS),-e $(d)) -e '.[test]'
	$(BIN)/python -m pip download -q -d $(VENV)/wheelhouse setuptools pluggy pyyaml trollsift watchdog
	touch $(STAMP)

demo: venv
	scripts/in-netns $(BIN)/python scripts/demo.py

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

clean:
	rm -rf $(VENV) build dist *.egg-info plugins/*/*.egg-info plugins/*/build
