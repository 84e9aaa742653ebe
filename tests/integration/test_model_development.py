"""Model development through retrain_job on a real instance, warehouse and MLflow store: the
search (training windows, then tuning trials, each a nested MLflow run under the retrain's run),
the chosen parameters and calibration on the version, permutation importance beside the
previous champion's in the model card, the segment guard in the gate, and `pipelines.commands.reproduce`
rebuilding a searched and calibrated version exactly."""

import json

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

from tests.support import land_and_ingest

DAYS = [f"2013-06-{d:02d}" for d in range(1, 19)]
FIRST_END, SECOND_END = "2013-06-12", "2013-06-18"


def latest(instance, asset: str) -> dict:
    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(asset)), limit=1).records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


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
    assert meta["search_trials"] == 4 and "| trial | kind | train_days |" in meta["search"]
    trials = registry.client.search_runs([registry.experiment_id()], f"tags.mlflow.parentRunId = '{v1.run_id}'")
    assert sorted(r.data.tags["trial.kind"] for r in trials) == ["tuning", "tuning", "window", "window"]
    assert all("validation_roc_auc" in r.data.metrics and "learning_rate" in r.data.params for r in trials)
    best = max(trials, key=lambda r: r.data.metrics["validation_roc_auc"])
    chosen = json.loads(registry.client.get_model_version(registry.model_name, "1").tags[Tag.MODEL_PARAMS])
    assert v1.model_params == chosen and chosen["calibration"] in ("none", "isotonic", "sigmoid")
    for key in ("learning_rate", "max_iter", "max_leaf_nodes", "min_samples_leaf", "l2_regularization"):
        assert str(chosen[key]) == best.data.params[key], key  # the version carries the best trial's parameters
    assert str(chosen["train_days"]) == best.data.params["train_days"]
    assert meta["calibration"]["method"] == chosen["calibration"]
    assert registry.run_params(v1.run_id)["calibration"] == chosen["calibration"]

    # v2: the gate compares segments with v1, and a zero segment margin (with v2 worse somewhere)
    # rejects it by name; the model card shows both models' permutation importance
    retrain(defs, instance, SECOND_END, {"tuning_trials": 0, "max_iter": 60}, {"segment_margin": 0.0, "min_margin": -1.0})
    evaluation = latest(instance, "model_evaluation")
    assert "| segment | rows | candidate_roc_auc | champion_roc_auc | difference |" in evaluation["segments_vs_champion"]
    assert "| feature | candidate | champion |" in evaluation["permutation_importance"]
    worse = [line for line in evaluation["segments_vs_champion"].splitlines()[2:] if float(line.split("|")[-2]) < 0]
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

    # the searched, calibrated v1 is rebuilt exactly from its recorded choice
    result = reproduce("1", registry=registry, warehouse=resources["warehouse"])
    assert result["reproduced"] and result["max_abs_prediction_difference"] == 0.0
    assert result["hyperparameters"]["calibration"] == chosen["calibration"]
