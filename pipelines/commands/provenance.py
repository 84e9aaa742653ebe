"""The provenance of a model version, for an audit: why it exists, what data made it, whether
that data was valid, how it was judged, and what would rebuild it.

    flights-provenance [VERSION|champion] [--json]

Read from the MLflow registry (the version's record, its run's metrics and parameters, its
pinned requirements) and from the Dagster instance (the retrain run and its tags, the triggering
report, each training day's features and validation counts with the checks' verdicts, the
evaluation and deployment of the retrain run).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, TableMetadataValue
from dagster._core.errors import DagsterHomeNotSetError

from pipelines.commands.convention import cannot_carry_out, refused
from resources.records import ModelRecord
from resources.registry import ModelRegistry
from resources.settings import configure_process

VALIDATED = {"flights": "validated_flights", "weather": "validated_weather"}


def _values(metadata) -> dict[str, Any]:
    out = {}
    for k, v in metadata.items():
        if isinstance(v, TableMetadataValue):  # table metadata (e.g. the evaluation's `metrics`): its rows
            out[k] = [dict(r.data) for r in v.records]
            continue
        value = v.value
        out[k] = value if isinstance(value, (str, int, float, bool, dict, list, type(None))) else str(value)
    return out


def _latest_by_day(instance: DagsterInstance, asset: str, days: list[str], before: float | None) -> dict[str, Any]:
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


def _of_run(instance: DagsterInstance, asset: str, run_id: str) -> dict[str, Any] | None:
    """The metadata of `asset`'s materialization in the run `run_id`, if it has one."""
    for r in instance.fetch_materializations(AssetKey(asset), limit=200).records:
        if r.run_id == run_id:
            return _values(r.asset_materialization.metadata)
    return None


def _trigger(instance: DagsterInstance, record: ModelRecord) -> dict[str, Any]:
    t = record.trigger
    out: dict[str, Any] = {"kind": t.kind, **{k: v for k, v in (("reason", t.reason), ("asset", t.asset),
                           ("partition", t.partition), ("storage_id", t.storage_id), ("run_id", t.run_id)) if v}}
    if t.asset and t.storage_id:
        found = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(t.asset), storage_ids=[int(t.storage_id)]), limit=1).records
        if found:
            out["report"] = _values(found[0].asset_materialization.metadata)
    return out


