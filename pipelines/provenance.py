"""The provenance of a model version, for an audit: why it exists, what data made it, whether
that data was valid, how it was judged, and what would rebuild it.

    python -m pipelines.provenance [VERSION|champion] [--json]

Read from the MLflow registry (the version's tags, its run's metrics, its pinned requirements)
and from the Dagster instance (the retrain run and its tags, the triggering report, each
training day's features, validation counts and check results, the deployment decision).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dagster import AssetCheckKey, AssetKey, AssetRecordsFilter, DagsterEventType, DagsterInstance

CHECKS = {
    "validated_flights": ["bad_row_share_within_limit", "rows_in_equal_valid_plus_quarantined", "null_limits"],
    "validated_weather": ["bad_row_share_within_limit", "rows_in_equal_valid_plus_quarantined"],
}


def _values(metadata) -> dict[str, Any]:
    out = {}
    for k, v in metadata.items():
        value = v.value
        out[k] = value if isinstance(value, (str, int, float, bool, dict, list, type(None))) else str(value)
    return out


def _latest_by_day(instance, asset: str, days: list[str], before: float | None) -> dict[str, Any]:
    """Each day's newest materialization of `asset` (before `before`, the retrain's start)."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=days, before_timestamp=before),
        limit=len(days) * 10,
    ).records
    out: dict[str, Any] = {}
    for r in records:  # newest first
        day = r.asset_materialization.partition
        if day not in out:
            out[day] = {"run_id": r.run_id, "storage_id": r.storage_id, **_values(r.asset_materialization.metadata)}
    return out


def _check_results(instance, asset: str, days: set[str]) -> dict[str, dict[str, str]]:
    """day -> check -> status of the newest evaluation of each per-day check."""
    out: dict[str, dict[str, str]] = {}
    for check in CHECKS.get(asset, []):
        history = instance.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(AssetKey(asset), check), limit=5000)
        for h in history:  # newest first
            if h.partition in days and check not in out.setdefault(h.partition, {}):
                out[h.partition][check] = h.status.value
    return out


