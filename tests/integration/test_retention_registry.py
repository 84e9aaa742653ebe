"""The retention job against a registry that cannot tell what models use, on a real SQLite
warehouse and real MLflow stores: an empty registry (an unset MLFLOW_TRACKING_URI falls back to
a new local store), another project's registry, a registry whose models were trained on another
warehouse (a warehouse upgraded from before registries were recorded). Each refusal names both
stores and deletes nothing; the champion's window still reads back. Against the right registry,
the versions a retrain recorded before its candidate is registered are kept too."""

import pytest
from dagster import DagsterEventType

from pipelines.orchestration.retention import RetentionRefused, apply_retention, data_retention_job
from resources.records import BuildInfo, RetrainTrigger, Tag, TrainingWindow
from resources.registry import ModelRegistry
from resources.schemas import flight_features, model_registries
from resources.training_data import read_window, record_window
from resources.warehouse import Warehouse
from tests.support import feature_days, store_url, write_versions

DAYS = ["2013-02-04", "2013-02-05"]
CORRECTED = DAYS[1]


def _registry(tmp_path, name: str) -> ModelRegistry:
    return ModelRegistry(tracking_uri=store_url(tmp_path / name, "mlflow"), artifact_root=str(tmp_path / name / "art"))


def _window(warehouse: Warehouse) -> TrainingWindow:
    current = warehouse.current_versions("flight_features", DAYS)
    return TrainingWindow({"train": DAYS[:1], "validation": [], "test": DAYS[1:]},
                          {d: current[d][1] for d in DAYS}, {d: current[d][0] for d in DAYS})


def _retrain(warehouse: Warehouse, registry: ModelRegistry, register: bool) -> str:
    """A retrain's window recorded as training_set records it; with `register`, a version from its run."""
    window = _window(warehouse)
    run_id = record_window(warehouse, registry, window, RetrainTrigger(), BuildInfo("r", "retrain_job", "c", "l", "p"),
                           run_name="retrain-test")
    if register:
        client = registry.client
        if not client.search_registered_models(f"name='{registry.model_name}'"):
            client.create_registered_model(registry.model_name)
        mv = client.create_model_version(registry.model_name, f"runs:/{run_id}/model", run_id=run_id, tags=window.tags())
        client.set_registered_model_alias(registry.model_name, "champion", mv.version)
    return run_id


def _deleted(warehouse: Warehouse) -> int:
    return int(warehouse.versions()["deleted_at"].notna().sum())


@pytest.fixture
def stores(tmp_path):
    """A warehouse with two days of real features, the champion trained on them in the team's
    registry, then one day of its window delivered again (new content)."""
    warehouse = Warehouse(url=store_url(tmp_path, "warehouse"))
    features = feature_days(DAYS)
    write_versions(warehouse, "flight_features", {flight_features: features}, DAYS, content="first")
    team = _registry(tmp_path, "team")
    _retrain(warehouse, team, register=True)
    again = features[features["partition_date"] == CORRECTED].copy()
    again.loc[again.index[:50], "is_late"] = 1 - again.loc[again.index[:50], "is_late"]
    write_versions(warehouse, "flight_features", {flight_features: again}, [CORRECTED], content="second")
    return warehouse, team


def test_an_empty_registry_deletes_nothing_and_names_both_stores(stores, tmp_path):
    warehouse, team = stores
    champion = team.champion()
    expected = read_window(warehouse, champion.window, DAYS)
    empty = _registry(tmp_path, "fresh")  # MLFLOW_TRACKING_URI unset: a new local store
    with pytest.raises(RetentionRefused) as refused:
        apply_retention(warehouse, empty, keep_days=0)
    message = str(refused.value)
    assert empty.display_tracking_uri in message and warehouse.display_url in message and "nothing was deleted" in message
    assert _deleted(warehouse) == 0
    assert read_window(warehouse, champion.window, DAYS).equals(expected)  # what `flights-reproduce champion` reads

    # the job fails at once (no retry) with that message, deleting nothing
    result = data_retention_job.execute_in_process(
        resources={"warehouse": warehouse, "model_registry": empty}, raise_on_error=False,
        run_config={"ops": {"delete_unused_data_versions": {"config": {"keep_days": 0}}}})
    failures = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert not result.success and len(failures) == 1 and warehouse.display_url in str(failures[0].event_specific_data.error.message)
    assert not [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    assert _deleted(warehouse) == 0

    # against the team's registry: the champion's superseded version is kept for it
    kept = apply_retention(warehouse, team, keep_days=0)
    assert kept["versions"] == [] and [r["used_by"] for r in kept["superseded_kept_for_models"]] == [champion.label]


def test_a_registry_other_than_the_warehouses_is_refused(stores, tmp_path):
    warehouse, team = stores
    elsewhere = Warehouse(url=store_url(tmp_path / "other", "warehouse"))
    write_versions(elsewhere, "flight_features", {flight_features: feature_days(DAYS)}, DAYS, content="other")
    other = _registry(tmp_path, "other")  # another project's registry, with its own champion
    _retrain(elsewhere, other, register=True)
    with pytest.raises(RetentionRefused) as refused:
        apply_retention(warehouse, other, keep_days=0)
    message = str(refused.value)
    assert f"(registry id {other.registry_id()}) is not one the versions of the warehouse {warehouse.display_url}" in message
    assert team.registry_id() in message and team.display_tracking_uri in message and _deleted(warehouse) == 0

    # a warehouse that recorded no registry (upgraded from before): the registry's models name none of its versions
    with warehouse.engine.begin() as conn:
        conn.execute(model_registries.delete())
    with pytest.raises(RetentionRefused, match="none of which .* holds: they were trained on another warehouse"):
        apply_retention(warehouse, other, keep_days=0, dry_run=True)
    assert _deleted(warehouse) == 0
    assert apply_retention(warehouse, team, keep_days=0)["versions"] == []  # the right one still works


def test_the_versions_of_a_retrain_not_registered_yet_are_kept(stores):
    warehouse, team = stores
    run_id = _retrain(warehouse, team, register=False)  # training_set recorded its window; no candidate yet
    read = _window(warehouse)
    again = warehouse.read(flight_features, [CORRECTED])
    again.loc[again.index[:30], "arr_delay"] = 120.0
    write_versions(warehouse, "flight_features", {flight_features: again}, [CORRECTED], content="third")
    kept = apply_retention(warehouse, team, keep_days=0)
    assert kept["versions"] == [] and _deleted(warehouse) == 0
    used_by = {r["version_id"]: r["used_by"] for r in kept["superseded_kept_for_models"]}
    assert used_by[read.version_ids[CORRECTED]] == f"retrain run {run_id[:12]} (not registered)"
    assert read_window(warehouse, read, DAYS).shape[0] > 0  # what its candidate_model will read

    # once its version is registered then deleted, nothing keeps that version: it goes
    team.client.set_tag(run_id, Tag.REGISTERED_VERSION, "2")
    gone = apply_retention(warehouse, team, keep_days=0)
    assert [r["version_id"] for r in gone["versions"]] == [read.version_ids[CORRECTED]] and _deleted(warehouse) == 1
