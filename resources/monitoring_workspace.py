"""The Evidently workspace the daily reports go to: an `evidently ui` service in the team profile
(`RemoteWorkspace`, FLIGHTS_EVIDENTLY_URL), a local workspace folder by default (data/evidently,
shown by `make evidently-ui`). One project for the model; each day's drift and performance
snapshots, timestamped with the replayed day; a dashboard of the daily figures over days.

An upload that fails after its retries raises `MonitoringUnavailable`: the monitoring assets
record the day's verdicts anyway and report the failed upload as a WARN check. Every request to
the service waits at most FLIGHTS_SERVICE_TIMEOUT for an answer (Evidently's own client sends
without a timeout): a service that accepts and hangs fails the upload, it does not block the step.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from dagster import ConfigurableResource
from pydantic import Field

from resources.settings import settings

PROJECT_NAME = "NYC flights: late arrival"
PROJECT_DESCRIPTION = ("Daily monitoring of flight_delay_classifier (MLflow registry): data drift of each scored day "
                       "against the model's training window, and live classification quality once arrivals are known.")
DRIFT_TAG, PERFORMANCE_TAG = "drift", "performance"
SERVED_DRIFT_TAG = "served_drift"  # the drift of what the scoring server served for the day
# columns of a performance snapshot whose MeanValue the dashboard plots: the two ROC AUC figures are
# constant columns the monitoring asset adds, `late` and the probability come from
# assets/monitoring/reports.py (classification_report)
TRAILING_ROC_AUC, EVALUATION_ROC_AUC, LATE, PROBABILITY = "trailing_roc_auc", "evaluation_roc_auc", "late", "probability_late"
SERVED_ROC_AUC = "served_roc_auc"  # what the scoring server answered by flight, against the arrivals (assets/monitoring/served.py)
# columns of a drift snapshot whose MeanValue the dashboard plots (reports.py, drift_report_for_day):
# the drifted share and count of `DriftedColumnsCount` as constant columns. The service keys a
# series by every parameter of its metric, and DriftedColumnsCount's (the judged columns, the
# per-column thresholds of the model) change when a column has no value on a day (2013-03-10) and
# at every retrain, which split the measure into several lines of the same name.
DRIFT_SHARE, DRIFTED_COUNT = "share_of_drifted_columns", "number_of_drifted_columns"
TAB = "Daily monitoring"
SERVED_EMPTY = ("Empty when no served traffic was recorded for these days, or too few served flights to judge: "
                "start the scoring server with `make serve`, it records the flights it answers")


_PROJECTS: dict[tuple, object] = {}  # the project id per workspace, once its dashboard is in place
_LOCAL_WORKSPACES: dict[str, object] = {}  # the local workspace per folder, opened once per process


def _timed_out(exc: BaseException) -> bool:
    import requests

    return isinstance(exc, (requests.exceptions.Timeout, TimeoutError)) or "timed out" in str(exc).lower()


class MonitoringUnavailable(RuntimeError):
    """The Evidently workspace could not take a snapshot (service down, refused secret)."""


@dataclass(frozen=True)
class SnapshotLink:
    snapshot_id: str
    url: str  # the snapshot's page in the Evidently UI


def dashboard_panels() -> list:
    """The panels of the project's dashboard, each over days: what a person watching the model
    looks at first."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import bar_plot_panel, line_plot_panel

    def metric(name: str, legend: str, tag: str, **labels: str) -> PanelMetric:
        return PanelMetric(legend=legend, metric=name, metric_labels=labels, tags=[tag])

    return [
        line_plot_panel("Dataset drift share", [metric("MeanValue", "share of drifted columns", DRIFT_TAG, column=DRIFT_SHARE)],
                        size="half", description="Share of the monitored columns that drifted from the model's training window"),
        # its own panel: the service merges two lines of one metric with the same parameters
        line_plot_panel("Served traffic drift share", [metric("MeanValue", "served flights", SERVED_DRIFT_TAG, column=DRIFT_SHARE)],
                        size="half", description=f"The same, for the flights the scoring server served for the day. {SERVED_EMPTY}."),
        bar_plot_panel("Drifted columns", [metric("MeanValue", "drifted columns", DRIFT_TAG, column=DRIFTED_COUNT)],
                       size="half", description="Number of monitored columns that drifted"),
        line_plot_panel("Daily ROC AUC", [metric("RocAuc", "ROC AUC of the day", PERFORMANCE_TAG)], size="half",
                        description="The deployed model on the day's flights, once arrivals are known"),
        line_plot_panel("Trailing ROC AUC against the evaluation ROC AUC", [
            metric("MeanValue", "trailing ROC AUC", PERFORMANCE_TAG, column=TRAILING_ROC_AUC),
            metric("MeanValue", "evaluation ROC AUC", PERFORMANCE_TAG, column=EVALUATION_ROC_AUC),
        ], size="half", description="Performance is degraded when the trailing figure falls FLIGHTS_ROC_AUC_DROP below "
                                    "the evaluation figure"),
        line_plot_panel("Served ROC AUC (asked by flight) against the trailing ROC AUC", [
            metric("MeanValue", "served by flight", PERFORMANCE_TAG, column=SERVED_ROC_AUC),
            metric("MeanValue", "batch-scored", PERFORMANCE_TAG, column=TRAILING_ROC_AUC),
        ], size="half", description="What the scoring server answered by flight (/predict) for the trailing days' "
                                    "flights, matched to their arrivals; empty on days with fewer than 50 such flights"),
        line_plot_panel("Late share", [metric("MeanValue", "share of flights 15+ min late", PERFORMANCE_TAG, column=LATE)],
                        size="half"),
        line_plot_panel("Mean predicted probability", [
            metric("MeanValue", "mean predicted probability of a late arrival", PERFORMANCE_TAG, column=PROBABILITY)],
            size="half"),
    ]


