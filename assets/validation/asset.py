"""Validation: typed, checked rows (`validated_*`) and the quarantine.

The row-level Great Expectations suite (assets/validation/expectations.py) runs once over all
days of the run. Each failing row goes to `quarantine` with the original text values, its
partition, source file and row number, and every reason; the other rows are stored typed in
`validated_*`. Both writes, for all days of the run, are one transaction, and inside it every
day's raw version must still be the one read (else `InputChanged`, retried) and every day must
satisfy rows in = rows valid + rows quarantined, or nothing is written.

Batch-level checks (blocking, ERROR: the GX expectation is CRITICAL): too large a share of bad rows
on a day. The null limits of columns that may legitimately be missing on single rows are a WARN
check (the GX expectations are WARNING). The reading, the verdicts and the accounting are in
assets/validation/logic.py; here are the resources, the metadata and the checks.
"""

from dagster import (
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
)
from pydantic import Field

from assets.asset_factory import (
    DataFailure,
    add_partition_metadata,
    day_history_metadata,
    lifecycle_asset,
    partition_check_results,
    table_metadata,
)
from assets.validation.expectations import ROW_SUITES, quarantine_share_suite
from assets.validation.logic import (
    RowFindings,
    ShareVerdict,
    Violation,
    accounting,
    find_rows,
    judge_shares,
    prepare_for_validation,
    temperature_jumps,
    temperature_verdicts,
)
from resources.data_quality import GreatExpectations
from resources.registry import ModelRegistry
from resources.schemas import FLIGHTS, WEATHER, DatasetContract, quarantine, raw_tables, validated_tables
from resources.settings import settings
from resources.warehouse import Warehouse

SHARE_CHECK = "bad_row_share_within_limit"
ACCOUNTED_CHECK = "rows_in_equal_valid_plus_quarantined"
NULLS_CHECK = "null_limits"
TEMPERATURE_CHECK = "temperature_continuous"
CHECKS = {"flights": [SHARE_CHECK, ACCOUNTED_CHECK, NULLS_CHECK], "weather": [SHARE_CHECK, ACCOUNTED_CHECK, TEMPERATURE_CHECK]}
# a check's Dagster severity is the GX severity of its expectations: CRITICAL -> ERROR, WARNING -> WARN
CHECK_SEVERITY = {SHARE_CHECK: AssetCheckSeverity.ERROR, ACCOUNTED_CHECK: AssetCheckSeverity.ERROR,
                  NULLS_CHECK: AssetCheckSeverity.WARN, TEMPERATURE_CHECK: AssetCheckSeverity.ERROR}
DAY_COLUMNS = {"partition_date": "string", "rows_in": "int", "rows_valid": "int", "rows_quarantined": "int",
               "quarantine_share": "float"}


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
        TEMPERATURE_CHECK: ("No airport's temperature jumps by more than 18 °F from the previous day's last 3 hours to "
                            "the day's first 3 (medians; the real year's largest jump is 12.1 °F): a feed in °C instead "
                            "of °F passes every row's range but fails here, and nothing of the day is written.", True),
    }
    return [AssetCheckSpec(c, asset=name, blocking=descriptions[c][1], description=descriptions[c][0])
            for c in CHECKS[dataset]]


