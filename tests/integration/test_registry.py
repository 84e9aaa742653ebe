"""The registry on a real MLflow store: registering a candidate again from the same MLflow run (a
step retried, or a task a dead worker left to another one) gives the version registered the first
time, not a second one; a candidate from another run is a new version."""


def test_a_candidate_registered_again_from_its_run_is_the_same_version(tmp_path):
    from assets.training.build import pip_requirements, training_dataset
    from assets.training.logic import ModelParams, fit_candidate
    from resources.records import BuildInfo, RetrainTrigger
    from resources.registry import ModelRegistry
    from served_model.features import model_input
    from tests.support import feature_days, training_set_of

    days = [f"2013-05-{d:02d}" for d in range(1, 11)]
    ts = training_set_of(feature_days(days), days)
    fitted = fit_candidate(ts, ModelParams(max_iter=20))
    registry = ModelRegistry(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=str(tmp_path / "artifacts"))
    build = BuildInfo("dagster-run", "retrain_job", "commit", "lock", "1")

    def register(run_id):
        return registry.register_candidate(
            fitted.model, run_id=run_id, params={"max_iter": 20}, metrics={"validation_roc_auc": fitted.validation_roc_auc},
            threshold=fitted.threshold, sample=model_input(ts.split("validation").head(20)),
            dataset=training_dataset(ts.window, "sqlite:///warehouse.db#flight_features"), pip_requirements=pip_requirements())

    first_run = registry.start_training_run(ts.window, RetrainTrigger(), build, run_name="first")
    first, seconds = register(first_run)
    again, again_seconds = register(first_run)
    assert (first.version, again.version, again.run_id) == ("1", "1", first_run) and seconds > 0 == again_seconds
    other, _ = register(registry.start_training_run(ts.window, RetrainTrigger(), build, run_name="second"))
    assert other.version == "2"
    assert len(registry.client.search_model_versions(f"name='{registry.model_name}'")) == 2
    # the candidate's metrics are the logged model's too (its MLflow page and its version's show them),
    # also those logged later on the run for that model (the evaluation's test metrics)
    assert first.model_id and first.model_id != other.model_id
    registry.log_metrics(first_run, {"test_candidate_roc_auc": 0.71}, model_id=first.model_id)
    logged = {m.key: m.value for m in registry.client.get_logged_model(first.model_id).metrics}
    assert logged == {"validation_roc_auc": fitted.validation_roc_auc, "test_candidate_roc_auc": 0.71}
    assert "test_candidate_roc_auc" not in {m.key for m in registry.client.get_logged_model(other.model_id).metrics}
    assert registry.run_metrics(first_run)["test_candidate_roc_auc"] == 0.71  # still the run's metric