@functools.cache
def _remote_workspace_class():
    """`RemoteWorkspace` whose every request has a deadline. Evidently 0.7.23 sends each request
    through a new `requests.Session` with no timeout (`RemoteBase._request`); this is that method
    with the timeout given to `send` (and the session closed), the same errors raised."""
    import requests
    from evidently._pydantic_compat import parse_obj_as
    from evidently.errors import EvidentlyError
    from evidently.ui.workspace import RemoteWorkspace

    class TimedRemoteWorkspace(RemoteWorkspace):
        def __init__(self, base_url: str, secret: str | None, timeout: float):
            self.timeout = timeout  # before the base class's first request (its `verify`)
            super().__init__(base_url, secret=secret)

        def _request(self, path, method, query_params=None, body=None, response_model=None, cookies=None, headers=None,
                     form_data=False):
            request = self._prepare_request(path, method, query_params, body, cookies, headers, form_data=form_data)
            with requests.Session() as session:
                response = session.send(request.prepare(), timeout=self.timeout)
            if response.status_code >= 400:
                try:
                    details = response.json()["detail"]
                except (ValueError, KeyError, TypeError):
                    pass
                else:
                    raise EvidentlyError(details)
            response.raise_for_status()
            return parse_obj_as(response_model, response.json()) if response_model is not None else response

    return TimedRemoteWorkspace


def _shown(panel) -> dict:
    """What a panel shows: all but its id and its title (by which the code's panels are found)."""
    return panel.dict(exclude={"id", "title"})


