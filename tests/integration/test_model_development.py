"""Model development through retrain_job on a real instance, warehouse and MLflow store: the
search (training windows, then tuning trials, each a nested MLflow run under the retrain's run),
the chosen parameters and calibration on the version, permutation importance beside the
previous champion's in the model card, the segment guard in the gate, and `pipelines.commands.reproduce`
rebuilding a searched and calibrated version exactly."""

import json

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, TableMetadataValue

from tests.support import land_and_ingest

DAYS = [f"2013-06-{d:02d}" for d in range(1, 19)]
FIRST_END, SECOND_END = "2013-06-12", "2013-06-18"


def latest(instance, asset: str) -> dict:
    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(asset)), limit=1).records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def columns(table) -> list[str]:
    assert isinstance(table, TableMetadataValue)
    return [c.name for c in table.schema.columns]


def rows(table) -> list[dict]:
    assert isinstance(table, TableMetadataValue)
    return [r.data for r in table.records]


def retrain(defs, instance, end_day: str, model: dict, gate: dict | None = None):
    config = {"ops": {"training_set": {"config": {"end_day": end_day, "window_days": 18, "min_rows": 500}},
                      "candidate_model": {"config": model}, "model_evaluation": {"config": gate or {}}}}
    return defs.resolve_job_def("retrain_job").execute_in_process(instance=instance, run_config=config)


