# edgeloop: every target creates and uses .venv by itself.
#   make demo   - install, start the local stack, run the end-to-end demo
#   make test   - install, lint, then the whole test suite against the real stack
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# train brings torch (a CUDA build, ~5 GB, runs on the CPU) so the training tests run too;
# a device installs only edgeloop[edge].
EXTRAS ?= edge,cloud,dev,train
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)-$(subst $(comma),_,$(EXTRAS))
comma := ,
PYTEST_ARGS ?=

.PHONY: install lint format typecheck test test-unit test-integration demo bench models devstack-up devstack-down devstack-status schemas clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/edgeloop schemas check

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

schemas: install
	$(BIN)/edgeloop schemas export

# Build/download the services first, with progress on the terminal, so that no
# test's timeout includes a cold build.
test: lint
	$(BIN)/edgeloop devstack prepare
	@set +e; $(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose" >&2; exit 1; fi; \
	exit $$rc

test-unit: install
	@set +e; $(BIN)/python -m pytest -m "not integration" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests ran" >&2; exit 1; fi; exit $$rc

test-integration: install
	$(BIN)/edgeloop devstack prepare
	@set +e; $(BIN)/python -m pytest -m integration $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests ran" >&2; exit 1; fi; exit $$rc

devstack-up: install
	$(BIN)/edgeloop devstack up

devstack-down: install
	$(BIN)/edgeloop devstack down

devstack-status: install
	$(BIN)/edgeloop devstack status

demo: devstack-up
	$(BIN)/python scripts/demo.py

bench: install
	$(BIN)/edgeloop bench codec --json --out reports/bench-codec.json
	$(BIN)/edgeloop bench edge --json --out reports/bench-edge.json

# Rebuild the built-in models from simulator data (torch comes with the train extra).
models: install
	scripts/build_anomaly_model.sh
	scripts/build_models.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build *.egg-info
