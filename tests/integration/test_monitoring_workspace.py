"""The monitoring workspace on a real `evidently ui` service (the team profile) and on a local
folder (the default): snapshots of real days filed under their replayed day, one project with the
dashboard's panels, every panel fed by the snapshots with one line per measure (also across a day
with a column not judged and a new model's thresholds), a re-uploaded day replaced, an existing
dashboard brought up to date, an empty served-traffic panel that says why, and a service that is
down or refuses the secret answered with a message that names it and never the secret."""

import json
import os
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from assets.monitoring.reports import SnapshotLabels, classification_report, drift_report_for_day
from resources.monitoring_workspace import (
    DRIFT_TAG,
    EVALUATION_ROC_AUC,
    PERFORMANCE_TAG,
    PROJECT_NAME,
    SERVED_DRIFT_TAG,
    SERVED_ROC_AUC,
    TRAILING_ROC_AUC,
    MonitoringUnavailable,
    MonitoringWorkspace,
    dashboard_panels,
)
from tests.support import feature_days, free_port, start_server, stop_server

DAYS = ["2013-05-06", "2013-05-07", "2013-05-08"]
SECRET = "evidently-test-secret-4f1c"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def days():
    frame = feature_days(DAYS)
    rng = np.random.default_rng(0)
    frame = frame.dropna(subset=["is_late"]).copy()
    frame["probability_late"] = np.clip(frame["is_late"] * 0.3 + rng.uniform(0, 0.7, len(frame)), 0, 1)
    frame["threshold"] = 0.45
    frame["predicted_late"] = (frame["probability_late"] >= 0.45).astype(int)
    return {d: part.reset_index(drop=True) for d, part in frame.groupby("partition_date")}


def serve(workspace: Path, tmp_path: Path):
    url = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "DO_NOT_TRACK": "1"}
    return url, start_server([str(BIN / "evidently"), "ui", "--workspace", str(workspace), "--host", "127.0.0.1",
                              "--port", url.rsplit(":", 1)[1], "--secret", SECRET], env, tmp_path / "evidently.log",
                             url + "/api/version")


def performance_snapshot(rows, day):
    return classification_report(rows, "is_late", labels=SnapshotLabels(day, (PERFORMANCE_TAG,), {"model_version": "1"}),
                                 figures={TRAILING_ROC_AUC: 0.7, EVALUATION_ROC_AUC: 0.74, SERVED_ROC_AUC: 0.69}).snapshot


def drift_snapshot(days, day, tag=DRIFT_TAG):
    """The middle day has no scheduled hour at all (a column not judged, as wind_gust on 2013-03-10);
    the last day is judged by another model, with its own per-column thresholds, and drifts on two
    of its three columns (routes three times as long, a new carrier)."""
    current, thresholds, version = days[day], None, "1"
    if day == DAYS[1]:
        current = current.assign(sched_hour=np.nan)
    if day == DAYS[-1]:
        current = current.assign(distance=current["distance"] * 3, carrier="ZZ")
        thresholds, version = {"distance": 0.01, "sched_hour": 0.01, "carrier": 0.01}, "2"  # p-values: reference of 900 rows
    return drift_report_for_day(days[DAYS[0]], current, ["distance", "sched_hour"], ["carrier"], drift_share=0.5,
                                column_threshold=thresholds, labels=SnapshotLabels(day, (tag,), {"model_version": version})).snapshot


