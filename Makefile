# The two commands of the README: `make run` and `make test`. Both set up everything they need on a
# fresh machine (virtual environment, Python packages, system packages, data).

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
DATA_DIR ?= data
PERSONS ?= 100000
SEED ?= 20261128
DEFAULT_RAW := $(DATA_DIR)/synthetic-$(PERSONS)-$(SEED)
DEFAULT_DB := $(DATA_DIR)/sundstat-$(PERSONS)-$(SEED).duckdb
STATE_DIR ?= state

.PHONY: run test install install-run system-deps oidc-provider data lint typecheck pytest bench clean

run: data
	$(BIN)/sundstat serve --db $(DEFAULT_DB) --state-dir $(STATE_DIR)

test: install system-deps lint typecheck pytest

# `make test` installs everything, the optional extras too (Spark for the scale-out tests, psycopg for
# the PostgreSQL ledger); `make run` only what serving the embedded DuckDB dataset needs.
install: $(STAMP)

install-run: $(RUN_STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required: install python3.11 (or set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,spark,postgres]"
	touch $(STAMP) $(RUN_STAMP)

$(RUN_STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required: install python3.11 (or set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

# Debian's chromium drives the browser tests (Playwright cannot download its own browser here);
# Debian's postgresql gives the PostgreSQL ledger tests a real server (started by the tests themselves);
# Java runs Spark local for the Spark parity tests; node and npm run the OpenID Connect provider of the
# sign-in tests (tests/oidc).
APT_PACKAGES = $(if $(shell command -v chromium),,chromium) \
	$(if $(shell command -v initdb || ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null),,postgresql) \
	$(if $(shell command -v java),,openjdk-17-jre-headless) \
	$(if $(shell command -v node),,nodejs) \
	$(if $(shell command -v npm),,npm)

system-deps:
	@if [ -n "$(strip $(APT_PACKAGES))" ]; then \
		echo "installing Debian packages: $(strip $(APT_PACKAGES))"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi

# The test OpenID Connect provider's npm packages (versions pinned in tests/oidc/package-lock.json).
OIDC_MODULES := tests/oidc/node_modules/.package-lock.json

oidc-provider: $(OIDC_MODULES)

$(OIDC_MODULES): tests/oidc/package.json tests/oidc/package-lock.json | system-deps
	cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error
	touch $@

data: install-run $(DEFAULT_DB)

$(DEFAULT_DB):
	$(BIN)/sundstat generate --persons $(PERSONS) --seed $(SEED) --out $(DEFAULT_RAW)
	$(BIN)/sundstat build $(DEFAULT_RAW) --db $(DEFAULT_DB)

lint: install
	$(BIN)/ruff check query_engine budget_ledger service dashboard datasets benchmarks tests
	$(BIN)/ruff format --check query_engine budget_ledger service dashboard datasets benchmarks tests
	$(BIN)/lint-imports --no-cache  # the dependency rule: [tool.importlinter] in pyproject.toml

typecheck: install
	$(BIN)/mypy

pytest: install system-deps oidc-provider
	SUNDSTAT_REQUIRE_POSTGRES=1 SUNDSTAT_REQUIRE_OIDC=1 SUNDSTAT_REQUIRE_SPARK=1 SUNDSTAT_REQUIRE_BROWSER=1 \
		$(BIN)/python -m pytest -q

bench: data
	$(BIN)/python -m benchmarks.engine --persons 1000000

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-output tests/oidc/node_modules
