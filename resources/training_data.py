"""The rows a model was trained on, read back by the data versions its training window recorded:
what the retrain, the evaluation, the drift reference and `flights-reproduce` read; and the
recording of a window, in the registry and (which registry) in the warehouse. No Dagster."""

from __future__ import annotations

from resources.errors import DataProblem
from resources.records import BuildInfo, RetrainTrigger, TrainingWindow
from resources.registry import ModelRegistry
from resources.schemas import flight_features
from resources.warehouse import Warehouse


def read_window(warehouse: Warehouse, window: TrainingWindow, days: list[str], columns=None):
    """The `flight_features` rows of `days` a model was trained on: the versions it recorded,
    current or superseded since; current rows for a version registered before ids were recorded.
    A day whose version is gone (deleted by the retention job) or unknown is a DataProblem naming it."""
    if not window.version_ids:
        return warehouse.read(flight_features, days, columns=columns)
    wanted = {d: window.version_ids[d] for d in days if d in window.version_ids}
    catalog = warehouse.versions(assets=["flight_features"], version_ids=set(wanted.values()))
    known = {r.version_id: r for r in catalog.itertuples()}
    gone = [f"{d} (version {vid}: deleted {known[vid].deleted_at[:19].replace('T', ' ')} UTC)" for d, vid in wanted.items()
            if vid in known and isinstance(known[vid].deleted_at, str)]
    unknown = [f"{d} (version {vid}: not in this warehouse's day_versions)" for d, vid in wanted.items() if vid not in known]
    unknown += [f"{d} (no version recorded)" for d in days if d not in wanted]
    if gone or unknown:
        raise DataProblem(f"training window {window.label}: the flight_features versions of {len(gone) + len(unknown)} "
                          f"day(s) cannot be read back: " + "; ".join((gone + unknown)[:20])
                          + ("; …" if len(gone) + len(unknown) > 20 else ""))
    return warehouse.read_versions(flight_features, wanted, columns=columns)


def record_window(warehouse: Warehouse, registry: ModelRegistry, window: TrainingWindow, trigger: RetrainTrigger,
                  build: BuildInfo, run_name: str) -> str:
    """A retrain's window on a new MLflow run (returns its id); first, in the warehouse, the
    identity of the registry its versions are recorded against (the retention job deletes
    nothing against another one)."""
    warehouse.record_registry(registry.registry_id(create=True), registry.display_tracking_uri)
    return registry.start_training_run(window, trigger, build, run_name=run_name)
