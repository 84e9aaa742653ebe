"""Alias moves on a real MLflow registry: promotion, the challenger's approval and rejection,
rollback to any version. Each refused request says why and moves no alias; every move is
recorded on the version (who, why, which run); a rollback never restores a version rolled back."""

import shutil
from pathlib import Path

import pytest

from resources.registry import DeploymentRefused, ModelRegistry


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    from assets.training.build import pip_requirements, training_dataset
    from assets.training.logic import ModelParams, fit_candidate
    from resources.records import BuildInfo, RetrainTrigger
    from served_model.features import model_input
    from tests.support import feature_days, training_set_of

    tmp = tmp_path_factory.mktemp("aliases")
    days = [f"2013-05-{d:02d}" for d in range(1, 11)]
    ts = training_set_of(feature_days(days), days)
    fitted = fit_candidate(ts, ModelParams(max_iter=10))
    reg = ModelRegistry(tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}", artifact_root=str(tmp / "artifacts"))
    build = BuildInfo("dagster-run", "retrain_job", "commit", "lock", "1")
    for n in range(4):
        run = reg.start_training_run(ts.window, RetrainTrigger(), build, run_name=f"v{n + 1}")
        reg.register_candidate(
            fitted.model, run_id=run, params={"max_iter": 10}, metrics={}, threshold=fitted.threshold,
            sample=model_input(ts.split("validation").head(20)),
            dataset=training_dataset(ts.window, "sqlite:///warehouse.db#flight_features"), pip_requirements=pip_requirements())
    return reg


def aliases(reg: ModelRegistry) -> dict:
    return {a: (r.version if (r := reg.by_alias(a)) else None) for a in ("champion", "previous", "challenger")}


def refused(reg, call, *words):
    before = aliases(reg)
    with pytest.raises(DeploymentRefused) as exc:
        call()
    message = str(exc.value)
    assert all(w in message for w in words) and "nothing was moved" in message, message
    assert aliases(reg) == before
    return message


def test_promotion_approval_rejection_and_rollback(registry):
    assert registry.promote("1", by="gate", reason="first deployment", dagster_run_id="r1") is None
    assert registry.promote("1", by="gate", reason="again") is None  # a retried step: nothing moves, one event
    assert [e.kind for e in registry.record("1").events] == ["promoted"]
    assert registry.promote("2", by="gate", reason="beats v1", dagster_run_id="r2") == "1"
    assert aliases(registry) == {"champion": "2", "previous": "1", "challenger": None}

    # approve mode: v3 waits; nothing to approve before that, and only the one waiting
    refused(registry, lambda: registry.approve_challenger(by="ana", reason="looks good"), "no challenger waits")
    registry.set_challenger("3", "approve", "2013-05-10", by="gate", reason="passed the gate", dagster_run_id="r3")
    assert registry.challenger().challenger_mode == "approve"
    refused(registry, lambda: registry.approve_challenger(by="ana", reason="ok", expected="4"), "v4 is not the challenger", "v3")
    refused(registry, lambda: registry.approve_challenger(by="", reason="ok"), "who asks for it and why")
    # a newer candidate supersedes the one waiting; rejecting it removes the alias only
    registry.set_challenger("4", "approve", "2013-05-10", by="gate", reason="passed the gate")
    assert [e.kind for e in registry.record("3").events][-1] == "superseded"
    assert registry.reject_challenger(by="ana", reason="segment JFK worse", dagster_run_id="r4") == "4"
    assert aliases(registry) == {"champion": "2", "previous": "1", "challenger": None}
    rejected = registry.record("4").events[-1]
    assert (rejected.kind, rejected.by, rejected.reason, rejected.dagster_run_id) == ("rejected", "ana", "segment JFK worse", "r4")

    # approved: champion moves, the old one keeps previous, the approver is on the version
    registry.set_challenger("3", "approve", "2013-05-10", by="gate", reason="passed the gate")
    assert registry.approve_challenger(by="ana", reason="reviewed the card", dagster_run_id="r5") == ("3", "2")
    assert aliases(registry) == {"champion": "3", "previous": "2", "challenger": None}
    approved = registry.record("3").events[-1]
    assert (approved.kind, approved.by, approved.reason) == ("approved", "ana", "reviewed the card")

    # rollback: bad targets refused, then back to previous; a second rollback never restores v3
    refused(registry, lambda: registry.rollback("99", by="ops", reason="bad"), "version '99'", "does not exist")
    refused(registry, lambda: registry.rollback("3", by="ops", reason="bad"), "is the champion already")
    refused(registry, lambda: registry.rollback(None, by="ops", reason=" "), "who asks for it and why")
    assert registry.rollback(None, by="ops", reason="late share doubled", dagster_run_id="r6") == ("3", "2", "1")
    assert aliases(registry) == {"champion": "2", "previous": "1", "challenger": None}
    assert registry.record("3").rolled_back.reason == "late share doubled"
    assert registry.rollback(None, by="ops", reason="still bad") == ("2", "1", None)
    assert aliases(registry) == {"champion": "1", "previous": None, "challenger": None}
    refused(registry, lambda: registry.rollback(None, by="ops", reason="again"), "no `previous` version")
    refused(registry, lambda: registry.rollback("3", by="ops", reason="undo"), "v3 was rolled back", "late share doubled")
    # to any version that was never rolled back: v4 (rejected as challenger, but a person may choose it)
    assert registry.rollback("4", by="ops", reason="v4 was fine after all") == ("1", "4", None)


def test_a_challenger_whose_artifacts_are_missing_is_not_approved(registry):
    registry.set_challenger("2", "approve", "2013-05-10", by="gate", reason="test")
    source = registry.client.get_model_version_download_uri(registry.model_name, "2")
    shutil.rmtree(Path(source.removeprefix("file://")))
    refused(registry, lambda: registry.approve_challenger(by="ana", reason="ok"), "challenger", "v2 cannot be deployed",
            "artifacts missing")
