"""Print what the data half of the pipeline holds for a window of days.

    flights-summary 2013-01-01 2013-01-14
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

import pandas as pd

from assets.common import partition_days
from assets.validation.logic import parse_reasons
from pipelines.commands.convention import Refused, cannot_carry_out, refused
from resources.registry import PREVIOUS, ModelRegistry
from resources.schemas import flight_features, predictions, quarantine, raw_tables, validated_tables
from resources.settings import configure_process, settings
from resources.warehouse import Warehouse


def summarize(start: str, end: str) -> str:
    days = [d for d in partition_days() if start <= d <= end]
    wh = Warehouse()  # WAREHOUSE_URL or the SQLite default
    lines = [f"Warehouse: {wh.display_url}", ""]
    header = f"{'day':<12}{'dataset':<9}{'rows in':>9}{'valid':>8}{'quarant.':>10}{'features':>10}{'late %':>8}"
    lines.append(header)
    lines.append("-" * len(header))
    feats = wh.read(flight_features, days, columns=["partition_date", "is_late"])
    late = feats.groupby("partition_date")["is_late"].apply(lambda s: pd.to_numeric(s).mean())
    n_feat = feats.groupby("partition_date").size()
    reasons: Counter = Counter()
    totals = Counter()
    for dataset in ("flights", "weather"):
        raw = wh.count_by_partition(raw_tables[dataset], days)
        valid = wh.count_by_partition(validated_tables[dataset], days)
        bad = wh.count_by_partition(quarantine, days, dataset=dataset)
        q = wh.read(quarantine, days, columns=["reasons"], dataset=dataset)
        for r in q["reasons"]:
            reasons.update(f"{dataset} {x.kind}" for x in parse_reasons(r))
        shown = days if len(days) <= 16 else days[:3] + days[-10:]
        for d in days:
            if d not in shown:
                continue
            if len(shown) < len(days) and d == days[-10]:
                lines.append(f"{'…':<12}{dataset:<9}({len(days) - len(shown)} more days)")
            extra = ""
            if dataset == "flights":
                extra = f"{int(n_feat.get(d, 0)):>10}{100 * late.get(d, float('nan')):>8.1f}"
            lines.append(f"{d:<12}{dataset:<9}{raw[d]:>9}{valid[d]:>8}{bad[d]:>10}{extra}")
        totals[(dataset, "in")] += sum(raw.values())
        totals[(dataset, "valid")] += sum(valid.values())
        totals[(dataset, "bad")] += sum(bad.values())
    lines.append("")
    for dataset in ("flights", "weather"):
        lines.append(
            f"{dataset}: {totals[(dataset, 'in')]} rows in = {totals[(dataset, 'valid')]} valid + "
            f"{totals[(dataset, 'bad')]} quarantined"
        )
    lines.append(f"features: {len(feats)} rows, {100 * pd.to_numeric(feats['is_late']).mean():.1f}% late")
    if reasons:
        lines.append("quarantine reasons: " + "; ".join(f"{k} ×{n}" for k, n in reasons.most_common(8)))
    lines += ["", *model_lines(wh, days)]
    s = settings()
    lines += [
        "",
        "Dagster UI (runs, lineage, checks, metadata with the links below): make ui  ->  http://127.0.0.1:3000",
        f"MLflow UI (runs, registry, model cards, Great Expectations Data Docs): make mlflow-ui  ->  {s.mlflow_ui_url}",
        f"Evidently UI (monitoring dashboard, daily snapshots): make evidently-ui  ->  {s.evidently_ui_url}",
        "Serve the champion: make serve  ->  POST http://127.0.0.1:5001/invocations",
    ]
    return "\n".join(lines)


def model_lines(wh, days) -> list[str]:
    registry = ModelRegistry()
    try:
        champion = registry.champion()
    except Exception as exc:  # no tracking store yet
        return [f"Model registry: unavailable ({exc})"]
    if champion is None:
        return ["Model registry: no champion yet (run retrain_job)"]
    previous = registry.by_alias(PREVIOUS)
    auc = champion.evaluation_roc_auc
    preds = wh.count_by_partition(predictions, days)
    scored = {d: n for d, n in preds.items() if n}
    card = registry.artifact_url(champion.run_id, "model_card/model_card.md")
    return [
        f"Champion: {champion.label} (test ROC AUC {auc:.4f}; "
        f"previous: {previous.version if previous else 'none'}; trained on {champion.window.label})",
        f"Predictions: {sum(scored.values())} rows on {len(scored)} day(s) "
        f"{min(scored) if scored else ''}…{max(scored) if scored else ''}",
        f"Model card: {card}",
        f"MLflow tracking store: {registry.display_tracking_uri}",
    ]


def main(argv=None) -> int:
    configure_process()
    keys = partition_days()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("start", nargs="?", help=f"first day (default {keys[0]})")
    parser.add_argument("end", nargs="?", help=f"last day (default: START if given, else {keys[-1]})")
    args = parser.parse_args(argv)
    start, end = args.start or keys[0], args.end or args.start or keys[-1]
    unknown = sorted({d for d in (start, end) if d not in keys})
    try:
        if unknown:
            raise Refused(f"not a day of the partitions ({keys[0]} … {keys[-1]}): {', '.join(unknown)}")
        print(summarize(start, end))
    except cannot_carry_out() as exc:
        return refused("summary", exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
