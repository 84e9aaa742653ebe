# Everything a fresh machine with Python 3.11 needs: `make demo` and `make test` set up the
# virtual environment from the lock file first (once; again when the lock changes).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
UV_VERSION := 0.13.9

# The PostgreSQL profile: one setting, FLIGHTS_POSTGRES_URL (a server URL without database, e.g.
# postgresql+psycopg2://pipeline:$$PW@127.0.0.1:54329), moves the Dagster instance (database
# `dagster`, through deploy/postgres/dagster.yaml), the warehouse (`warehouse`) and the MLflow
# tracking store (`mlflow`) to that server. Unset: SQLite files under dagster_home/ and data/.
ifdef FLIGHTS_POSTGRES_URL
export DAGSTER_HOME ?= $(CURDIR)/deploy/postgres
export DAGSTER_PG_URL ?= $(FLIGHTS_POSTGRES_URL)/dagster
else
export DAGSTER_HOME ?= $(CURDIR)/dagster_home
endif
export PATH := $(BIN):$(PATH)
# `dg` (pyproject.toml [tool.dg]) checks that the environment it runs in is the project's own
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
# Telemetry and warning filters: resources/settings.py (configure_process), nowhere else.

DEMO_START ?= 2013-01-01
DEMO_TRAIN_END ?= 2013-03-01
DEMO_END   ?= 2013-03-31
SERVE_PORT ?= 5001

.PHONY: setup demo test lint test-postgres postgres-up postgres-down mlflow-server-up mlflow-server-down evidently-ui team-up team-down images test-team broker-up workers ui serve mlflow-ui bench bench-team replay drills lock clean

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

setup: $(VENV)/.installed

## The whole loop on the embedded default (pipelines/commands/demo.py): ingest + validate + features for
## DEMO_START..DEMO_TRAIN_END (one CLI run), the first model (retrain_job), then the Dagster daemon
## replays the following days through the sensors until the first sensor-triggered retrain is
## decided (or DEMO_END), and prints the chain and where to look. Logs: data/demo/*.log
demo: setup
	flights-demo --start $(DEMO_START) --train-end $(DEMO_TRAIN_END) --end $(DEMO_END)

## The champion on http://127.0.0.1:$(SERVE_PORT) (loopback only), following the registry alias: two workers
## that switch versions at one instant, X-Model-Version on every response, served flights recorded
serve: setup
	flights-serve --port $(SERVE_PORT)

## The MLflow UI on http://127.0.0.1:5000 (loopback only), over the settings' tracking store
mlflow-ui: setup
	flights-mlflow-ui --port 5000

## The Evidently UI on http://127.0.0.1:8000 (loopback only), over the local monitoring workspace
## (data/evidently): the dashboard of daily drift and performance, each day's snapshot
evidently-ui: setup
	flights-evidently-ui --port 8000

## The lint (ruff, configured in pyproject.toml); part of `make test`
lint: setup
	ruff check .

## The test suite: lint, `dg check defs` (the definitions load and validate), then unit, integration
## and end-to-end tests (tests/unit, tests/integration, tests/e2e); CI runs exactly this, then
## `make test-postgres` and `make test-team`
test: setup lint
	dg check defs
	python -m pytest -q -m "not team"

## The end-to-end tests again with every store on PostgreSQL: a server on loopback (the OS
## package, installed if missing), a fresh database per store and test; CI runs this after `test`
test-postgres: setup
	@eval "$$(FLIGHTS_POSTGRES_UNSAFE_FAST=1 deploy/postgres/local_server.sh start)" && \
		FLIGHTS_TEST_POSTGRES_URL="$$FLIGHTS_POSTGRES_URL" python -m pytest -q -m e2e

## A PostgreSQL server on loopback for the profile: `eval "$$(make -s postgres-up)"` exports
## FLIGHTS_POSTGRES_URL; `make postgres-down` stops it
postgres-up:
	@deploy/postgres/local_server.sh start

postgres-down:
	@deploy/postgres/local_server.sh stop

