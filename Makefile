# Everything a fresh machine with Python 3.11 needs: `make demo` and `make test` set up the
# virtual environment from the lock file first (once; again when the lock changes).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
UV_VERSION := 0.13.9

export DAGSTER_HOME ?= $(CURDIR)/dagster_home
export PATH := $(BIN):$(PATH)
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export GX_ANALYTICS_ENABLED := False
export DAGSTER_DISABLE_TELEMETRY := 1
export PYTHONWARNINGS := ignore::DeprecationWarning,ignore::FutureWarning

DEMO_START ?= 2013-01-01
DEMO_END   ?= 2013-01-14

.PHONY: setup demo test ui bench lock clean

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

setup: $(VENV)/.installed

## The main job on the embedded default: ingest, validate and build features for DEMO_START..DEMO_END
demo: setup
	dagster asset materialize -m pipelines.definitions --select '*flight_features' \
		--partition-range $(DEMO_START)...$(DEMO_END)
	python -m pipelines.summary $(DEMO_START) $(DEMO_END)

## The test suite (unit + end-to-end through the dagster CLI); CI runs exactly this
test: setup
	python -m pytest -q

## The Dagster UI on http://127.0.0.1:3000 (loopback only)
ui: setup
	dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

## Benchmarks (full year); figures are printed and written to bench/results/
bench: setup
	python bench/bench_data_foundation.py

## Re-resolve the lock file after changing dependencies in pyproject.toml
lock:
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes \
		--quiet -o requirements.lock

clean:
	rm -rf data/warehouse.db* data/gx data/reports
