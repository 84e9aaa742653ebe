"""The versions of a day: every ingestion, validation and feature build of it, and which
registered model versions use each.

    flights-history DAY|VERSION_ID [...] [--asset ASSET] [--json]

Per version: when it was written, whether it is current, superseded or deleted by the retention
job, its source file, rows in / valid / quarantined, its content hash, the versions it was built
from and the model versions that use it (directly, or through what was built from it). A
version id (e.g. an ingestion id from the asset's metadata) lists the history of its day. Exit
status 2, naming them, for days that are not days of the partitions or were never ingested, and
for version ids the warehouse does not know.
"""

from __future__ import annotations

import argparse
import json
import sys

from assets.common import partition_days
from assets.day_history import ASSET_ORDER, history_rows, model_usage
from pipelines.commands.convention import cannot_carry_out, refused
from resources.registry import ModelRegistry
from resources.settings import configure_process
from resources.warehouse import Warehouse

COLUMNS = [("asset", 17), ("version", 12), ("created", 23), ("status", 33), ("rows_in", 7), ("rows_valid", 10),
           ("rows_quarantined", 16), ("content_hash", 16), ("built_from", 26), ("used_by", 28), ("source_file", 0)]


class UnknownDays(LookupError):
    pass


def history(days: list[str], asset: str | None = None, registry: ModelRegistry | None = None,
            warehouse: Warehouse | None = None) -> dict[str, list[dict]]:
    """day -> its versions (upstream assets first, oldest first). A version id stands for its day."""
    if asset is not None and asset not in ASSET_ORDER:
        raise UnknownDays(f"{asset!r} keeps no versions; one of: {', '.join(ASSET_ORDER)}")
    warehouse = warehouse or Warehouse()
    calendar = set(partition_days())
    ids = [d for d in days if d not in calendar]
    if ids:
        found = warehouse.versions(version_ids=ids)
        day_of = dict(zip(found["version_id"], found["partition_date"], strict=True))
        unknown = [d for d in ids if d not in day_of]
        if unknown:
            raise UnknownDays(f"neither a day of the partitions ({min(calendar)} … {max(calendar)}) nor a version id in "
                              f"the warehouse {warehouse.display_url}: {', '.join(unknown)}")
        days = list(dict.fromkeys(day_of.get(d, d) for d in days))
    catalog = warehouse.versions(days=days)
    never = [d for d in days if d not in set(catalog["partition_date"])]
    if never:
        raise UnknownDays(f"no version of {', '.join(never)} in the warehouse {warehouse.display_url}: "
                          "the day was never ingested there (run ingest_job for it)")
    usage = model_usage((registry or ModelRegistry()).versions(), catalog)
    return {d: history_rows(catalog[catalog["partition_date"] == d], usage, asset) for d in days}


def render(day: str, rows: list[dict]) -> str:
    head = "  ".join(f"{name:{width}s}" if width else name for name, width in COLUMNS)
    lines = [f"{day}: {len(rows)} version(s)", "  " + head]
    for r in rows:
        lines.append("  " + "  ".join(f"{str(r[name]):{width}s}" if width else str(r[name]) for name, width in COLUMNS))
    return "\n".join(lines)


def main(argv=None) -> int:
    configure_process()
    parser = argparse.ArgumentParser(description="List the versions of days: when, source, rows, hash, used by.")
    parser.add_argument("days", nargs="+", metavar="DAY", help="a day of the partitions, e.g. 2013-03-04, or a version id")
    parser.add_argument("--asset", help=f"only this asset's versions ({', '.join(ASSET_ORDER)})")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        found = history(args.days, args.asset)
    except cannot_carry_out() as exc:  # unknown days, an older warehouse, one unreachable
        return refused("history", exc)
    if args.json:
        print(json.dumps(found, indent=1))
    else:
        print("\n\n".join(render(d, rows) for d, rows in found.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