def _stored_data_docs(context: AssetExecutionContext, model_registry: ResourceParam[ModelRegistry], asset: str, days: list[str],
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


def _violations(warnings: list[Violation]):
    return table_metadata([{"column": v.column, "rule": v.rule, "observed": None if v.observed is None else str(v.observed)}
                           for v in warnings], {"column": "string", "rule": "string", "observed": "string"})


def _check_results(dataset: str, partitions: list[str], shares: ShareVerdict, accounted: dict,
                   warnings: list[Violation], continuity: dict) -> dict[str, dict[str, tuple[bool, dict]]]:
    """check -> day -> (passed, metadata), for the dataset's checks in their order."""
    scope = f"over the run's {len(partitions)} day(s)"
    results = {SHARE_CHECK: shares.days, ACCOUNTED_CHECK: accounted, TEMPERATURE_CHECK: continuity,
               NULLS_CHECK: {p: (not warnings, {"violations": _violations(warnings), "scope": scope}) for p in partitions}}
    return {c: results[c] for c in CHECKS[dataset]}


def _day_metadata(found: RowFindings, days: dict, checks: dict, history: dict) -> dict[str, dict]:
    """Each day's own figures, for that day's materialization."""
    return {r.partition_date: {
        "rows_in": int(r.rows_in), "rows_valid": int(r.rows_valid), "rows_quarantined": int(r.rows_quarantined),
        "dagster/row_count": int(r.rows_valid),
        "quarantine_reasons": MetadataValue.json(dict(found.reasons.get(r.partition_date, {}))),
        "data_version": days[r.partition_date].content_hash,
        "source_file": str(r.source_file),
        # the checks' verdicts of the day, for the provenance of models trained on it
        "checks": MetadataValue.json({c: "passed" if per_day[r.partition_date][0] else "failed" for c, per_day in checks.items()}),
        "built_from": MetadataValue.text(", ".join(days[r.partition_date].inputs) or "none"),
        **history[r.partition_date],
    } for r in found.summary.itertuples()}


def _run_metadata(contract: DatasetContract, found: RowFindings, data_docs) -> dict:
    """The run's figures (every day's materialization carries them; a day's own figures replace
    those of the same name, e.g. `rows_in` and `quarantine_reasons`)."""
    summary = found.summary
    return {
        "rows_in": MetadataValue.int(int(summary["rows_in"].sum())),
        "rows_valid": MetadataValue.int(int(summary["rows_valid"].sum())),
        "rows_quarantined": MetadataValue.int(int(summary["rows_quarantined"].sum())),
        "quarantine_reasons": table_metadata([{"reason": k, "rows": n} for k, n in found.reason_totals()],
                                             {"reason": "string", "rows": "int"}),
        "data_docs": data_docs,
        "gx_suite": MetadataValue.text(f"{contract.name}_rows (assets/validation/expectations.py)"),
        "days": table_metadata(summary.to_dict("records"), DAY_COLUMNS),
    }


def _temperature_continuity(warehouse: Warehouse, partitions: list[str], found: RowFindings) -> dict:
    """day -> (passed, metadata) of TEMPERATURE_CHECK: each day against the day before it in this
    run, else the newest of the three days before the run that the warehouse holds."""
    from datetime import date, timedelta

    first = date.fromisoformat(min(partitions))
    earlier, _ = warehouse.read_current_versions(validated_tables["weather"],
                                                 [(first - timedelta(days=n)).isoformat() for n in (3, 2, 1)])
    verdicts = temperature_verdicts(temperature_jumps(partitions, found.valid, earlier))
    return {p: verdicts.get(p, (True, {"largest_jump_f": None, "airport": None, "limit_f": None, "airports_judged": 0}))
            for p in partitions}


def build_validated_asset(contract: DatasetContract):
    name = f"validated_{contract.name}"

    @lifecycle_asset(
        "validation",
        daily=True,
        name=name,
        writes=validated_tables[contract.name],
        deps=[f"raw_{contract.name}"],
        kinds={"pandas", "sql"},
        check_specs=_check_specs(name, contract.name),
        description=(
            f"{contract.name.capitalize()} that passed the row-level Great Expectations suite "
            f"`{contract.name}_rows`, typed, in `{name}`; failing rows are in `quarantine` "
            "(dataset, partition, source file, row number, original values and every reason)."
        ),
    )
    def _validated(context: AssetExecutionContext, config: ValidationConfig, warehouse: ResourceParam[Warehouse],
                   great_expectations: GreatExpectations, model_registry: ResourceParam[ModelRegistry]):
        partitions = context.partition_keys
        limit = settings().max_quarantine_share if config.max_quarantine_share is None else config.max_quarantine_share
        raw, raw_versions = warehouse.read_current_versions(raw_tables[contract.name], partitions)
        frame = prepare_for_validation(raw, contract)
        rows = great_expectations.validate(frame, f"{name}_rows", ROW_SUITES[contract.name]) if len(frame) else None
        found = find_rows(raw, frame, rows.outcomes if rows else [], partitions, contract)
        share_run = great_expectations.validate(
            found.summary, f"{name}_day_summary", quarantine_share_suite, contract.name, limit, docs=False)
        shares = judge_shares(found, limit, share_run.max_severity_failure)
        if shares.blocked:
            yield from partition_check_results(context, SHARE_CHECK, shares.days)
            # the blocked days are flagged as a broken feed: no training window takes them (resources/day_flags.py)
            warehouse.record_feed_verdicts(name, SHARE_CHECK, shares.messages, [], "ERROR", context.run_id)
            raise DataFailure(f"{name}: too many bad rows; nothing was written:\n" + "\n".join(shares.messages.values()))
        continuity = _temperature_continuity(warehouse, partitions, found) if contract.name == "weather" else {}
        files = dict(zip(found.summary["partition_date"], found.summary["source_file"]))
        broken = {d: f"partition {d}, file {files.get(d)}, column 'temp': the temperature at {m['airport']} jumps by "
                     f"{m['largest_jump_f']} °F from the previous day's last hours (limit {m['limit_f']} °F): readings in "
                     "°C instead of °F?" for d, (passed, m) in continuity.items() if not passed}
        if broken:
            yield from partition_check_results(context, TEMPERATURE_CHECK, continuity)
            warehouse.record_feed_verdicts(name, TEMPERATURE_CHECK, broken, [], "ERROR", context.run_id)
            raise DataFailure(f"{name}: nothing was written:\n" + "\n".join(broken.values()))

        days = found.day_versions(raw_versions)
        with warehouse.replace_partitions() as tx:
            written = tx.write_version(name, days, {validated_tables[contract.name]: found.valid, quarantine: found.quarantined},
                                       run_id=context.run_id)
            # a day ingested again since the read: nothing is written, the retry validates the new version
            tx.require_inputs(name, {f"raw_{contract.name}": raw_versions}, partitions)
            accounted = accounting(partitions, tx.count_by_partition(raw_tables[contract.name], partitions),
                                   tx.count_by_partition(validated_tables[contract.name], partitions),
                                   tx.count_by_partition(quarantine, partitions, dataset=contract.name))
            unbalanced = [p for p, (balanced, _) in accounted.items() if not balanced]
            if unbalanced:  # raising inside the transaction rolls every write of this run back
                raise DataFailure(f"{name}: rows in != valid + quarantined for {unbalanced[:10]}; nothing was written")

        checks = _check_results(contract.name, partitions, shares, accounted, found.warnings, continuity)
        for check in (SHARE_CHECK, TEMPERATURE_CHECK) if contract.name == "weather" else (SHARE_CHECK,):
            warehouse.record_feed_verdicts(name, check, {}, partitions, "ERROR", context.run_id)  # the days passed
        history = day_history_metadata(warehouse, model_registry, name, written)
        add_partition_metadata(context, _day_metadata(found, days, checks, history))
        docs = _stored_data_docs(context, model_registry, name, partitions, rows.page_html if rows else None)
        yield MaterializeResult(metadata=_run_metadata(contract, found, docs))
        for check, per_day in checks.items():
            yield from partition_check_results(context, check, per_day, severity=CHECK_SEVERITY[check])

    return _validated


validated_flights = build_validated_asset(FLIGHTS)
validated_weather = build_validated_asset(WEATHER)
