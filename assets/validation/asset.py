"""Validation: typed, checked rows (`validated_*`) and the quarantine.

The row-level Great Expectations suite (assets/validation/expectations.py) runs once over all
days of the run. Each failing row goes to `quarantine` with the original text values, its
partition, source file and row number, and every reason; the other rows are stored typed in
`validated_*`. Both writes, for all days of the run, are one transaction, and inside it every
day must satisfy rows in = rows valid + rows quarantined, or nothing is written.

Batch-level checks (blocking, ERROR): too large a share of bad rows on a day. The null limits of
columns that may legitimately be missing on single rows are a WARN check.
"""

from collections import Counter

import pandas as pd
from dagster import AssetCheckSeverity, AssetCheckSpec, AssetExecutionContext, Config, MaterializeResult, MetadataValue
from pydantic import Field

from assets.asset_factory import (
    DataFailure,
    add_partition_metadata,
    day_history_metadata,
    lifecycle_asset,
    partition_check_results,
)
from assets.common import bullet_list, data_version, data_versions_by_partition, markdown_table
from assets.validation.expectations import ROW_SUITES, quarantine_share_suite
from assets.validation.logic import (
    day_summary,
    prepare_for_validation,
    reason_counts,
    row_reasons,
    split_rows,
    too_many_bad_rows,
    warnings_of,
)
from resources.data_quality import GreatExpectations
from resources.day_versions import DayVersion
from resources.registry import ModelRegistry
from resources.schemas import FLIGHTS, WEATHER, DatasetContract, quarantine, raw_tables, validated_tables
from resources.settings import settings
from resources.warehouse import Warehouse

SHARE_CHECK = "bad_row_share_within_limit"
ACCOUNTED_CHECK = "rows_in_equal_valid_plus_quarantined"
NULLS_CHECK = "null_limits"
CHECKS = {"flights": [SHARE_CHECK, ACCOUNTED_CHECK, NULLS_CHECK], "weather": [SHARE_CHECK, ACCOUNTED_CHECK]}


class ValidationConfig(Config):
    max_quarantine_share: float | None = Field(
        default=None,
        description="A day whose share of quarantined rows exceeds this fails (blocking); "
        "unset: FLIGHTS_MAX_QUARANTINE_SHARE (default 0.10).",
    )


def _check_specs(name: str, dataset: str) -> list[AssetCheckSpec]:
    descriptions = {
        SHARE_CHECK: ("Great Expectations: the share of quarantined rows of each day is at most "
                      "`max_quarantine_share`; otherwise nothing is written and downstream is blocked.", True),
        ACCOUNTED_CHECK: ("For every day, rows in (raw) = rows valid + rows quarantined, counted in the warehouse "
                          "inside the writing transaction.", True),
        NULLS_CHECK: ("Null limits of columns that may be missing on single rows (WARN; the suite's `mostly` "
                      "expectations over the run's days).", False),
    }
    return [AssetCheckSpec(c, asset=name, blocking=descriptions[c][1], description=descriptions[c][0])
            for c in CHECKS[dataset]]


def _stored_data_docs(context: AssetExecutionContext, model_registry: ModelRegistry, asset: str, days: list[str],
                      page_html: str | None):
    """The link to the validation's Data Docs page, kept in the MLflow artifact store (the one
    artifact service every host of the team profile reaches). A store that cannot take it does
    not undo the validated days: the metadata says so and the log warns."""
    if page_html is None:
        return MetadataValue.text("no rows to validate")
    try:
        return MetadataValue.url(model_registry.store_data_docs(asset, days, context.run_id, page_html))
    except Exception as exc:  # the tracking store down or refusing: the day stands without its page
        context.log.warning(f"{asset}: Data Docs page not stored ({type(exc).__name__}: {str(exc)[:200]})")
        return MetadataValue.text(f"not stored: {type(exc).__name__}: {str(exc)[:200]}")


