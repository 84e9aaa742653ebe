"""Validation: typed, checked rows (`validated_*`) and the quarantine.

The row-level Great Expectations suite (assets/expectations.py) runs once over all days of the
run. Each failing row goes to `quarantine` with the original text values, its partition, source
file and row number, and every reason; the other rows are stored typed in `validated_*`. Both
writes, for all days of the run, are one transaction, and inside it every day must satisfy
rows in = rows valid + rows quarantined, or nothing is written.

Batch-level checks (blocking, ERROR): too large a share of bad rows on a day. The null limits of
columns that may legitimately be missing on single rows are a WARN check.
"""


import json
from collections import Counter

import pandas as pd
from dagster import (
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from assets.expectations import ROW_SUITES, quarantine_share_suite
from assets.partitions import (
    add_partition_metadata,
    daily_partitions,
    partition_check_results,
    data_version,
    data_versions_by_partition,
    markdown_table,
    single_run_backfill,
)
from resources.retries import STORE_RETRY_POLICY, DataFailure
from resources.data_quality import GreatExpectations, SuiteRun
from resources.schemas import (
    FLIGHTS,
    WEATHER,
    DatasetContract,
    quarantine,
    raw_tables,
    validated_tables,
)
from resources.settings import MAX_QUARANTINE_SHARE
from resources.warehouse import Warehouse

SHARE_CHECK = "bad_row_share_within_limit"
ACCOUNTED_CHECK = "rows_in_equal_valid_plus_quarantined"
NULLS_CHECK = "null_limits"


class ValidationConfig(Config):
    max_quarantine_share: float = Field(
        default=MAX_QUARANTINE_SHARE,
        description="A day whose share of quarantined rows exceeds this fails (blocking).",
    )


def prepare_for_validation(raw: pd.DataFrame, contract: DatasetContract) -> pd.DataFrame:
    """Typed contract columns, the arrived text of numeric columns (`<col>__raw`) and derived
    columns for the row suite. The index is unique over the whole run."""
    frame = raw.reset_index(drop=True)
    out = frame[["partition_date", "source_file", "row_number"]].copy()
    for column, kind in contract.columns.items():
        text = frame[column].astype(object).where(frame[column].notna(), None)
        if kind == "str":
            out[column] = text
        else:
            stripped = text.map(lambda v: v.strip() if isinstance(v, str) else v)
            stripped = stripped.where(stripped != "", None)
            out[f"{column}__raw"] = stripped
            out[column] = pd.to_numeric(stripped, errors="coerce").astype(float)
    date = pd.to_datetime(
        {"year": out["year"], "month": out["month"], "day": out["day"]}, errors="coerce"
    )
    out["flight_date"] = date.dt.strftime("%Y-%m-%d").astype(object).where(date.notna(), None)
    key = ["partition_date", *contract.key]
    out["occurrence"] = out.groupby(key, dropna=False, sort=False).cumcount()
    return out


def row_reasons(run: SuiteRun, frame: pd.DataFrame) -> pd.Series:
    """index -> list of reasons, for the rows failing any row-level expectation."""
    pieces = []
    for outcome in run.outcomes:
        if outcome.success or outcome.meta.get("level") != "row" or not outcome.unexpected_index:
            continue
        idx = pd.Index(outcome.unexpected_index)
        text = f"{outcome.meta['column']}: {outcome.meta['reason']}"
        column = outcome.kwargs.get("column")
        if column and outcome.type != "expect_column_values_to_not_be_null" and column != "occurrence":
            # show the text that arrived, not the parsed number
            shown = f"{column}__raw" if f"{column}__raw" in frame.columns else column
            values = frame.loc[idx, shown].astype(str)
            pieces.append(text + " (got " + values.map(repr) + ")")
        elif outcome.type == "expect_column_pair_values_to_be_equal":
            # (pandas 3 keeps missing values missing through astype(str): name them)
            dates = frame.loc[idx, "flight_date"].map(lambda v: v if isinstance(v, str) else "no valid date")
            pieces.append(text + " (got " + dates + ")")
        else:
            pieces.append(pd.Series(text, index=idx))
    if not pieces:
        return pd.Series([], dtype=object)
    return pd.concat(pieces).groupby(level=0).agg(list)


def split_rows(
    raw: pd.DataFrame, frame: pd.DataFrame, reasons: pd.Series, contract: DatasetContract
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(valid rows, typed) and (quarantined rows with original text and reasons)."""
    bad = frame.index.isin(reasons.index)
    valid = frame.loc[~bad, ["partition_date", "source_file", "row_number", *contract.column_names]].copy()
    for column, kind in contract.columns.items():
        if kind == "int":
            valid[column] = valid[column].astype("Int64")
    original_cols = [*contract.column_names, "extra_columns"]
    raw = raw.reset_index(drop=True)
    bad_raw = raw.loc[bad]
    originals = bad_raw[original_cols].astype(object).where(bad_raw[original_cols].notna(), None)
    quarantined = bad_raw[["partition_date", "source_file", "row_number"]].copy()
    quarantined["reasons"] = [json.dumps(r) for r in reasons.reindex(bad_raw.index)]
    quarantined["original_row"] = [json.dumps(r) for r in originals.to_dict("records")]
    return valid, quarantined


def day_summary(
    partitions: list[str], raw: pd.DataFrame, reasons: pd.Series, frame: pd.DataFrame
) -> pd.DataFrame:
    rows_in = raw.groupby("partition_date").size()
    bad_by_day = frame.loc[reasons.index, "partition_date"].value_counts() if len(reasons) else pd.Series(dtype=int)
    source = raw.groupby("partition_date")["source_file"].first()
    out = pd.DataFrame({"partition_date": partitions})
    out["rows_in"] = out["partition_date"].map(rows_in).fillna(0).astype(int)
    out["rows_quarantined"] = out["partition_date"].map(bad_by_day).fillna(0).astype(int)
    out["rows_valid"] = out["rows_in"] - out["rows_quarantined"]
    out["quarantine_share"] = (out["rows_quarantined"] / out["rows_in"].where(out["rows_in"] > 0)).fillna(0.0)
    out["source_file"] = out["partition_date"].map(source)
    return out


def reason_counts(reasons: pd.Series, frame: pd.DataFrame) -> dict[str, Counter]:
    """partition -> Counter of reasons without the offending value (so they group)."""
    out: dict[str, Counter] = {}
    if not len(reasons):
        return out
    days = frame.loc[reasons.index, "partition_date"]
    for day, rs in zip(days, reasons):
        c = out.setdefault(day, Counter())
        c.update(r.split(" (got ")[0] for r in rs)
    return out


def build_validated_asset(contract: DatasetContract):
    name = f"validated_{contract.name}"
    raw_name = f"raw_{contract.name}"

    @asset(
        retry_policy=STORE_RETRY_POLICY,
        name=name,
        deps=[raw_name],
        partitions_def=daily_partitions,
        backfill_policy=single_run_backfill,
        group_name="validation",
        kinds={"pandas", "sql"},
        owners=["team:ml-platform"],
        tags={"stage": "validation"},
        check_specs=[
            AssetCheckSpec(
                SHARE_CHECK,
                asset=name,
                blocking=True,
                description="Great Expectations: the share of quarantined rows of each day is at most "
                "`max_quarantine_share`; otherwise nothing is written and downstream is blocked.",
            ),
            AssetCheckSpec(
                ACCOUNTED_CHECK,
                asset=name,
                blocking=True,
                description="For every day, rows in (raw) = rows valid + rows quarantined, counted "
                "in the warehouse inside the writing transaction.",
            ),
        ]
        + (
            [
                AssetCheckSpec(
                    NULLS_CHECK,
                    asset=name,
                    description="Null limits of columns that may be missing on single rows "
                    "(WARN; the suite's `mostly` expectations over the run's days).",
                )
            ]
            if contract.name == "flights"
            else []
        ),
        description=(
            f"{contract.name.capitalize()} that passed the row-level Great Expectations suite "
            f"`{contract.name}_rows`, typed, in `{name}`; failing rows are in `quarantine` "
            "(dataset, partition, source file, row number, original values and every reason)."
        ),
    )
    def _validated(
        context: AssetExecutionContext,
        config: ValidationConfig,
        warehouse: Warehouse,
        great_expectations: GreatExpectations,
    ):
        partitions = context.partition_keys
        raw = warehouse.read(raw_tables[contract.name], partitions)
        frame = prepare_for_validation(raw, contract)
        if len(frame):
            run = great_expectations.validate(frame, f"{name}_rows", ROW_SUITES[contract.name])
            reasons = row_reasons(run, frame)
            docs = run.docs_path
        else:
            run, reasons, docs = None, pd.Series([], dtype=object), None
        valid, quarantined = split_rows(raw, frame, reasons, contract)
        summary = day_summary(partitions, raw, reasons, frame)
        counts = reason_counts(reasons, frame)

        share_run = great_expectations.validate(
            summary, f"{name}_day_summary",
            quarantine_share_suite, contract.name, config.max_quarantine_share, docs=False,
        )
        share_table = MetadataValue.md(
            markdown_table(
                summary.to_dict("records"),
                ["partition_date", "rows_in", "rows_valid", "rows_quarantined", "quarantine_share"],
            )
        )
        share_results = {
            r.partition_date: (
                r.quarantine_share <= config.max_quarantine_share,
                {
                    "rows_in": int(r.rows_in),
                    "rows_quarantined": int(r.rows_quarantined),
                    "quarantine_share": float(r.quarantine_share),
                    "limit": float(config.max_quarantine_share),
                },
            )
            for r in summary.itertuples()
        }
        if not share_run.success:
            failing = summary.loc[summary["quarantine_share"] > config.max_quarantine_share]
            messages = []
            for r in failing.itertuples():
                top = ", ".join(f"{k} ×{n}" for k, n in counts.get(r.partition_date, Counter()).most_common(3))
                messages.append(
                    f"partition {r.partition_date}, file {r.source_file}: {r.rows_quarantined} of "
                    f"{r.rows_in} rows ({r.quarantine_share:.0%}) failed row checks, above the limit "
                    f"{config.max_quarantine_share:.0%}; most common: {top}"
                )
            yield from partition_check_results(context, SHARE_CHECK, share_results)
            raise DataFailure(
                description=f"{name}: too many bad rows; nothing was written:\n" + "\n".join(messages),
            )

        with warehouse.replace_partitions() as tx:
            tx.replace(validated_tables[contract.name], partitions, valid)
            tx.replace(quarantine, partitions, quarantined, dataset=contract.name)
            n_raw = tx.count_by_partition(raw_tables[contract.name], partitions)
            n_valid = tx.count_by_partition(validated_tables[contract.name], partitions)
            n_bad = tx.count_by_partition(quarantine, partitions, dataset=contract.name)
            unbalanced = [p for p in partitions if n_raw[p] != n_valid[p] + n_bad[p]]
            if unbalanced:
                # raising inside the transaction rolls every write of this run back
                raise DataFailure(
                    description=f"{name}: rows in != valid + quarantined for {unbalanced[:10]}; "
                    "nothing was written",
                )

        versions = data_versions_by_partition(valid, exclude=("source_file",))
        add_partition_metadata(
            context,
            {
                r.partition_date: {
                    "rows_in": int(r.rows_in),
                    "rows_valid": int(r.rows_valid),
                    "rows_quarantined": int(r.rows_quarantined),
                    "quarantine_reasons": MetadataValue.json(dict(counts.get(r.partition_date, {}))),
                    "data_version": versions.get(r.partition_date, data_version(valid.iloc[0:0])),
                    "source_file": str(r.source_file),
                }
                for r in summary.itertuples()
            },
        )
        total = Counter()
        for c in counts.values():
            total.update(c)
        yield MaterializeResult(
            metadata={
                "rows_in": MetadataValue.int(int(summary["rows_in"].sum())),
                "rows_valid": MetadataValue.int(int(summary["rows_valid"].sum())),
                "rows_quarantined": MetadataValue.int(int(summary["rows_quarantined"].sum())),
                "quarantine_reasons": MetadataValue.md(
                    markdown_table([{"reason": k, "rows": n} for k, n in total.most_common()], ["reason", "rows"])
                ),
                "data_docs": MetadataValue.path(docs or great_expectations.docs_index()),
                "gx_suite": MetadataValue.text(f"{contract.name}_rows (assets/expectations.py)"),
                "days": share_table,
            }
        )
        yield from partition_check_results(context, SHARE_CHECK, share_results)
        yield from partition_check_results(
            context,
            ACCOUNTED_CHECK,
            {
                p: (n_raw[p] == n_valid[p] + n_bad[p],
                    {"rows_in": n_raw[p], "rows_valid": n_valid[p], "rows_quarantined": n_bad[p]})
                for p in partitions
            },
        )
        if contract.name == "flights":  # the weather suite has no null limits
            warn = [
                f"{o.meta['column']}: {o.meta['reason']} (observed {o.observed})"
                for o in (run.outcomes if run else [])
                if o.meta.get("level") == "warn" and not o.success
            ]
            violations = MetadataValue.md("\n".join(f"- {w}" for w in warn) or "none")
            scope = f"over the run's {len(partitions)} day(s)"
            yield from partition_check_results(
                context,
                NULLS_CHECK,
                {p: (not warn, {"violations": violations, "scope": scope}) for p in partitions},
                severity=AssetCheckSeverity.WARN,
            )

    return _validated


validated_flights = build_validated_asset(FLIGHTS)
validated_weather = build_validated_asset(WEATHER)