class MonitoringWorkspace(ConfigurableResource):
    """Evidently workspace: a service (FLIGHTS_EVIDENTLY_URL) or a local folder under FLIGHTS_DATA_DIR."""

    url: str | None = Field(default=None, description="URL of an `evidently ui` service; unset: the setting "
                            "FLIGHTS_EVIDENTLY_URL, or a local workspace folder (data/evidently).")
    project_name: str = PROJECT_NAME

    @property
    def resolved_url(self) -> str | None:
        return self.url or settings().evidently_url

    @property
    def location(self) -> str:
        """Where snapshots go, for messages (never a secret)."""
        return f"Evidently UI service {self.resolved_url}" if self.resolved_url else \
            f"local Evidently workspace {settings().evidently_workspace_dir}"

    def _workspace(self):
        """The service's client, or the local workspace: opened once per process, as opening one
        reads every snapshot it holds (about 1 s for two months of days, more each day)."""
        from evidently.ui.workspace import Workspace

        if self.resolved_url:
            s = settings()
            return _remote_workspace_class()(self.resolved_url, s.evidently_secret, s.service_timeout)
        folder = str(settings().evidently_workspace_dir)
        if folder not in _LOCAL_WORKSPACES or (folder, self.project_name) not in _PROJECTS:
            # the project not found yet in this process: read the folder as it is now (another process may have made it)
            _LOCAL_WORKSPACES[folder] = Workspace(folder)
        return _LOCAL_WORKSPACES[folder]

    def _link(self, project_id, snapshot_id) -> SnapshotLink:
        return SnapshotLink(str(snapshot_id), f"{settings().evidently_ui_url}/projects/{project_id}/reports/{snapshot_id}")

    def _project_id(self, workspace):
        key = (self.resolved_url or str(settings().evidently_workspace_dir), self.project_name)
        if key not in _PROJECTS:
            _PROJECTS[key] = self._project(workspace).id
        return _PROJECTS[key]

    def _project(self, workspace):
        """The model's project, created with its dashboard on first use. On an existing project, a
        panel of the code that changed since (same title) is updated in place, one added to the code
        is added, and the panels a person added in the UI are kept."""
        found = [p for p in workspace.search_project(self.project_name) if p.name == self.project_name]
        project = found[0] if found else workspace.create_project(self.project_name, description=PROJECT_DESCRIPTION)
        dashboard, wanted = project.dashboard.model(), {panel.title: panel for panel in dashboard_panels()}
        outdated = [i for i, p in enumerate(dashboard.panels) if p.title in wanted and _shown(p) != _shown(wanted[p.title])]
        for i in outdated:  # the panel keeps its id, so its place in the tab
            dashboard.panels[i] = wanted[dashboard.panels[i].title].copy(update={"id": dashboard.panels[i].id})
        if outdated:
            workspace.save_dashboard(project.id, dashboard)
        present = {panel.title for panel in dashboard.panels}
        for title, panel in wanted.items():
            if title not in present:
                project.dashboard.add_panel(panel, tab=TAB)
        return project

    def project_url(self) -> str:
        return f"{settings().evidently_ui_url}/projects/{self._call(self._project_id)}"

    def _call(self, action):
        """`action(workspace)` with FLIGHTS_STORE_RETRIES retries and exponential backoff."""
        s = settings()
        delay, attempts = s.store_retry_delay, s.store_retries + 1
        for attempt in range(attempts):
            try:
                return action(self._workspace())
            except Exception as exc:  # connection refused, 5xx, refused secret, a project deleted meanwhile ...
                _PROJECTS.clear()
                _LOCAL_WORKSPACES.clear()
                if "permission" in str(exc).lower():
                    raise MonitoringUnavailable(f"{self.location} refused the write: FLIGHTS_EVIDENTLY_SECRET is not "
                                                "the service's secret") from exc
                if attempt == attempts - 1:
                    if _timed_out(exc):
                        raise MonitoringUnavailable(f"{self.location} did not answer within {s.service_timeout:g} s "
                                                    f"(FLIGHTS_SERVICE_TIMEOUT), {attempts} attempts") from exc
                    raise MonitoringUnavailable(f"{self.location} unreachable after {attempts} attempts: "
                                                f"{type(exc).__name__}: {str(exc)[:200]}") from exc
                time.sleep(delay * 2**attempt)

    def _delete(self, workspace, project_id, snapshot_id: str) -> None:
        """Remove a snapshot; one already gone is not an error. `RemoteWorkspace.delete_run` is not
        implemented in Evidently 0.7.23 while the service has the endpoint: call it with the
        workspace's own authenticated request."""
        from evidently.ui.workspace import RemoteWorkspace

        try:
            if isinstance(workspace, RemoteWorkspace):
                workspace._request(f"/api/projects/{project_id}/{snapshot_id}", "DELETE")
            else:
                workspace.delete_run(project_id, snapshot_id)
        except Exception as exc:
            if "404" not in str(exc) and "not found" not in str(exc).lower() and not isinstance(exc, FileNotFoundError):
                raise

    def upload(self, snapshot, name: str, replaces: str | None = None) -> SnapshotLink:
        """Store `snapshot` in the model's project; `replaces`: the snapshot id an earlier
        materialization of the same day uploaded, removed once the new one is stored (the
        dashboard keeps one point per day and report)."""

        def add(workspace):
            project_id = self._project_id(workspace)
            ref = workspace.add_run(project_id, snapshot, name=name)
            if replaces and replaces != str(ref.id):
                self._delete(workspace, project_id, replaces)
            return self._link(project_id, ref.id)

        return self._call(add)