def build_validated_asset(contract: DatasetContract):
    name = f"validated_{contract.name}"

    @lifecycle_asset(
        "validation",
        daily=True,
        name=name,
        deps=[f"raw_{contract.name}"],
        kinds={"pandas", "sql"},
        check_specs=_check_specs(name, contract.name),
        description=(
            f"{contract.name.capitalize()} that passed the row-level Great Expectations suite "
            f"`{contract.name}_rows`, typed, in `{name}`; failing rows are in `quarantine` "
            "(dataset, partition, source file, row number, original values and every reason)."
        ),
    )
    def _validated(context: AssetExecutionContext, config: ValidationConfig, warehouse: Warehouse,
                   great_expectations: GreatExpectations, model_registry: ModelRegistry):
        partitions = context.partition_keys
        limit = settings().max_quarantine_share if config.max_quarantine_share is None else config.max_quarantine_share
        raw, raw_versions = warehouse.read_current_versions(raw_tables[contract.name], partitions)
        frame = prepare_for_validation(raw, contract)
        outcomes, docs = [], None
        if len(frame):
            run = great_expectations.validate(frame, f"{name}_rows", ROW_SUITES[contract.name])
            outcomes, docs = run.outcomes, run.page_html
        reasons = row_reasons(outcomes, frame) if outcomes else pd.Series([], dtype=object)
        valid, quarantined = split_rows(raw, frame, reasons, contract)
        summary = day_summary(partitions, raw, reasons, frame)
        counts = reason_counts(reasons, frame)

        share_run = great_expectations.validate(
            summary, f"{name}_day_summary", quarantine_share_suite, contract.name, limit, docs=False)
        share_results = {
            r.partition_date: (r.quarantine_share <= limit, {
                "rows_in": int(r.rows_in), "rows_quarantined": int(r.rows_quarantined),
                "quarantine_share": float(r.quarantine_share), "limit": float(limit)})
            for r in summary.itertuples()
        }
        if not share_run.success:
            yield from partition_check_results(context, SHARE_CHECK, share_results)
            raise DataFailure(f"{name}: too many bad rows; nothing was written:\n"
                              + "\n".join(too_many_bad_rows(summary, counts, limit)))

        versions = data_versions_by_partition(valid, exclude=("source_file",))
        no_rows = data_version(valid.drop(columns=["source_file"]).iloc[0:0])  # a day without valid rows, once
        days = {r.partition_date: DayVersion(
            versions.get(r.partition_date, no_rows), source_file=None if pd.isna(r.source_file) else str(r.source_file),
            rows_in=int(r.rows_in), rows_valid=int(r.rows_valid), rows_quarantined=int(r.rows_quarantined),
            inputs=tuple(v for v in [raw_versions.get(r.partition_date)] if v)) for r in summary.itertuples()}
        with warehouse.replace_partitions() as tx:
            written = tx.write_version(name, days, {validated_tables[contract.name]: valid, quarantine: quarantined},
                                       run_id=context.run_id)
            n_raw = tx.count_by_partition(raw_tables[contract.name], partitions)
            n_valid = tx.count_by_partition(validated_tables[contract.name], partitions)
            n_bad = tx.count_by_partition(quarantine, partitions, dataset=contract.name)
            unbalanced = [p for p in partitions if n_raw[p] != n_valid[p] + n_bad[p]]
            if unbalanced:  # raising inside the transaction rolls every write of this run back
                raise DataFailure(f"{name}: rows in != valid + quarantined for {unbalanced[:10]}; nothing was written")

        warned = warnings_of(outcomes)
        verdicts = {p: {SHARE_CHECK: share_results[p][0], ACCOUNTED_CHECK: True} for p in partitions}
        if NULLS_CHECK in CHECKS[contract.name]:
            for p in partitions:
                verdicts[p][NULLS_CHECK] = not warned
        history = day_history_metadata(warehouse, model_registry, name, written)
        add_partition_metadata(context, {
            r.partition_date: {
                "rows_in": int(r.rows_in), "rows_valid": int(r.rows_valid), "rows_quarantined": int(r.rows_quarantined),
                "quarantine_reasons": MetadataValue.json(dict(counts.get(r.partition_date, {}))),
                "data_version": versions.get(r.partition_date, no_rows),
                "source_file": str(r.source_file),
                # the checks' verdicts of the day, for the provenance of models trained on it
                "checks": MetadataValue.json({c: "passed" if ok else "failed" for c, ok in verdicts[r.partition_date].items()}),
                "built_from": MetadataValue.text(", ".join(days[r.partition_date].inputs) or "none"),
                **history[r.partition_date],
            }
            for r in summary.itertuples()
        })
        total = sum(counts.values(), Counter())
        yield MaterializeResult(metadata={
            "rows_in": MetadataValue.int(int(summary["rows_in"].sum())),
            "rows_valid": MetadataValue.int(int(summary["rows_valid"].sum())),
            "rows_quarantined": MetadataValue.int(int(summary["rows_quarantined"].sum())),
            "quarantine_reasons": MetadataValue.md(markdown_table(
                [{"reason": k, "rows": n} for k, n in total.most_common()], ["reason", "rows"])),
            "data_docs": _stored_data_docs(context, model_registry, name, partitions, docs),
            "gx_suite": MetadataValue.text(f"{contract.name}_rows (assets/validation/expectations.py)"),
            "days": MetadataValue.md(markdown_table(summary.to_dict("records"), [
                "partition_date", "rows_in", "rows_valid", "rows_quarantined", "quarantine_share"])),
        })
        yield from partition_check_results(context, SHARE_CHECK, share_results)
        yield from partition_check_results(context, ACCOUNTED_CHECK, {
            p: (n_raw[p] == n_valid[p] + n_bad[p], {"rows_in": n_raw[p], "rows_valid": n_valid[p], "rows_quarantined": n_bad[p]})
            for p in partitions
        })
        if NULLS_CHECK in CHECKS[contract.name]:
            scope = f"over the run's {len(partitions)} day(s)"
            yield from partition_check_results(
                context, NULLS_CHECK,
                {p: (not warned, {"violations": MetadataValue.md(bullet_list(warned)), "scope": scope}) for p in partitions},
                severity=AssetCheckSeverity.WARN,
            )

    return _validated


validated_flights = build_validated_asset(FLIGHTS)
validated_weather = build_validated_asset(WEATHER)
