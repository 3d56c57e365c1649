# Kassa: the two commands a fresh machine needs are `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_URL ?= postgres://postgres@127.0.0.1:5432/kassa
# Both cores: each pytest-xdist worker has its own test database. XDIST= runs serially.
XDIST ?= -n 2

.PHONY: install run test test-sqlite test-postgres bench lint lock browser clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

run: install
	$(BIN)/kassa run

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

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy kassa
	DATABASE_URL=sqlite:///var/lint.sqlite3 DJANGO_SETTINGS_MODULE=kassa.settings \
	  $(BIN)/python -m django makemigrations --check --dry-run

# Re-pin the lock file from pyproject.toml's ranges (needs the registries).
lock:
	rm -rf /tmp/kassa-lock && $(PYTHON) -m venv /tmp/kassa-lock
	/tmp/kassa-lock/bin/pip install --quiet '.[dev]'
	( echo '# The lock file: every version pinned. Regenerate with `make lock` after changing pyproject.toml.'; \
	  /tmp/kassa-lock/bin/pip freeze --exclude kassa ) > requirements.lock

clean:
	rm -rf $(VENV) var/test.sqlite3
