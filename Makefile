# LeadEngine developer commands. `make run` and `make test` work on a fresh clone.
# DATABASE_URL / REDIS_URL unset: PostgreSQL and Redis are embedded under .data/ (see README).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py
DEMO_PROPERTIES ?= 50000
DEMO_SEED ?= 42
DEMO_DAYS ?= 30
HOST ?= 127.0.0.1
PORT ?= 8000

# A laptop is a development machine: DEBUG on unless the environment says otherwise.
export DEBUG ?= true

# mypy imports the settings (django-stubs): URLs it never connects to, so that no embedded server starts.
MYPY := DATABASE_URL=postgres://localhost/leadengine REDIS_URL=redis://localhost:6379/0 $(BIN)/mypy

.PHONY: run setup worker beat test lint format bench schema screenshots stop reset-data lock

## The virtual environment, installed from the locks: every package pinned, every file checked against its hash.
## requirements.txt is what production runs; requirements-dev.txt adds development and tests.
$(BIN)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check --require-hashes --progress-bar on \
	  -r requirements.txt -r requirements-dev.txt
	touch $@

## Write the locks from requirements.in and requirements-dev.in (README, "Dependencies"). Versions already
## locked stay unless an .in file asks otherwise; LOCK_FLAGS=--upgrade takes the newest of everything,
## LOCK_FLAGS="--upgrade-package django" of one package.
LOCK := $(BIN)/uv pip compile --quiet --generate-hashes --universal --python-version 3.11 \
  --custom-compile-command "make lock" $(LOCK_FLAGS)
lock: $(BIN)/.installed
	$(LOCK) requirements.in -o requirements.txt
	$(LOCK) requirements-dev.in -o requirements-dev.txt

## Migrate, load the ZIP reference, seed the demo market (and its hidden truth) and its contractors once,
## play the demo market's last DEMO_DAYS days once (each day the nightly run as of that day, then the demo
## contractors' moves and outcomes; the last day is today's run), create the default job schedules that
## are missing and the staff roles, create the demo login: `manage.py setup`, every step in one process,
## numbered and timed, with a progress bar for the long ones (demo/management/commands/setup.py).
setup: $(BIN)/.installed
	$(MANAGE) setup --properties $(DEMO_PROPERTIES) --seed $(DEMO_SEED) --days $(DEMO_DAYS)

## Everything above, then the site, a Celery worker and beat together (Procfile.dev, honcho; Ctrl-C stops all).
run: setup
	@echo ""
	@echo "LeadEngine is starting on http://$(HOST):$(PORT)/"
	@echo "  Admin:    http://$(HOST):$(PORT)/admin/   (the dashboard; user demo, password demo)"
	@echo "  API docs: http://$(HOST):$(PORT)/api/docs/"
	@echo "  Health:   http://$(HOST):$(PORT)/readyz"
	@echo ""
	PATH="$(CURDIR)/$(BIN):$$PATH" HOST=$(HOST) PORT=$(PORT) $(BIN)/honcho start -f Procfile.dev

## A Celery worker: background runs started from the API or the admin, distributed scoring partitions.
worker: $(BIN)/.installed
	$(BIN)/celery -A leadengine worker -l info

## Celery beat: starts the jobs on the schedules staff edit in the admin (Periodic tasks). Run one only.
beat: $(BIN)/.installed
	$(BIN)/celery -A leadengine beat -l info

## Debian's Chromium for the browser tests (tests/browser, Playwright): installed when missing and root.
/usr/bin/chromium:
	@if [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
	  echo "The browser tests need Debian's Chromium: sudo apt-get install chromium"; exit 1; \
	fi

## Debian's wrk, the API benchmark's load generator (bench/api.py; its smoke test runs in make test).
/usr/bin/wrk:
	@if [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; \
	else \
	  echo "The API benchmark needs Debian's wrk: sudo apt-get install wrk"; exit 1; \
	fi

## Lint (the floor plan's import contracts included) and run the test suite (browser tests included)
## against real PostgreSQL and Redis.
test: $(BIN)/.installed /usr/bin/chromium /usr/bin/wrk
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(MYPY)
	$(MANAGE) makemigrations --check --dry-run
	$(BIN)/python -m pytest

## Ruff, and mypy (strict on core/ and every app's services and selectors; pyproject.toml [tool.mypy]).
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(MYPY)

format: $(BIN)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Write the OpenAPI schema the code generates to docs/openapi.yaml (a test fails when they differ).
schema: $(BIN)/.installed
	$(MANAGE) spectacular --validate --fail-on-warn --file docs/openapi.yaml

## Every benchmark at the README's sizes, then one table of their figures (bench/run_all.py; README, Speed), also
## written to bench/results.json. BENCH=leads (or BENCH="leads storm") runs those only; BENCH_SIZE=tiny runs them
## at the smoke tests' tiny sizes (figures to bench/results-tiny.json). Exit code 1 when one failed.
BENCH ?=
BENCH_SIZE ?= full
bench: $(BIN)/.installed /usr/bin/wrk
	$(BIN)/python bench/run_all.py --size $(BENCH_SIZE) $(if $(strip $(BENCH)),--bench "$(strip $(BENCH))")

## The back office's screenshots in docs/screenshots/ (README, Back office): the demo set up as `make setup` does,
## then `manage.py screenshots` serves it on a free local port and takes each page in Chromium at 1440 x 900.
screenshots: setup /usr/bin/chromium
	$(MANAGE) screenshots

## Stop the embedded PostgreSQL and Redis (their data stays under .data/).
stop:
	$(BIN)/python -c "from pathlib import Path; from leadengine.embedded import stop; stop(Path('.data'))"

## Stop the embedded servers and delete their data: the next `make run` starts from scratch.
reset-data: stop
	rm -rf .data
