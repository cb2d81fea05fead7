# The two commands a newcomer needs: `make dev` runs Stamp, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_DEV_ENV := STAMP_ENV=dev DATABASE_URL=sqlite:///var/stamp.db QUEUE_URL=sqlite:///var/queue.db

.PHONY: dev test install lint typecheck check bench soak faults clean

$(BIN)/stamp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/stamp

install: $(BIN)/stamp

dev: install
	$(STAMP_DEV_ENV) $(BIN)/stamp migrate
	$(STAMP_DEV_ENV) $(BIN)/stamp demo --host 127.0.0.1 --port 8000

test: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy

# `make bench` runs every benchmark and prints one table (ONLY=intake,winback for some,
# QUICK=1 for small sizes); results in var/bench/<timestamp>.json. See bench/README.md.
bench: install
	$(BIN)/python -m bench.all $(if $(ONLY),--only $(ONLY)) $(if $(QUICK),--quick)

# Mixed load on scripts/scale.sh (SECONDS=600 by default), then ledger verify and RSS.
soak: install
	$(BIN)/python -m bench.soak $(if $(SECONDS),--seconds $(SECONDS))

# Fault scenarios on a throwaway PostgreSQL and Redis (never the shared ones).
faults: install
	$(BIN)/python -m bench.faults $(if $(ONLY),--only $(ONLY))

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
