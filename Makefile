# The two commands of the README: `make run` (the offline demo) and `make test` (everything).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint pytest bench install browser clean

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# the local Solana node (surfpool's surfnet) the demo and the tests run against
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# headless Chromium and its WebDriver, for the tests that load the pages (Debian packages)
browser:
	(command -v chromium && command -v chromedriver) >/dev/null 2>&1 || \
		(apt-get update -qq && \
		 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver)

run: install
	$(BIN)/liqmap demo

test: install lint pytest

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

pytest: install
	$(BIN)/python -m pytest -n 2

bench: install
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache demo-out