def series(url: str, project_id: str, panel) -> dict[str, list]:
    """What the service plots for a panel: per legend, the days that have a point."""
    body = {"series_filter": [{"tags": v.tags, "metadata": v.metadata, "metric": v.metric, "metric_labels": v.metric_labels}
                              for v in panel.values]}
    request = urllib.request.Request(f"{url}/api/v2/snapshots/{project_id}/data_series_batch", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    answer = json.load(urllib.request.urlopen(request, timeout=10))
    days = [source["timestamp"][:10] for source in answer["sources"]]
    out: dict[str, dict] = {}
    for line in answer["series"]:  # a measure split into several series shows as several entries
        key = line["params"].get("column") or line["metric_type"]
        out[key if key not in out else f"{key} ({len(out) + 1})"] = {d: v for d, v in zip(days, line["values"]) if v is not None}
    return out


def test_daily_snapshots_feed_every_panel_of_the_dashboard_on_the_service(days, tmp_path, monkeypatch):
    url, (proc, log) = serve(tmp_path / "service", tmp_path)
    monkeypatch.setenv("FLIGHTS_EVIDENTLY_URL", url)
    monkeypatch.setenv("FLIGHTS_EVIDENTLY_SECRET", SECRET)
    try:
        workspace = MonitoringWorkspace()
        links = {}
        for day in DAYS:
            links[day] = workspace.upload(performance_snapshot(days[day], day), f"performance {day}")
            workspace.upload(drift_snapshot(days, day), f"drift {day}")
            workspace.upload(drift_snapshot(days, day, SERVED_DRIFT_TAG), f"served drift {day}")
        # a day reported again replaces its earlier snapshot: one point per day and report
        again = workspace.upload(performance_snapshot(days[DAYS[1]], DAYS[1]), f"performance {DAYS[1]}",
                                 replaces=links[DAYS[1]].snapshot_id)
        project_id = again.url.split("/projects/")[1].split("/")[0]
        assert again.url == f"{url}/projects/{project_id}/reports/{again.snapshot_id}"
        assert urllib.request.urlopen(again.url, timeout=10).status == 200  # the UI's page of the snapshot
        reports = json.load(urllib.request.urlopen(f"{url}/api/projects/{project_id}/reports", timeout=10))
        by_kind = {}
        for report in reports:
            by_kind.setdefault(report["tags"][0], []).append(report["timestamp"][:10])
        assert sorted(by_kind[PERFORMANCE_TAG]) == DAYS and sorted(by_kind[DRIFT_TAG]) == DAYS
        assert links[DAYS[1]].snapshot_id not in {r["id"] for r in reports}

        dashboard = json.load(urllib.request.urlopen(f"{url}/api/v2/dashboards/{project_id}", timeout=10))
        titles = {p["title"] for p in dashboard["panels"]}
        assert titles == {p.title for p in dashboard_panels()}
        for panel in dashboard_panels():  # every line of every panel is one series with a point per day
            plotted = series(url, project_id, panel)
            assert len(plotted) == len(panel.values), (panel.title, plotted)
            for points in plotted.values():
                assert sorted(points) == DAYS, (panel.title, plotted)
            if panel.title in ("Dataset drift share", "Served traffic drift share"):
                assert list(plotted.values())[0][DAYS[-1]] == pytest.approx(2 / 3)
            if panel.title == "Drifted columns":
                assert list(plotted.values())[0] == {DAYS[0]: 0, DAYS[1]: 0, DAYS[2]: 2}
            if panel.title.startswith("Trailing"):
                assert plotted[TRAILING_ROC_AUC][DAYS[0]] == pytest.approx(0.7)
                assert plotted[EVALUATION_ROC_AUC][DAYS[0]] == pytest.approx(0.74)
            if panel.title.startswith("Served ROC AUC"):
                assert plotted[SERVED_ROC_AUC][DAYS[0]] == pytest.approx(0.69)
                assert plotted[TRAILING_ROC_AUC][DAYS[0]] == pytest.approx(0.7)
        # a second process finds the same project and does not add its panels twice
        workspace.project_url()
        again = json.load(urllib.request.urlopen(f"{url}/api/v2/dashboards/{project_id}", timeout=10))
        assert len(again["panels"]) == len(dashboard["panels"])

        # a wrong secret: refused, named by its setting, the value of neither secret in the message
        monkeypatch.setenv("FLIGHTS_EVIDENTLY_SECRET", "not-the-secret")
        with pytest.raises(MonitoringUnavailable, match="FLIGHTS_EVIDENTLY_SECRET") as refused:
            MonitoringWorkspace().upload(performance_snapshot(days[DAYS[0]], DAYS[0]), "refused")
        assert SECRET not in str(refused.value) and "not-the-secret" not in str(refused.value)
    finally:
        stop_server(proc, log)
    assert SECRET not in (tmp_path / "evidently.log").read_text(errors="replace")

    # the service is down: the upload is retried, then named
    monkeypatch.setenv("FLIGHTS_EVIDENTLY_SECRET", SECRET)
    monkeypatch.setenv("FLIGHTS_STORE_RETRIES", "1")
    monkeypatch.setenv("FLIGHTS_STORE_RETRY_DELAY", "0.1")
    with pytest.raises(MonitoringUnavailable, match=f"Evidently UI service {url} unreachable after 2 attempts"):
        MonitoringWorkspace().upload(performance_snapshot(days[DAYS[0]], DAYS[0]), "down")


def test_the_local_workspace_is_what_evidently_ui_serves(days, tmp_path, monkeypatch):
    monkeypatch.delenv("FLIGHTS_EVIDENTLY_URL", raising=False)
    monkeypatch.setenv("FLIGHTS_DATA_DIR", str(tmp_path / "data"))
    port = free_port()
    monkeypatch.setenv("FLIGHTS_EVIDENTLY_UI_URL", f"http://127.0.0.1:{port}")
    link = MonitoringWorkspace().upload(performance_snapshot(days[DAYS[0]], DAYS[0]), f"performance {DAYS[0]}")
    assert (tmp_path / "data" / "evidently").is_dir()
    assert link.url.startswith(f"http://127.0.0.1:{port}/projects/")
    # `make evidently-ui` serves that folder: the link opens the snapshot there
    url = f"http://127.0.0.1:{port}"
    proc, log = start_server([str(BIN / "evidently"), "ui", "--workspace", str(tmp_path / "data" / "evidently"),
                              "--host", "127.0.0.1", "--port", str(port)], {**os.environ, "DO_NOT_TRACK": "1"},
                             tmp_path / "local-ui.log", url + "/api/version")
    try:
        project_id = link.url.split("/projects/")[1].split("/")[0]
        reports = json.load(urllib.request.urlopen(f"{url}/api/projects/{project_id}/reports", timeout=10))
        assert [(r["id"], r["timestamp"][:10]) for r in reports] == [(link.snapshot_id, DAYS[0])]
    finally:
        stop_server(proc, log)


def test_an_existing_dashboard_is_brought_up_to_date_and_the_served_panel_says_why_it_is_empty(days, tmp_path, monkeypatch):
    """A project made before the dashboard changed: the code's panels that changed are updated in
    place (same id, same place), a person's own panel is kept; with no served traffic recorded the
    served-traffic panel has no line, and its description says why and what to start."""
    from evidently.sdk.models import DashboardPanelPlot, PanelMetric
    from evidently.sdk.panels import line_plot_panel, text_panel
    from evidently.ui.workspace import RemoteWorkspace

    from resources.monitoring_workspace import _shown

    url, (proc, log) = serve(tmp_path / "service", tmp_path)
    monkeypatch.setenv("FLIGHTS_EVIDENTLY_URL", url)
    monkeypatch.setenv("FLIGHTS_EVIDENTLY_SECRET", SECRET)
    try:
        before = RemoteWorkspace(url, secret=SECRET).create_project(PROJECT_NAME)
        old = {"Dataset drift share": line_plot_panel("Dataset drift share", [PanelMetric(
                   legend="share of drifted columns", metric="DriftedColumnsCount", metric_labels={"value_type": "share"},
                   tags=[DRIFT_TAG])], size="half"),
               "Served traffic drift share": line_plot_panel("Served traffic drift share", [PanelMetric(
                   legend="served flights", metric="DriftedColumnsCount", metric_labels={"value_type": "share"},
                   tags=[SERVED_DRIFT_TAG])], size="half", description="The same, for the served flights (make serve)"),
               "Notes": text_panel("Notes", "a person's own panel")}
        for panel in old.values():
            before.dashboard.add_panel(panel, tab="Daily monitoring")

        link = MonitoringWorkspace().upload(drift_snapshot(days, DAYS[0]), f"drift {DAYS[0]}")
        project_id = link.url.split("/projects/")[1].split("/")[0]
        assert project_id == str(before.id)
        stored = [DashboardPanelPlot.parse_obj(p) for p in json.load(urllib.request.urlopen(
            f"{url}/api/v2/dashboards/{project_id}", timeout=10))["panels"]]
        by_title = {p.title: p for p in stored}
        assert [p.title for p in stored][:3] == list(old)  # in place: the old panels first, in their order
        assert set(by_title) == {p.title for p in dashboard_panels()} | {"Notes"}
        assert {t: by_title[t].id for t in old} == {t: p.id for t, p in old.items()}
        assert _shown(by_title["Notes"]) == _shown(old["Notes"])
        for panel in dashboard_panels():  # each as the code has it now: nothing left to rewrite next time
            assert _shown(by_title[panel.title]) == _shown(panel), panel.title

        served_panel = by_title["Served traffic drift share"]
        assert "no served traffic was recorded" in served_panel.subtitle and "`make serve`" in served_panel.subtitle
        assert series(url, project_id, served_panel) == {}  # no served snapshot: the panel is empty, and says why
        assert series(url, project_id, by_title["Dataset drift share"]) == {"share_of_drifted_columns": {DAYS[0]: 0.0}}
    finally:
        stop_server(proc, log)
