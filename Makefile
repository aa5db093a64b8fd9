# Two commands for people (`make run`, `make test`); everything else is plumbing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# GraphiQL's and Swagger UI's files, from npm at the versions pinned in app/static/package-lock.json.
ASSETS := app/static/node_modules/.installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
# The GraphQL-over-HTTP audit (tests/test_audit.py): graphql-http, pinned by its lock file.
AUDIT  := tests/audit

.PHONY: run test test-postgres bench bench-postgres bench-layers lint typecheck pytest lock assets clean

run: $(VENV)/.runtime $(ASSETS)
	@echo "Serving on http://$${HOST:-127.0.0.1}:$${PORT:-8000} (GraphiQL at /graphql, REST docs at /docs); Ctrl-C stops."
	$(BIN)/python -m app

test: $(VENV)/.dev lint typecheck pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev
	$(BIN)/mypy

pytest: $(VENV)/.dev $(ASSETS) $(AUDIT)/node_modules/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The same suite on PostgreSQL (127.0.0.1:5432, user postgres); it creates and drops its database.
test-postgres: $(VENV)/.dev $(ASSETS) $(AUDIT)/node_modules/.installed
	TEST_DATABASE=postgresql $(BIN)/python -m pytest $(PYTEST_ARGS)

# Load figures against hand-written reference handlers (bench/README.md); needs wrk.
bench: $(VENV)/.dev $(ASSETS)
	@command -v wrk >/dev/null || { echo "make bench needs wrk: sudo apt-get install wrk"; exit 1; }
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# The same on PostgreSQL (127.0.0.1:5432, user postgres), against a PostgreSQL ceiling and
# beside the service on SQLite; it creates and drops its own database.
bench-postgres: $(VENV)/.dev $(ASSETS)
	@command -v wrk >/dev/null || { echo "make bench-postgres needs wrk: sudo apt-get install wrk"; exit 1; }
	$(BIN)/python -m bench.run --database postgresql $(BENCH_ARGS)

# Where a request's time goes: the ASGI app called in-process, layer by layer (no wrk needed).
bench-layers: $(VENV)/.dev $(ASSETS)
	$(BIN)/python -m bench.inprocess $(BENCH_ARGS)

$(VENV)/bin/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.lock | $(VENV)/bin/python
	@echo "Installing the pinned Python dependencies into .venv (the first time takes a minute or two)..."
	$(PIP) install -r requirements.lock
	touch $@

$(AUDIT)/node_modules/.installed: $(AUDIT)/package-lock.json
	cd $(AUDIT) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

$(VENV)/.dev: requirements-dev.lock requirements.lock | $(VENV)/bin/python
	@echo "Installing the pinned Python dependencies and test tools into .venv (the first time takes a minute or two)..."
	$(PIP) install -r requirements-dev.lock
	touch $@ $(VENV)/.runtime

# npm checks every package against the integrity hash in the lock file; --ignore-scripts
# runs nothing from the packages (one of them would otherwise phone home on install).
assets: $(ASSETS)
$(ASSETS): app/static/package.json app/static/package-lock.json
	@command -v npm >/dev/null || { echo "GraphiQL's and /docs' files come from npm: install Node.js 20+ with npm"; exit 1; }
	@echo "Installing GraphiQL and Swagger UI from npm (pinned in app/static/package-lock.json)..."
	cd app/static && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

# Re-resolve the pinned trees from pyproject.toml's ranges in a scratch environment.
DEPS = $(PYTHON) -c 'import sys,tomllib; p=tomllib.load(open("pyproject.toml","rb"))["project"]; print("\n".join(p["dependencies"] if sys.argv[1]=="run" else p["optional-dependencies"]["dev"]))'
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	$(DEPS) run > .lock-venv/run.txt && $(DEPS) dev > .lock-venv/dev.txt
	.lock-venv/bin/pip install -q -r .lock-venv/run.txt
	.lock-venv/bin/pip freeze > requirements.lock
	.lock-venv/bin/pip install -q -r .lock-venv/run.txt -r .lock-venv/dev.txt
	(echo "-r requirements.lock"; .lock-venv/bin/pip freeze | grep -vxFf requirements.lock) > requirements-dev.lock
	rm -rf .lock-venv

# Removes what make installed; the data (var/) stays: `rm -rf var` starts afresh.
clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache app/static/node_modules $(AUDIT)/node_modules
