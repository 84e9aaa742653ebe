"""The release of a day flagged as a broken feed, by a person after review (`release_day_job`).

A feed check that fails on a day it writes (`weather_coverage`, `arrivals_reported` on
`flight_features`) flags the day (resources/day_flags.py): no training window takes it and the
retrain sensors start nothing for it. When a person has looked and finds the day usable (the
weather source was really down at that airport that day; the arrivals came in and the day was
rebuilt, or the shortfall is real), this job releases it: who, why and when are recorded on the
flag and as an observation of the flagged asset's partition (the UI's event history of the day).
A day blocked by a validation check was not written: there is nothing to release, its feed must
be delivered again (a new version that passes clears the flag by itself).
"""

from dagster import (
    AssetKey,
    AssetObservation,
    Config,
    Definitions,
    MetadataValue,
    OpExecutionContext,
    ResourceParam,
    job,
    op,
)
from pydantic import Field

from assets.asset_factory import DataFailure
from pipelines.orchestration.jobs import runtime_limit
from resources.warehouse import Warehouse


class DayRelease(Config):
    day: str = Field(description="The flagged day (YYYY-MM-DD).")
    reason: str = Field(description="Why the day may be trained on (recorded).")
    released_by: str = Field(description="Who reviewed it (recorded).")
    check: str | None = Field(default=None, description="Only this check's flag; unset: every open flag of the day.")


@op(out={}, description="Release the open broken-feed flags of a day (config: day, reason, released_by, optional check).")
def release_day(context: OpExecutionContext, config: DayRelease, warehouse: ResourceParam[Warehouse]):
    if not config.reason.strip() or not config.released_by.strip():
        raise DataFailure("a release needs a reason and who reviewed it: nothing was released")
    standing = [f for f in warehouse.open_flags([config.day]) if config.check in (None, f.check)]
    blocked = [f for f in standing if f.severity == "ERROR"]
    if blocked:
        raise DataFailure(f"{config.day}: {blocked[0].said}. A blocked day was not written: deliver it again (a version "
                          "that passes clears the flag); nothing was released")
    if not standing:
        raise DataFailure(f"{config.day}: no open broken-feed flag" + (f" of check {config.check}" if config.check else "")
                          + ": nothing was released")
    released = warehouse.release_flags(config.day, config.check, config.released_by, config.reason)
    for f in released:
        context.log_event(AssetObservation(asset_key=AssetKey(f.asset), partition=config.day, metadata={
            "released_check": MetadataValue.text(f.check), "released_by": MetadataValue.text(config.released_by),
            "release_reason": MetadataValue.text(config.reason), "flag": MetadataValue.text(f.detail)}))
        context.log.info(f"released {f.said}, by {config.released_by}: {config.reason}")


@job(description="Release a day flagged as a broken feed after review (config: day, reason, released_by): it is trained "
     "on again and the retrain sensors act on its reports.", tags={"stage": "data", **runtime_limit("deployment")})
def release_day_job():
    release_day()


defs = Definitions(jobs=[release_day_job])
