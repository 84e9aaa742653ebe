"""The retrain rules the sensors and schedules apply."""

from pipelines.orchestration.policy import days_between, drift_reason, in_cooldown, performance_reason, retrain_due


def test_cooldown_counts_days_from_the_last_retrain():
    assert days_between("2013-02-27", "2013-03-02") == 3
    assert not in_cooldown("2013-03-10", None, 7)  # never retrained
    assert in_cooldown("2013-03-10", "2013-03-04", 7)  # 6 days later
    assert not in_cooldown("2013-03-11", "2013-03-04", 7)  # 7 days later
    assert in_cooldown("2013-03-01", "2013-03-04", 7)  # an old report after a newer retrain
    assert not in_cooldown("2013-03-05", "2013-03-04", 0)  # cooldown off


def test_periodic_retrain_is_due_every_n_days():
    assert retrain_due("2013-01-07", None, 7)
    assert not retrain_due("2013-01-13", "2013-01-07", 7)
    assert retrain_due("2013-01-14", "2013-01-07", 7)


def test_reasons_follow_the_recorded_verdicts():
    drift = {"dataset_drift": True, "drifted_columns": 12, "monitored_columns": 19, "drift_share": 0.63,
             "drift_share_threshold": 0.5}
    assert "12 of 19" in drift_reason(drift) and "0.63 >= 0.5" in drift_reason(drift)
    assert drift_reason({**drift, "dataset_drift": False}) is None
    perf = {"performance_degraded": True, "trailing_roc_auc": 0.61, "roc_auc_drop": 0.09,
            "evaluation_roc_auc": 0.70, "roc_auc_drop_threshold": 0.05}
    assert "0.61" in performance_reason(perf) and "threshold 0.05" in performance_reason(perf)
    assert performance_reason({**perf, "performance_degraded": False}) is None
