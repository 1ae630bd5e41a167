# consentgate — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
NPM_STAMP := contracts/node_modules/.installed

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-12s %s\n",$$1,$$2}'

$(STAMP): pyproject.toml setup.py fastpath_build.py $(wildcard fastpath/*.pyx fastpath/*.pxd)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	touch $@

install: $(STAMP) ## Create .venv and install the package, its extensions and dev tools

$(NPM_STAMP): contracts/package.json contracts/package-lock.json
	cd contracts && npm ci --no-audit --no-fund --loglevel=error
	touch $@

npm: $(NPM_STAMP) ## Install the pinned solc, OpenZeppelin and anvil from the npm registry

run: $(STAMP) ## Serve the API on the embedded chain (SQLite under ./data; honours CONSENTGATE_*)
	$(VENV)/bin/consentgate serve

demo: $(STAMP) ## Walk through request -> grant -> check -> withdraw -> check against a running server
	$(VENV)/bin/consentgate demo

test: $(STAMP) $(NPM_STAMP) ## Run the whole test suite
	$(VENV)/bin/pytest -q

lint: $(STAMP) ## ruff + mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

contracts: $(NPM_STAMP) $(STAMP) ## Recompile the Solidity sources into contracts/artifacts
	$(PY) -m contracts.build

bench: $(STAMP) ## Benchmarks (pytest-benchmark)
	$(VENV)/bin/pytest -q tests --benchmark-enable --benchmark-only -p no:randomly

FUZZ_RUNS ?= 200000
fuzz: $(STAMP) ## Fuzz the compiled QR token verifier against the reference with atheris (FUZZ_RUNS=N)
	$(PIP) install -q atheris
	$(PY) -m tests.fastpath.fuzz_atheris -runs=$(FUZZ_RUNS)

loadtest: SHAPE ?= soak
loadtest: SCALE ?= 0.01
loadtest: DURATION ?= 60
loadtest: WORKERS ?= 0
loadtest: OUT ?= loadtest/out
loadtest: $(STAMP) ## Locust load test, headless: SHAPE=soak|day|spike SCALE=0.01 DURATION=60 WORKERS=0 [TARGET=URL] (loadtest/README.md)
	$(PY) -m loadtest --shape $(SHAPE) --scale $(SCALE) --duration $(DURATION) \
		--workers $(WORKERS) --out $(OUT) $(if $(TARGET),--target $(TARGET)) $(LOADTEST_ARGS)

clean: ## Remove build products (keeps ./data)
	rm -rf build *.egg-info fastpath/*.c fastpath/*.so

.PHONY: help install npm run demo test lint contracts bench fuzz loadtest clean
