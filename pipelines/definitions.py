"""The Definitions of the code location (workspace.yaml, `dg`, `dagster ... -m pipelines.definitions`):
the assets of every stage (assets/) merged with each orchestration area's own `defs`.

Imports stay light: heavy libraries (Great Expectations, scikit-learn, MLflow, Evidently) load
only inside the steps that use them, so the CLI, the UI and sensor ticks start quickly. The
resources carry no URL or path: each reads the settings when a step runs, so no credential is
part of the definitions the UI shows.
"""

import warnings

from dagster import BetaWarning, Definitions, load_assets_from_package_module

import assets
from pipelines.orchestration import alerts, deployment, feed_flags, jobs, retention, schedules, sensors
from pipelines.orchestration.execution import default_resources, executor_for
from resources.settings import settings

AREAS = (jobs, schedules, sensors, alerts, deployment, feed_flags, retention)


def build_definitions(resources: dict | None = None) -> Definitions:
    """Everything of the code location; `resources` replaces some or all of the default ones.

    The repository is resolved here, once (Dagster caches it): binding the resources to the
    sensors that target op jobs (`challenger_sensor`) passes Dagster's own beta `owners`
    parameter internally, a known BetaWarning that is filtered here, where the definitions are
    built, not globally."""
    defs = Definitions.merge(
        Definitions(assets=load_assets_from_package_module(assets)),
        *(area.defs for area in AREAS),
        Definitions(resources={**default_resources(), **(resources or {})}, executor=executor_for(settings())),
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=BetaWarning)
        defs.get_repository_def()
    return defs


defs = build_definitions()
