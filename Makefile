# Kassa: the two commands a fresh machine needs are `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_URL ?= postgres://postgres@127.0.0.1:5432/kassa
# Both cores: each pytest-xdist worker has its own test database. XDIST= runs serially.
XDIST ?= -n 2

.PHONY: install run test test-sqlite test-postgres bench bench-refunds lint lock browser clean

install: $(STAMP)

# Development machines and CI get both lock files: the runtime one and the tools on top of it.
# Every file pip fetches must match a hash in them; Kassa itself goes in after, without
# dependencies, since the lock files already hold every one.
$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes \
	  -r requirements.lock -r requirements-dev.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# `make run PORT=8001` serves on another port.
PORT ?= 8000
run:
	@test -f $(STAMP) || echo "Installing Kassa into .venv/ from the lock files (1-4 minutes the first time)..."
	@$(MAKE) --no-print-directory install
	@echo "Serving Kassa on http://127.0.0.1:$(PORT) (Ctrl-C stops it)"
	$(BIN)/kassa run --port $(PORT)

# The whole suite on SQLite, then on PostgreSQL. CI (CI=true) never skips PostgreSQL:
# scripts/postgres-up starts the local cluster when PG_URL names it and it is down; in CI a
# PostgreSQL that does not answer fails the run.
test: install browser
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-postgres

test-sqlite: install
	env -u KASSA_REPORTS_DATABASE_URL DATABASE_URL=sqlite:///var/test.sqlite3 \
	  $(BIN)/pytest -q $(XDIST) $(PYTEST_ARGS)

test-postgres: install
	@if scripts/postgres-up "$(PG_URL)"; then \
	  env -u KASSA_REPORTS_DATABASE_URL DATABASE_URL=$(PG_URL) \
	    $(BIN)/pytest -q $(XDIST) $(PYTEST_ARGS); \
	elif [ "$$CI" = "true" ]; then echo "PostgreSQL is required in CI" >&2; exit 1; \
	else echo "PostgreSQL is not reachable: skipping the PostgreSQL run (CI never skips it)" >&2; fi

# Headless Chromium for the browser tests, from Debian's package (Playwright's own download
# cannot work on these machines).
browser:
	@test -x /usr/bin/chromium || scripts/install-chromium

# The reports over the ten-million-posting history, then the refund API beside the bare SQL
# refund on pgbench (bench/refunds.py, about 2½ minutes; `make bench-refunds` alone).
bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(BIN)/python -m bench --refunds $(REFUNDS_ARGS)

bench-refunds: install
	$(BIN)/python -m bench --refunds $(REFUNDS_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy kassa bench
	DATABASE_URL=sqlite:///var/lint.sqlite3 DJANGO_SETTINGS_MODULE=kassa.settings \
	  $(BIN)/python -m django makemigrations --check --dry-run

# Re-pin both lock files from pyproject.toml (needs the registries): requirements.lock from
# [project] dependencies, what the wheel needs; requirements-dev.lock from the `dev` extra,
# constrained to requirements.lock so the two agree. uv keeps the pins it finds in its output
# file and resolves only what is new: the runtime pass starts from a copy of the development
# lock, so a package that becomes a runtime dependency keeps the version the tools had.
# `make lock LOCK_ARGS=--upgrade` (or `LOCK_ARGS="--upgrade-package django"`) moves pins.
# Locked for the machines (CPython 3.11, Linux x86_64); each pin lists the hash of every file
# of its release, so pip may pick whichever wheel fits.
UV_VERSION := 0.13.9
LOCK_TOOL := build/lock-tool
UV_COMPILE := UV_CUSTOM_COMPILE_COMMAND='make lock' $(LOCK_TOOL)/bin/uv pip compile --quiet \
  --generate-hashes --python-version 3.11 --python-platform x86_64-unknown-linux-gnu
LOCK_ARGS ?=
lock:
	test -x $(LOCK_TOOL)/bin/pip || $(PYTHON) -m venv $(LOCK_TOOL)
	$(LOCK_TOOL)/bin/pip install --quiet --disable-pip-version-check 'uv==$(UV_VERSION)'
	cp requirements-dev.lock $(LOCK_TOOL)/runtime.lock 2>/dev/null || : > $(LOCK_TOOL)/runtime.lock
	$(UV_COMPILE) $(LOCK_ARGS) pyproject.toml -o $(LOCK_TOOL)/runtime.lock
	mv $(LOCK_TOOL)/runtime.lock requirements.lock
	$(UV_COMPILE) $(LOCK_ARGS) --extra dev -c requirements.lock pyproject.toml \
	  -o requirements-dev.lock

clean:
	rm -rf $(VENV) var/test.sqlite3
