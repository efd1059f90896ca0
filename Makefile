# statewright: `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint typecheck unit chaos example diagrams bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	touch $(BENCH_STAMP)

## Relocate a sample installation end to end on the embedded default (SQLite, in-process worker).
## `make demo WEB=1` also serves the console at http://127.0.0.1:8080 to watch it.
demo: install
	$(BIN)/statewright demo $(if $(WEB),--web)

## Lint, type-check, run the whole suite and the example application (from the wheel).
test: install lint typecheck unit example

lint: install
	$(BIN)/ruff check engine models workflows tests alembic bench
	$(BIN)/ruff format --check engine models workflows tests alembic bench

typecheck: install
	$(BIN)/python .ci/typecheck

## The suite in $(PYTEST_WORKERS) processes side by side (pytest-xdist; each has its own
## PostgreSQL database, queues and worker node names), then the chaos suite on its own: it
## restarts Redis and RabbitMQ under every test beside it. Either failing (pytest's exit 5,
## no tests collected, included) fails `make unit`, after both have run.
PYTEST_WORKERS ?= 2
## Items of the Map chaos test in `make unit` (the issue's 10,000; fewer for a quick run).
CHAOS_MAP_ITEMS ?= 10000

unit: install
	@parallel=0; chaos=0; \
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist worksteal --durations=15 --ignore=tests/chaos \
		|| parallel=$$?; \
	STATEWRIGHT_CHAOS_MAP_ITEMS=$(CHAOS_MAP_ITEMS) $(BIN)/pytest tests/chaos || chaos=$$?; \
	if [ $$parallel -ne 0 ] || [ $$chaos -ne 0 ]; then \
		echo "make unit: the suite exited $$parallel, the chaos suite $$chaos" >&2; exit 1; \
	fi

## Only the chaos suite (alone: nothing else may use Redis or RabbitMQ meanwhile).
chaos: install
	$(BIN)/pytest tests/chaos

## The loan service in tests/example_app, on statewright's wheel in a fresh virtualenv.
example: install
	PYTHON=$(BIN)/python .ci/example

## Benchmarks against raw Celery and DBOS on PostgreSQL + Redis (not part of `make test`).
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

## Redraw diagrams/ from the shipped workflow definitions.
diagrams: install
	$(BIN)/statewright diagram --all diagrams

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .statewright