def test_search_explanations_segments_and_reproduction(workdir, resources, monkeypatch):
    from pipelines.commands.reproduce import reproduce
    from pipelines.definitions import build_definitions
    from resources.records import Tag

    monkeypatch.setenv("FLIGHTS_DATA_DIR", str(workdir["data"]))
    registry = resources["model_registry"]
    defs = build_definitions(resources)
    instance = DagsterInstance.from_config(str(workdir["home"]))
    land_and_ingest(defs, instance, workdir["landing"], DAYS)

    # v1: two training windows, then two tuning trials on the better one (12 days: 9 train)
    retrain(defs, instance, FIRST_END, {"train_window_options": [4, 0], "tuning_trials": 4, "max_iter": 60})
    v1 = registry.champion()
    assert v1.version == "1"
    meta = latest(instance, "candidate_model")
    search = meta["search"]  # a table: one row per trial, the trial's columns typed as their values
    assert meta["search_trials"] == 4 == len(rows(search)) and columns(search)[:3] == ["trial", "kind", "train_days"]
    assert {c.name: c.type for c in search.schema.columns}["validation_roc_auc"] == "float"
    assert [r["trial"] for r in rows(search)] == list(range(4)) and meta["chosen_trial"] in [r["trial"] for r in rows(search)]
    assert columns(meta["splits"]) == ["split", "days", "rows", "late_share"]
    assert [r["split"] for r in rows(meta["splits"])] == ["train", "validation", "test"]
    trials = registry.client.search_runs([registry.experiment_id()], f"tags.mlflow.parentRunId = '{v1.run_id}'")
    assert sorted(r.data.tags["trial.kind"] for r in trials) == ["tuning", "tuning", "window", "window"]
    assert sorted(r["kind"] for r in rows(search)) == ["tuning", "tuning", "window", "window"]
    assert all("validation_roc_auc" in r.data.metrics and "learning_rate" in r.data.params for r in trials)
    best = max(trials, key=lambda r: r.data.metrics["validation_roc_auc"])
    chosen = json.loads(registry.client.get_model_version(registry.model_name, "1").tags[Tag.MODEL_PARAMS])
    assert v1.model_params == chosen and chosen["calibration"] in ("none", "isotonic", "sigmoid")
    for key in ("learning_rate", "max_iter", "max_leaf_nodes", "min_samples_leaf", "l2_regularization"):
        assert str(chosen[key]) == best.data.params[key], key  # the version carries the best trial's parameters
    assert str(chosen["train_days"]) == best.data.params["train_days"]
    assert meta["calibration"]["method"] == chosen["calibration"]
    assert registry.run_params(v1.run_id)["calibration"] == chosen["calibration"]
    first = latest(instance, "model_evaluation")  # no champion yet: no segment compared, the candidate's importance alone
    assert columns(first["segments_vs_champion"]) == ["segment", "rows", "candidate_roc_auc", "champion_roc_auc", "difference"]
    assert rows(first["segments_vs_champion"]) == [] and columns(first["permutation_importance"]) == ["feature", "candidate"]

    # v2: the gate compares segments with v1, and a zero segment margin (with v2 worse somewhere)
    # rejects it by name; the model card shows both models' permutation importance
    retrain(defs, instance, SECOND_END, {"tuning_trials": 0, "max_iter": 60}, {"segment_margin": 0.0, "min_margin": -1.0})
    evaluation = latest(instance, "model_evaluation")
    segments = evaluation["segments_vs_champion"]
    assert columns(segments) == ["segment", "rows", "candidate_roc_auc", "champion_roc_auc", "difference"] and rows(segments)
    assert columns(evaluation["permutation_importance"]) == ["feature", "candidate", "champion"]
    assert 0 < len(rows(evaluation["permutation_importance"])) <= 15
    metrics = {r["model"]: r for r in rows(evaluation["metrics"])}
    assert columns(evaluation["metrics"]) == ["model", "roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "f1", "threshold"]
    assert set(metrics) == {"candidate", "champion", "baseline"}
    assert metrics["candidate"]["roc_auc"] == round(evaluation["candidate_roc_auc"], 4)
    # every test flight in one calibration bin, one origin, one carrier
    tested = sum(r["rows"] for r in rows(evaluation["calibration"]))
    assert columns(evaluation["calibration"]) == ["bin", "rows", "mean_predicted", "observed_late"] and tested > 0
    assert columns(evaluation["by_origin"]) == ["origin", "rows", "late_share", "roc_auc", "f1"]
    assert columns(evaluation["by_carrier"]) == ["carrier", "rows", "late_share", "roc_auc", "f1"]
    assert sum(r["rows"] for r in rows(evaluation["by_origin"])) == tested == sum(r["rows"] for r in rows(evaluation["by_carrier"]))
    worse = [r for r in rows(segments) if r["difference"] < 0]
    reasons = evaluation["reasons"]
    if worse:
        assert evaluation["decision"] == "KEEP CHAMPION" and "- segment " in reasons and "below the champion's" in reasons
    else:
        assert evaluation["decision"] == "PROMOTE" and "no segment worse than the champion" in reasons
    v2 = registry.record("2")
    card = registry.client.download_artifacts(v2.run_id, "model_card/model_card.md", str(workdir["data"]))
    text = open(card).read()
    assert "## Permutation importance on the test days" in text and "champion_std" in text
    artifacts = {a.path for a in registry.client.list_artifacts(v2.run_id, "model_card")}
    figures = ("roc_curve.png", "precision_recall.png", "calibration.png", "permutation_importance.png")
    assert {f"model_card/{f}" for f in figures} <= artifacts
    assert all(f"]({f})" in text for f in figures) and "champion v1 it is judged against" in text
    # the curves are drawn from the probabilities model_evaluation scored on v2's test days, v1's beside v2's
    scores = registry.read_json(v2.run_id, "evaluation/test_scores.json")
    assert len(scores["y"]) == len(scores["candidate"]) == len(scores["champion"]) > 0 and scores["candidate"] != scores["champion"]
    plots = latest(instance, "champion_model")["model_card_plots"]
    assert all(f"/runs/{v2.run_id}/artifacts/model_card/{f})" in plots for f in figures), plots

    # the provenance shows the evaluation's table metadata as its rows
    from pipelines.commands.provenance import provenance

    assert provenance("2", instance=instance, registry=registry)["evaluation"]["dagster"]["metrics"] == rows(evaluation["metrics"])

    # the searched, calibrated v1 is rebuilt exactly from its recorded choice
    result = reproduce("1", registry=registry, warehouse=resources["warehouse"])
    assert result["reproduced"] and result["max_abs_prediction_difference"] == 0.0
    assert result["hyperparameters"]["calibration"] == chosen["calibration"]
