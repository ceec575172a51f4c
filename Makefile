# TVBingX: `make run` sets up and starts the platform; `make test` sets up and runs the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP_INSTALL := $(BIN)/pip install --quiet --disable-pip-version-check

.PHONY: run test lint setup worker beat stream field-key clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "TVBingX needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.base-installed: $(BIN)/python requirements/base.txt requirements/constraints.txt
	$(PIP_INSTALL) -r requirements/base.txt -c requirements/constraints.txt
	@touch $@

$(VENV)/.dev-installed: $(VENV)/.base-installed requirements/dev.txt
	$(PIP_INSTALL) -r requirements/dev.txt -c requirements/constraints.txt
	@touch $@

.env:
	cp .env.example .env
	@echo "Created .env from .env.example (embedded default: SQLite, in-process tasks, dry-run)."

## setup: virtualenv, pinned dependencies, .env, database, admin user and default account.
setup: $(VENV)/.base-installed .env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py bootstrap

## run: set up, then serve HTTP + WebSocket on HOST:PORT (default 127.0.0.1:8000).
run: setup
	$(BIN)/python manage.py serve

## test: set up, then run the whole suite (PostgreSQL/Redis tests skip, saying why, when absent).
test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## lint: ruff checks (also run by CI).
lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## worker / beat / stream: the background processes for production (REDIS_URL set).
worker: $(VENV)/.base-installed
	$(BIN)/celery -A tvbingx worker --loglevel INFO

beat: $(VENV)/.base-installed
	$(BIN)/celery -A tvbingx beat --loglevel INFO

## stream: the BingX user-data stream consumer for live/demo accounts.
stream: $(VENV)/.base-installed
	$(BIN)/python manage.py run_stream

## field-key: print a new key for FIELD_ENCRYPTION_KEYS.
field-key: $(VENV)/.base-installed
	@$(BIN)/python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