## The team profile's MLflow tracking server on loopback (PostgreSQL backend with
## FLIGHTS_POSTGRES_URL, artifacts proxied, basic-auth): `eval "$$(make -s mlflow-server-up)"`
## exports MLFLOW_TRACKING_URI (http) and MLFLOW_TRACKING_USERNAME/_PASSWORD
mlflow-server-up: setup
	@deploy/mlflow/local_server.sh start

mlflow-server-down:
	@deploy/mlflow/local_server.sh stop

## The team profile as containers (deploy/team/compose.yaml), each its own host: PostgreSQL, Redis,
## the MLflow tracking server, the Evidently UI, the Dagster code location, daemon, webserver behind
## an authenticating proxy (:3000) and read-only audit webserver (:3001), two step workers and the
## scoring server (:5001), ports on loopback only. Installs Docker if missing (as root), builds the
## images, generates the secrets into /tmp/flights-team/secrets and prints the URLs
team-up: setup
	@deploy/team/team.sh up

team-down:
	@deploy/team/team.sh down

## The images alone (deploy/docker/build.sh): flights-code, flights-serving, flights-proxy, and
## PostgreSQL and Redis where their official images cannot be pulled; sizes and build times printed
images:
	@deploy/docker/build.sh > /dev/null

## The team profile's end-to-end tests (tests/team) on the containers: the lifecycle through the
## proxy, the daemon's sensor and the scoring server's container, the audit UI in a browser, a worker
## container killed mid-step, PostgreSQL restarted mid-run, no secret in inspect, images or logs;
## CI runs this last
test-team: setup
	python -m pytest -q -m team

## The scale-out profile: a Redis broker on loopback (`eval "$$(make -s broker-up)"` exports
## FLIGHTS_CELERY_BROKER) and Celery workers for the steps (`make workers`, in its own terminal);
## then run anything with FLIGHTS_EXECUTOR=celery
broker-up:
	@deploy/celery/local_broker.sh start

workers: setup
	PYTHONPATH=$(CURDIR):$(CURDIR)/deploy/celery celery -A dagster_celery.app worker -Q dagster \
		--concurrency 2 --prefetch-multiplier=1 --loglevel INFO

## The Dagster UI on http://127.0.0.1:3000 (loopback only)
ui: setup
	dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

## Benchmarks (full year); figures are printed and written to bench/results/
bench: setup
	python bench/bench_data_foundation.py
	python bench/bench_model.py
	python bench/bench_monitoring.py
	python bench/bench_serving.py
	python bench/bench_scale.py
	python bench/bench_replay_day.py

## The team profile's containers against the embedded default: the same lifecycle, one run each;
## image sizes and build times (`python bench/bench_team.py --fresh-images`: built from nothing)
bench-team: setup
	python bench/bench_team.py

## The closed-loop replay of 2013 under four retraining policies (never / weekly / sensors / daily):
## a table, a PNG of daily ROC AUC per policy and a JSON in bench/results/
replay: setup
	python bench/closed_loop_replay.py

## The incident drills (bench/drills.py): each feed incident injected on its own into a
## stretch of June 2013 on fresh stores, and a clean stretch, through the real sensors and jobs; the
## table (incident, days to detection, check, action, retrains, models trained on broken data,
## false alarms, alerts) and a timeline PNG in bench/results/
drills: setup
	python bench/drills.py

## Re-resolve the lock file after changing dependencies in pyproject.toml
lock:
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes \
		--quiet -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes -c requirements.lock \
		--quiet -o deploy/docker/code.lock
	$(BIN)/uv pip compile deploy/docker/serving.in --python-version 3.11 --generate-hashes -c requirements.lock \
		--quiet -o deploy/docker/serving.lock

## Remove the embedded default's stores and the records of its Dagster instance (dagster.yaml stays)
clean:
	rm -rf data/warehouse.db* data/gx data/reports data/evidently data/mlflow.db data/mlartifacts data/model_cards data/replay data/demo
	rm -rf dagster_home/history dagster_home/schedules dagster_home/storage dagster_home/logs
