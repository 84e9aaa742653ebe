"""Benchmark of monitoring: figures printed and written to bench/results/.

1. One day's drift report against the reference (Evidently, 20 columns, 5000-row reference),
   HTML included: first call after import, then warm calls on further days (median).
   For comparison: the same verdicts through Evidently's DataDriftPreset on the full window.
2. One sensor tick (drift_sensor, performance_sensor, monitor_sensor) on a real instance holding
   a year of report records and retrain runs: warm evaluation time (the daemon keeps the code
   loaded between ticks), median of repeated ticks; and whether a crossed threshold is
   requested on the very next tick.

Uses the year's features of the closed-loop replay (data/replay/warehouse.db; built if missing).

    python bench/bench_monitoring.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from resources.settings import configure_process  # noqa: E402

configure_process()


def drift_figures(by_day) -> dict:
    import pandas as pd

    from assets.monitoring.logic import DRIFT_COLUMNS_CATEGORICAL, DRIFT_COLUMNS_NUMERIC, reference_and_thresholds
    from assets.monitoring.reports import drift_report_for_day
    from assets.training.logic import ModelParams, build_training_set, fit, split_days, window_days
    from resources.records import TrainingWindow
    from resources.settings import settings as current_settings
    from served_model.features import model_input

    settings = current_settings()
    days = window_days("2013-05-31", 60)
    window = pd.concat([by_day[d] for d in days], ignore_index=True)
    model = fit(build_training_set(window, TrainingWindow(split_days(days)), 2000), ModelParams())
    full = window.assign(probability_late=model.predict_proba(model_input(window))[:, 1])
    # as drift_report builds it: the sample and the column thresholds calibrated on the window
    t = time.perf_counter()
    ref, thresholds = reference_and_thresholds(full, settings.drift_reference_rows, settings.column_drift_quantile)
    calibration_s = time.perf_counter() - t
    num, cat = DRIFT_COLUMNS_NUMERIC, DRIFT_COLUMNS_CATEGORICAL
    out: dict = {"reference_rows": len(ref), "columns": len(num) + len(cat),
                 "reference_build_s (once per model)": round(calibration_s, 2)}
    times, agree = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for day in ["2013-06-01", "2013-06-02", "2013-06-03", "2013-06-04", "2013-06-05", "2013-06-06"]:
            cur = by_day[day].assign(probability_late=model.predict_proba(model_input(by_day[day]))[:, 1])
            t = time.perf_counter()
            result = drift_report_for_day(ref, cur, num, cat, drift_share=settings.drift_share,
                                          column_threshold=thresholds)
            result.save_html(Path(tmp) / f"{day}.html")
            times.append(time.perf_counter() - t)
            # sampling the reference: the same verdict as the whole window?
            whole = drift_report_for_day(full, cur, num, cat, drift_share=settings.drift_share,
                                         column_threshold=thresholds)
            agree.append({"day": day, "share_sample": round(result.share, 3), "share_full_window": round(whole.share, 3),
                          "same_dataset_verdict": result.dataset_drift == whole.dataset_drift})
        # the preset, for comparison, once
        from evidently import Dataset, Report
        from evidently.presets import DataDriftPreset

        from assets.monitoring.reports import _definition

        cols = num + cat
        d = _definition(num, cat)
        t = time.perf_counter()
        snap = Report([DataDriftPreset(columns=cols)]).run(Dataset.from_pandas(cur[cols], data_definition=d),
                                                          Dataset.from_pandas(full[cols], data_definition=d))
        snap.save_html(str(Path(tmp) / "preset.html"))
        out["preset_full_window_s"] = round(time.perf_counter() - t, 2)
    out["first_call_s"] = round(times[0], 2)
    out["warm_median_s"] = round(statistics.median(times[1:]), 3)
    out["warm_max_s"] = round(max(times[1:]), 3)
    out["sample_vs_full_window"] = agree
    return out


def sensor_figures() -> dict:
    from dagster import AssetMaterialization, DagsterRunStatus, SensorResult, build_sensor_context, instance_for_test

    from assets.common import partition_days
    from pipelines.definitions import defs
    from pipelines.orchestration.sensors import drift_sensor, monitor_sensor, performance_sensor

    keys = partition_days()
    out: dict = {}
    with instance_for_test() as instance:
        retrain = defs.resolve_job_def("retrain_job")
        for day in keys[:-10]:  # a year of history: reports, features, weekly retrain runs
            instance.report_runless_asset_event(AssetMaterialization("flight_features", partition=day))
            instance.report_runless_asset_event(AssetMaterialization("drift_report", partition=day, metadata={
                "dataset_drift": False, "drift_share": 0.2, "drifted_columns": 4, "monitored_columns": 19,
                "drift_share_threshold": 0.5}))
            instance.report_runless_asset_event(AssetMaterialization("performance_report", partition=day, metadata={
                "performance_degraded": False, "trailing_roc_auc": 0.7, "roc_auc_drop": 0.0,
                "evaluation_roc_auc": 0.7, "roc_auc_drop_threshold": 0.05}))
            if keys.index(day) % 7 == 0:
                instance.create_run_for_job(retrain, tags={"retrain.as_of": day}, status=DagsterRunStatus.SUCCESS)
        instance.report_runless_asset_event(AssetMaterialization("champion_model", metadata={"champion": "m v1"}))
        for sensor in (drift_sensor, performance_sensor, monitor_sensor):
            cursor = sensor(build_sensor_context(instance=instance)).cursor  # turned on
            times = []
            for i, day in enumerate(keys[-10:]):
                asset = {"drift_sensor": "drift_report", "performance_sensor": "performance_report"}.get(sensor.name, "flight_features")
                crossed = i == 5
                md = {"drift_sensor": {"dataset_drift": crossed, "drift_share": 0.7, "drifted_columns": 13,
                                       "monitored_columns": 19, "drift_share_threshold": 0.5},
                      "performance_sensor": {"performance_degraded": crossed, "trailing_roc_auc": 0.6, "roc_auc_drop": 0.1,
                                             "evaluation_roc_auc": 0.7, "roc_auc_drop_threshold": 0.05}}.get(sensor.name, {})
                instance.report_runless_asset_event(AssetMaterialization(asset, partition=day, metadata=md))
                t = time.perf_counter()
                result = sensor(build_sensor_context(instance=instance, cursor=cursor))
                times.append(time.perf_counter() - t)
                if isinstance(result, SensorResult):
                    cursor = result.cursor or cursor
                    if crossed and sensor.name != "monitor_sensor":
                        out.setdefault(sensor.name, {})["acted_on_next_tick"] = len(result.run_requests or []) == 1
            out.setdefault(sensor.name, {}).update(median_tick_s=round(statistics.median(times), 4),
                                                   max_tick_s=round(max(times), 4))
    return out


def main() -> dict:
    from bench.closed_loop_replay import build_year
    from resources.schemas import flight_features
    from resources.warehouse import Warehouse

    url, _ = build_year(REPO / "data" / "replay")
    frame = Warehouse(url=url).read(flight_features, [f"2013-{m:02d}-{d:02d}" for m in (4, 5, 6) for d in range(1, 32)])
    by_day = {d: p.reset_index(drop=True) for d, p in frame.groupby("partition_date")}
    results = {"drift_report_one_day": drift_figures(by_day)}
    print(json.dumps(results["drift_report_one_day"], indent=1), flush=True)
    results["sensor_tick"] = sensor_figures()
    print(json.dumps(results["sensor_tick"], indent=1))
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"monitoring_{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"written to {path}")
    return results


if __name__ == "__main__":
    main()
