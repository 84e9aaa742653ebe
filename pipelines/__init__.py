"""The processes of the pipeline, one subpackage each (docs/architecture.md):

- `pipelines.definitions` + `pipelines.orchestration`: what the Dagster code server, daemon and
  runs load (jobs, schedules, sensors, alert sensors, retention, the executor);
- `pipelines.commands`: operator commands (`flights-*` entry points), run in an operator's shell;
- `pipelines.serving`: the scoring server, which imports no Dagster.

Every process of the pipeline starts here, so telemetry is off and the libraries' known warnings
are filtered before any of them is imported."""

from resources.settings import configure_process

configure_process()