def provenance(version: str, instance: DagsterInstance | None = None, registry=None) -> dict[str, Any]:
    from resources.registry import CHAMPION, ModelRegistry

    registry = registry or ModelRegistry()
    instance = instance or DagsterInstance.get()
    client = registry.client
    if version == "champion":
        mv = registry.version_by_alias(CHAMPION)
        if mv is None:
            raise SystemExit("no model version holds the `champion` alias")
        version = str(mv.version)
    mv = client.get_model_version(registry.model_name, str(version))
    tags = dict(mv.tags)
    run = client.get_run(mv.run_id)
    splits = json.loads(tags.get("data.partitions", "{}"))
    days = [d for s in ("train", "validation", "test") for d in splits.get(s, [])]
    recorded = json.loads(tags.get("data.versions", "{}"))

    dagster_run = instance.get_run_by_id(tags.get("dagster.run_id", "")) if tags.get("dagster.run_id") else None
    started = None
    if dagster_run is not None:
        stats = instance.get_run_stats(dagster_run.run_id)
        started = stats.start_time

    trigger: dict[str, Any] = {"kind": tags.get("trigger", "unknown")}
    trigger.update({k.removeprefix("trigger."): v for k, v in tags.items() if k.startswith("trigger.")})
    if "storage_id" in trigger and "asset" in trigger:
        recs = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(trigger["asset"]), storage_ids=[int(trigger["storage_id"])]), limit=1
        ).records
        if recs:
            trigger["report"] = _values(recs[0].asset_materialization.metadata)

    features = _latest_by_day(instance, "flight_features", days, started)
    validation = {a: _latest_by_day(instance, a, days, started) for a in ("validated_flights", "validated_weather")}
    checks = {a: _check_results(instance, a, set(days)) for a in CHECKS}
    window = []
    for day in days:
        split = next(s for s in ("train", "validation", "test") if day in splits.get(s, []))
        f = features.get(day, {})
        row: dict[str, Any] = {
            "day": day, "split": split, "data_version": recorded.get(day),
            "features_data_version_in_instance": f.get("data_version"),
            "data_version_matches": recorded.get(day) is not None and recorded.get(day) == f.get("data_version"),
            "features_run_id": f.get("run_id"),
        }
        for asset, short in (("validated_flights", "flights"), ("validated_weather", "weather")):
            v = validation[asset].get(day, {})
            row[short] = {"rows_in": v.get("rows_in"), "rows_valid": v.get("rows_valid"),
                          "rows_quarantined": v.get("rows_quarantined"),
                          "quarantine_reasons": v.get("quarantine_reasons"),
                          "checks": checks[asset].get(day, {})}
        window.append(row)

    deployment = evaluation = None
    if dagster_run is not None:
        run_materializations = [
            r.event_log_entry.asset_materialization
            for r in instance.get_records_for_run(dagster_run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
        ]
        for asset in ("model_evaluation", "champion_model"):
            rec = next((r for r in run_materializations if r.asset_key == AssetKey(asset)), None)
            if rec is not None:
                values = _values(rec.metadata)
                if asset == "model_evaluation":
                    evaluation = {k: values.get(k) for k in ("decision", "reasons", "metrics", "test_days")}
                else:
                    deployment = {k: values.get(k) for k in ("promoted", "champion", "previous", "reasons", "model_card_path")}

    requirements = None
    try:
        import mlflow

        registry._setup()
        path = mlflow.pyfunc.get_model_dependencies(f"models:/{mv.name}/{mv.version}")
        requirements = [line.strip() for line in open(path) if line.strip() and not line.startswith("#")]
    except Exception as exc:  # artifacts gone: say so
        requirements = [f"unavailable: {exc}"]

    return {
        "model": {"name": mv.name, "version": str(mv.version), "aliases": list(mv.aliases or []),
                  "mlflow_run_id": mv.run_id, "source": mv.source, "threshold": tags.get("threshold"),
                  "created": mv.creation_timestamp},
        "why": {"trigger": trigger, "retrain_as_of": tags.get("retrain.as_of"),
                "dagster_run_id": tags.get("dagster.run_id"), "dagster_job": tags.get("dagster.job"),
                "dagster_run_status": dagster_run.status.value if dagster_run else "not in this instance",
                "dagster_run_tags": dict(dagster_run.tags) if dagster_run else {}},
        "data": {"window": tags.get("data.window"), "days": window,
                 "all_data_versions_match": bool(window) and all(r["data_version_matches"] for r in window)},
        "evaluation": {"gate_decision": tags.get("gate.decision"), "gate_reasons": json.loads(tags.get("gate.reasons", "[]")),
                       "test_roc_auc": tags.get("eval.test_roc_auc"),
                       "mlflow_metrics": {k: round(v, 5) for k, v in run.data.metrics.items() if k.startswith("test_")},
                       "dagster": evaluation},
        "deployment": deployment,
        "rebuild": {"git_commit": tags.get("git.commit"), "requirements_lock_sha256": tags.get("deps.lock_sha256"),
                    "pinned_requirements": requirements, "hyperparameters": dict(run.data.params),
                    "command": f"python -m pipelines.reproduce {mv.version}"},
    }


def as_text(p: dict[str, Any]) -> str:
    m, why, data, ev, dep, rb = p["model"], p["why"], p["data"], p["evaluation"], p["deployment"], p["rebuild"]
    t = why["trigger"]
    lines = [
        f"{m['name']} v{m['version']}  aliases: {', '.join(m['aliases']) or 'none'}  (MLflow run {m['mlflow_run_id']})",
        "",
        "WHY IT EXISTS",
        f"  trigger: {t.get('kind')}" + (f" — {t.get('reason')}" if t.get("reason") else ""),
    ]
    if "asset" in t:
        lines.append(f"  event: {t['asset']} {t.get('partition')} (record {t.get('storage_id')}, run {t.get('run_id')})")
        if "report" in t:
            rep = t["report"]
            shown = {k: rep[k] for k in ("dataset_drift", "drift_share", "performance_degraded", "roc_auc_drop", "report") if k in rep}
            lines.append(f"  report: {shown}")
    lines += [f"  retrain run: {why['dagster_run_id']} ({why['dagster_job']}, {why['dagster_run_status']})"
              + (f", as of {why['retrain_as_of']}" if why["retrain_as_of"] else ""),
              "", f"WHAT DATA MADE IT  window {data['window']}; data versions match the instance: {data['all_data_versions_match']}",
              "  day         split       data version      flights in/valid/quarantined  weather in/valid/quar.  checks"]
    for r in data["days"]:
        fl, we = r["flights"], r["weather"]
        failed = [f"{a}:{c}" for a, x in (("flights", fl), ("weather", we)) for c, s in x["checks"].items() if s != "SUCCEEDED"]
        lines.append(
            f"  {r['day']}  {r['split']:10s}  {str(r['data_version']):16s}  "
            f"{fl['rows_in']}/{fl['rows_valid']}/{fl['rows_quarantined']:<5}                 "
            f"{we['rows_in']}/{we['rows_valid']}/{we['rows_quarantined']:<5}       "
            f"{'all passed' if not failed else ', '.join(failed)}{'' if r['data_version_matches'] else '  (version differs!)'}")
    lines += ["", "HOW IT WAS JUDGED", f"  gate: {ev['gate_decision']}"]
    lines += [f"    - {reason}" for reason in ev["gate_reasons"]]
    lines += [f"  test metrics: {ev['mlflow_metrics']}"]
    if dep:
        lines += ["", "DEPLOYMENT", f"  promoted: {dep['promoted']}; champion after the run: {dep['champion']}; previous: {dep['previous']}",
                  f"  model card: {dep['model_card_path']}"]
    lines += ["", "WHAT WOULD REBUILD IT", f"  git commit: {rb['git_commit']}", f"  requirements.lock sha256: {rb['requirements_lock_sha256']}",
              f"  pinned requirements: {', '.join(rb['pinned_requirements'] or [])}",
              f"  hyperparameters: {rb['hyperparameters']}", f"  command: {rb['command']}"]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="The provenance chain of a registered model version.")
    parser.add_argument("version", nargs="?", default="champion", help="a version number, or `champion` (default)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    p = provenance(args.version)
    sys.stdout.write(json.dumps(p, indent=1, default=str) + "\n" if args.json else as_text(p) + "\n")


if __name__ == "__main__":
    main()