def provenance(version: str, instance: DagsterInstance | None = None, registry: ModelRegistry | None = None) -> dict[str, Any]:
    registry = registry or ModelRegistry()
    instance = instance or DagsterInstance.get()
    record = registry.record(version)
    window, build = record.window, record.build
    days = window.days
    run_record = instance.get_run_record_by_id(build.dagster_run_id) if build.dagster_run_id else None
    dagster_run = run_record.dagster_run if run_record else None
    started = run_record.start_time if run_record else None

    features = _latest_by_day(instance, "flight_features", days, started)
    validation = {name: _latest_by_day(instance, asset, days, started) for name, asset in VALIDATED.items()}
    rows = []
    for day in days:
        recorded, built = window.data_versions.get(day), features.get(day, {})
        row: dict[str, Any] = {
            "day": day, "split": window.split_of(day), "data_version": recorded,
            "version_id": window.version_ids.get(day),  # the flight_features version read (pipelines.commands.history DAY)
            "features_data_version_in_instance": built.get("data_version"),
            "data_version_matches": recorded is not None and recorded == built.get("data_version"),
            "features_run_id": built.get("run_id"),
        }
        for name in VALIDATED:
            v = validation[name].get(day, {})
            row[name] = {k: v.get(k) for k in ("rows_in", "rows_valid", "rows_quarantined", "quarantine_reasons")}
            row[name]["checks"] = v.get("checks") or {}
        rows.append(row)

    evaluation = deployment = None
    if dagster_run is not None:
        found = _of_run(instance, "model_evaluation", dagster_run.run_id)
        evaluation = found and {k: found.get(k) for k in ("decision", "reasons", "metrics", "test_days")}
        found = _of_run(instance, "champion_model", dagster_run.run_id)
        deployment = found and {k: found.get(k) for k in ("promoted", "champion", "previous", "reasons", "model_card_url")}

    try:
        requirements = registry.pinned_requirements(record.version)
    except Exception as exc:  # artifacts gone: say so
        requirements = [f"unavailable: {exc}"]
    verdict = record.verdict
    return {
        "model": {"name": record.name, "version": record.version, "aliases": list(record.aliases),
                  "mlflow_run_id": record.run_id, "source": record.source, "threshold": record.threshold,
                  "created": record.created_ms, "served_model_package": build.package or "none (registered before it)"},
        "why": {"trigger": _trigger(instance, record), "retrain_as_of": record.trigger.as_of,
                "dagster_run_id": build.dagster_run_id, "dagster_job": build.dagster_job,
                "dagster_run_status": dagster_run.status.value if dagster_run else "not in this instance",
                "dagster_run_tags": dict(dagster_run.tags) if dagster_run else {}},
        "data": {"window": window.label, "days": rows,
                 "all_data_versions_match": bool(rows) and all(r["data_version_matches"] for r in rows)},
        "evaluation": {"gate_decision": None if verdict is None else ("promoted" if verdict.promote else "rejected"),
                       "gate_reasons": [] if verdict is None else verdict.reasons,
                       "test_roc_auc": record.evaluation_roc_auc,
                       "mlflow_metrics": {k: round(v, 5) for k, v in registry.run_metrics(record.run_id).items()
                                          if k.startswith("test_")},
                       "dagster": evaluation},
        "deployment": deployment,
        # every alias move of the version: who, why, which Dagster run (promotion, approval,
        # rejection, expiry, rollback)
        "alias_moves": [e.as_dict() for e in record.events],
        "rebuild": {"git_commit": build.git_commit, "requirements_lock_sha256": build.lock_sha256,
                    "pinned_requirements": requirements, "hyperparameters": registry.run_params(record.run_id),
                    "command": f"flights-reproduce {record.version}"},
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
              "  day         split       version id    data version      flights in/valid/quarantined  weather in/valid/quar.  checks"]
    for r in data["days"]:
        fl, we = r["flights"], r["weather"]
        failed = [f"{a}:{c}" for a, x in (("flights", fl), ("weather", we)) for c, s in x["checks"].items() if s != "passed"]
        lines.append(
            f"  {r['day']}  {r['split']:10s}  {str(r['version_id'] or '-'):12s}  {str(r['data_version']):16s}  "
            f"{fl['rows_in']}/{fl['rows_valid']}/{fl['rows_quarantined']!s:<5}                 "
            f"{we['rows_in']}/{we['rows_valid']}/{we['rows_quarantined']!s:<5}       "
            f"{'all passed' if not failed else ', '.join(failed)}{'' if r['data_version_matches'] else '  (version differs!)'}")
    lines += ["", "HOW IT WAS JUDGED", f"  gate: {ev['gate_decision']}"]
    lines += [f"    - {reason}" for reason in ev["gate_reasons"]]
    lines += [f"  test metrics: {ev['mlflow_metrics']}"]
    if dep:
        lines += ["", "DEPLOYMENT", f"  promoted: {dep['promoted']}; champion after the run: {dep['champion']}; previous: {dep['previous']}",
                  f"  model card: {dep['model_card_url']}"]
    labels = {"rolled_back": "rolled back", "restored": "restored by a rollback", "challenger": "challenger"}
    lines += ["", "ALIAS MOVES" + ("" if p["alias_moves"] else "  none")]
    lines += [f"  {e['at']}  {labels.get(e['kind'], e['kind'])} by {e['by']}: {e['reason']}"
              + (f"  (Dagster run {e['dagster_run_id']})" if e["dagster_run_id"] else "") for e in p["alias_moves"]]
    lines += ["", "WHAT WOULD REBUILD IT", f"  git commit: {rb['git_commit']}", f"  requirements.lock sha256: {rb['requirements_lock_sha256']}",
              f"  pinned requirements: {', '.join(rb['pinned_requirements'] or [])}",
              f"  hyperparameters: {rb['hyperparameters']}", f"  command: {rb['command']}"]
    return "\n".join(lines)


def main(argv=None) -> int:
    configure_process()
    parser = argparse.ArgumentParser(description="The provenance chain of a registered model version.")
    parser.add_argument("version", nargs="?", default="champion", help="a version number, or `champion` (default)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    try:
        p = provenance(args.version)
    except cannot_carry_out(DagsterHomeNotSetError) as exc:
        return refused(f"provenance of {args.version}", exc)
    sys.stdout.write(json.dumps(p, indent=1, default=str) + "\n" if args.json else as_text(p) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
