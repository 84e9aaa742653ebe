"""Great Expectations 1.x, run directly (not through dagster-ge, which needs GX < 1.0).

A file data context under data/gx keeps validation results and builds the Data Docs site;
suites come from assets/expectations.py. GX is imported only when a validation runs.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from dagster import ConfigurableResource
from pydantic import Field

from resources.settings import settings


@dataclass
class ExpectationOutcome:
    """What one expectation found: its meta (level, column, reason) and the failing rows."""

    type: str
    kwargs: dict
    meta: dict
    success: bool
    unexpected_index: list  # frame index labels of failing rows (column-map expectations)
    observed: object = None


@dataclass
class SuiteRun:
    suite_name: str
    success: bool
    outcomes: list[ExpectationOutcome]
    docs_path: str | None  # local Data Docs page of this validation result


@contextlib.contextmanager
def _project_lock(project_dir: str):
    """One process at a time writes the GX project (its config, results, the Data Docs index):
    runs launched side by side from the UI share it."""
    import fcntl

    Path(project_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(project_dir) / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@functools.lru_cache(maxsize=4)
def _context(project_dir: str):
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    Path(project_dir).mkdir(parents=True, exist_ok=True)
    ctx = gx.get_context(mode="file", project_root_dir=project_dir)
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    ctx.variables.save()
    return ctx


@functools.lru_cache(maxsize=64)
def _checkpoint(project_dir: str, asset_name: str, make_suite, suite_args: tuple, docs: bool):
    """Register datasource asset, suite, validation definition and checkpoint once per process.

    Registering costs more than validating a day (GX serializes and compares whole suites), so
    each combination is set up on first use and reused by later validations in the process.
    """
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    ctx = _context(project_dir)
    try:
        source = ctx.data_sources.get("pipeline_frames")
    except KeyError:
        source = ctx.data_sources.add_pandas("pipeline_frames")
    try:
        asset = source.get_asset(asset_name)
    except LookupError:
        asset = source.add_dataframe_asset(asset_name)
    try:
        batch_def = asset.get_batch_definition("whole_frame")
    except (KeyError, LookupError):
        batch_def = asset.add_batch_definition_whole_dataframe("whole_frame")
    suite = _stored_suite(ctx, make_suite(*suite_args))
    name = f"{asset_name}__{suite.name}"
    definition = ctx.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=name, data=batch_def, suite=suite)
    )
    return ctx, ctx.checkpoints.add_or_update(
        gx.Checkpoint(
            name=name,
            validation_definitions=[definition],
            actions=[UpdateDataDocsAction(name="update_data_docs")] if docs else [],
            result_format={"result_format": "COMPLETE"},
        )
    )


def _stored_suite(ctx, suite):
    """The suite as stored in the project: reused when another process stored the same
    expectations (re-storing it would make that process's checkpoint stale), replaced otherwise."""
    import hashlib
    import json

    body = json.dumps([e.configuration.to_json_dict() for e in suite.expectations], sort_keys=True, default=str)
    fingerprint = hashlib.sha256(body.encode()).hexdigest()
    suite.meta = {**(suite.meta or {}), "fingerprint": fingerprint}
    try:
        stored = ctx.suites.get(suite.name)
    except Exception:  # not stored yet
        return ctx.suites.add(suite)
    if (stored.meta or {}).get("fingerprint") == fingerprint:
        return stored
    ctx.suites.delete(suite.name)
    return ctx.suites.add(suite)


class GreatExpectations(ConfigurableResource):
    """Runs an expectation suite on a pandas frame and updates the Data Docs site."""

    project_dir: str | None = Field(
        default=None,
        description="Folder of the GX file context (validation results, Data Docs); unset: data/gx under "
        "FLIGHTS_DATA_DIR.",
    )

    @property
    def resolved_project_dir(self) -> str:
        return self.project_dir or str(settings().gx_project_dir)

    def validate(
        self, frame: pd.DataFrame, asset_name: str, make_suite, *suite_args, docs: bool = True
    ) -> SuiteRun:
        """Validate `frame` with the suite `make_suite(*suite_args)` (hashable arguments).

        Results are stored in the GX project; with `docs` the Data Docs site is rebuilt (about
        half a second), which the small day-level suites skip.
        """
        from great_expectations.exceptions.resource_freshness import ResourceFreshnessAggregateError

        key = (self.resolved_project_dir, asset_name, make_suite, tuple(suite_args), docs)
        with _project_lock(self.resolved_project_dir):
            ctx, checkpoint = _checkpoint(*key)
            try:
                result = checkpoint.run(batch_parameters={"dataframe": frame})
            except ResourceFreshnessAggregateError:
                # another process re-registered a suite or definition since this one cached it
                _checkpoint.cache_clear()
                ctx, checkpoint = _checkpoint(*key)
                result = checkpoint.run(batch_parameters={"dataframe": frame})
        (identifier, validation), = result.run_results.items()
        outcomes = []
        for r in validation.results:
            cfg = r.expectation_config
            res = r.result or {}
            outcomes.append(
                ExpectationOutcome(
                    type=cfg.type,
                    kwargs=dict(cfg.kwargs),
                    meta=dict(cfg.meta or {}),
                    success=bool(r.success),
                    unexpected_index=list(res.get("unexpected_index_list") or []),
                    observed=res.get("observed_value"),
                )
            )
        page = None
        if docs:
            for site in ctx.get_docs_sites_urls(resource_identifier=identifier):
                if site.get("site_url"):
                    page = site["site_url"].removeprefix("file://")
        return SuiteRun(validation.suite_name, bool(validation.success), outcomes, page)

    def docs_index(self) -> str:
        return str(Path(self.resolved_project_dir) / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html")
