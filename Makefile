# One command per job. `make demo` runs everything on SQLite with the sandboxes;
# `make test` runs ruff then pytest on PostgreSQL and Redis.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
# Web processes for `make demo` (uvicorn workers; one per core carries the most live viewers).
WEB ?= 2

export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/pampam
export REDIS_URL ?= redis://127.0.0.1:6379/0
TEST_ENV := SECRET_KEY=pampam-test-key DEBUG=0

.PHONY: venv install demo test lint format migrate bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

demo: install
	DEBUG=1 SECRET_KEY=pampam-demo-secret PORT=$(PORT) \
	DATABASE_URL=sqlite:///var/demo.sqlite3 REDIS_URL=redis://127.0.0.1:$$(( $(PORT) + 379 ))/0 \
	$(BIN)/python manage.py demo --port $(PORT) --web $(WEB)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(TEST_ENV) $(BIN)/python -m pytest

bench: install
	$(TEST_ENV) $(BIN)/python bench/run_all.py

clean:
	rm -rf var/*.sqlite3 var/static var/kubeconfig var/*-state.json
