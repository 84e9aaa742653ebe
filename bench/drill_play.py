"""One drill, played in this process on the stores of FLIGHTS_DATA_DIR and DAGSTER_HOME: the days
of a stretch land one at a time in the landing folder (an incident injected into its days), and the
pipeline's own sensors and jobs take them as the daemon would, tick by tick.

Each replayed day: the landing file is written; `landing_sensor` sees it and, once settled,
requests `ingest_job`; a failed run goes to `run_failure_alert`; `monitor_sensor` requests
`monitor_job` (scores, drift and performance reports); `drift_sensor` and `performance_sensor`
decide whether to retrain, and a requested `retrain_job` runs (its start goes to
`retrain_started_alert`); `verdict_alert` sends what the reports and the gate say. The alerts go
to a webhook on loopback that this process serves, and are counted. The sensors are evaluated with
Dagster's own `build_sensor_context` on the real instance: the same code the daemon runs, without
the daemon's wait between ticks; runs execute in this process (`execute_in_process`). At the end
of the stretch the periodic retrain runs as of its last day (what `periodic_retrain_schedule`
requests): its window holds the incident's days, so it shows what the guard on the retrain does.

    python bench/drill_play.py base  START END OUT.json   # history + the first model
    python bench/drill_play.py drill NAME START END FIRST OUT.json
"""

from __future__ import annotations

import http.server
import json
import os
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def days_between(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


class AlertInbox:
    """A webhook on loopback that keeps every alert's text."""

    def __init__(self):
        self.texts: list[str] = []
        inbox = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                inbox.texts.append(json.loads(body).get("text", ""))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/drill-alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def since(self, n: int) -> list[str]:
        return self.texts[n:]


class Loop:
    """The pipeline's sensors and jobs on this process's instance, ticked by hand."""

    def __init__(self, inbox: AlertInbox):
        from dagster import DagsterInstance

        from pipelines.definitions import defs
        from pipelines.orchestration import alerts, sensors

        self.defs, self.instance, self.inbox = defs, DagsterInstance.get(), inbox
        self.sensors = {s.name: s for s in (sensors.landing_sensor, sensors.monitor_sensor, sensors.drift_sensor,
                                            sensors.performance_sensor, alerts.verdict_alert)}
        self.alerts = alerts
        self.cursors: dict[str, str | None] = {}

    def tick(self, name: str):
        from dagster import SkipReason, build_sensor_context

        result = self.sensors[name](build_sensor_context(instance=self.instance, cursor=self.cursors.get(name)))
        if isinstance(result, SkipReason):
            return [], result.skip_message
        if result.cursor is not None:
            self.cursors[name] = result.cursor
        return list(result.run_requests or []), result.skip_reason.skip_message if result.skip_reason else None

    def start_watching(self) -> None:
        for name in self.sensors:
            self.tick(name)

    def run(self, job: str, request=None, **kwargs):
        kw = {"instance": self.instance, "raise_on_error": False, **kwargs}
        if request is not None:
            kw.update(tags=request.tags, partition_key=request.partition_key)
            kw.setdefault("run_config", request.run_config)
        result = self.defs.resolve_job_def(job).execute_in_process(**kw)
        if not result.success:
            self._status_alert(self.alerts.run_failure_alert, result.dagster_run, result.get_run_failure_event(), failure=True)
        return result

    def _status_alert(self, sensor, run, event, failure: bool = False) -> None:
        from dagster import build_run_status_sensor_context

        context = build_run_status_sensor_context(sensor_name=sensor.name, dagster_instance=self.instance,
                                                  dagster_run=run, dagster_event=event)
        sensor(context.for_run_failure() if failure else context)

    def retrain_started(self, result) -> None:
        from dagster import DagsterEventType

        (start,) = self.instance.get_records_for_run(result.run_id, of_type=DagsterEventType.RUN_START).records
        self._status_alert(self.alerts.retrain_started_alert, result.dagster_run, start.event_log_entry.dagster_event)


def failed_checks(result) -> list[str]:
    return sorted({f"{e.asset_key.to_user_string()}.{e.check_name}" for e in result.get_asset_check_evaluations()
                   if not e.passed})


SERVED_INCIDENT = "stale_served_features"


def first_days(day: str, first: str, n: int) -> bool:
    """Whether `day` is one of the `n` days from `first` on."""
    return first <= day < (date.fromisoformat(first) + timedelta(days=n)).isoformat()


def injected(incident: str | None, day: str, first: str) -> bool:
    """Whether the feed incident `incident`, starting on `first`, is in the landing files of `day`."""
    from pipelines.commands.drills.incidents import FEED_INCIDENTS

    spec = FEED_INCIDENTS.get(incident or "")
    return spec is not None and first_days(day, first, spec.days)


def day_frames(day: str, incident: str | None = None, first: str = "") -> dict:
    """The day's landing frames as 2013 delivered them, with the incident injected if it is in them."""
    from pipelines.commands.drills.incidents import FEED_INCIDENTS
    from resources.source_files import _replay_table

    frames = {d: _replay_table(d).day(day).copy() for d in ("flights", "weather")}
    return FEED_INCIDENTS[incident].inject(frames) if injected(incident, day, first) else frames


def land(day: str, frames: dict) -> None:
    from resources.settings import settings

    folder = settings().landing_dir
    folder.mkdir(parents=True, exist_ok=True)
    for dataset, frame in frames.items():
        tmp = folder / f".{dataset}_{day}.csv.part"
        frame.to_csv(tmp, index=False, na_rep="NA")
        tmp.rename(folder / f"{dataset}_{day}.csv")  # atomically, as the landing folder asks


SERVED_CALLERS = 300  # flights of the day asked by flight, before the day's batch lands


def serve_callers(day: str, stale: bool) -> int:
    """Callers ask the scoring server's own desk (`FlightDesk`, the champion's scorer) by flight for
    the first SERVED_CALLERS flights of `day`, while `day` is the server's 'today' (before its batch
    lands); each answer recorded as the server records it. `stale`: every request carries a
    scheduled departure of a week ago (`incidents.stale_served_features`)."""
    from pipelines.commands.drills.incidents import stale_served_features
    from pipelines.serving.by_flight import DayContexts, FlightDesk
    from pipelines.serving.traffic import ServedTrafficRecorder
    from resources.registry import ModelRegistry
    from resources.warehouse import Warehouse
    from served_model.model import FastScorer

    registry, warehouse = ModelRegistry(), Warehouse()
    champion = registry.champion()

    class Served:
        version, scorer = champion.version, FastScorer(registry.load(champion.version))

    desk, recorder = FlightDesk(DayContexts(warehouse, poll_seconds=3600)), ServedTrafficRecorder(warehouse, clock=lambda at: day)
    for f in day_frames(day)["flights"].head(SERVED_CALLERS).itertuples(index=False):
        clock = int(f.sched_dep_time)
        request = {"carrier": f.carrier, "flight": int(f.flight), "origin": f.origin, "dest": f.dest,
                   "scheduled_departure": f"{day}T{clock // 100:02d}:{clock % 100:02d}"}
        answer = desk.answer(stale_served_features(request) if stale else request, Served)
        recorder.offer_answer(champion.version, json.dumps(answer).encode(), time.time())
    return recorder.flush()


def play_day(loop: Loop, day: str) -> dict:
    """One replayed day through the loop: what happened, as the drill's table reads it."""
    from resources.warehouse import Warehouse

    said = len(loop.inbox.texts)
    out: dict = {"day": day, "ingest": None, "failed_checks": [], "monitor": False, "retrains": [], "sensor_said": {}}
    loop.tick("landing_sensor")  # seen: settling
    requests, _ = loop.tick("landing_sensor")
    for request in requests:
        result = loop.run("ingest_job", request)
        out["ingest"] = "succeeded" if result.success else "failed"
        out["failed_checks"] += failed_checks(result)
    for request in loop.tick("monitor_sensor")[0]:
        result = loop.run("monitor_job", request)
        out["monitor"] = result.success
        out["failed_checks"] += [c for c in failed_checks(result) if c.endswith(
            ("no_dataset_drift", "performance_not_degraded", "served_requests_current"))]
    for sensor in ("drift_sensor", "performance_sensor"):
        requests, message = loop.tick(sensor)
        out["sensor_said"][sensor] = message
        for request in requests:
            result = loop.run("retrain_job", request)
            loop.retrain_started(result)
            out["retrains"].append({**retrain_summary(loop, result, sensor), "day_asked": day})
    loop.tick("verdict_alert")
    out["served_stale"] = bool(metadata_of(loop, "drift_report", day).get("served_stale"))
    out["flags"] = [{"check": f.check, "asset": f.asset, "severity": f.severity, "detail": f.detail}
                    for f in Warehouse().open_flags([day])]
    out["alerts"] = [t.splitlines()[0][:200] for t in loop.inbox.since(said)]
    return out


def metadata_of(loop: Loop, asset: str, day: str) -> dict:
    """The newest materialization's metadata of the asset's day ({} if none)."""
    from dagster import AssetKey, AssetRecordsFilter

    records = loop.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[day]), limit=1).records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()} if records else {}


def retrain_summary(loop: Loop, result, trigger: str) -> dict:
    def metadata(asset: str) -> dict:
        found = result.asset_materializations_for_node(asset)
        return {k: v.value for k, v in found[-1].metadata.items()} if found else {}

    training, candidate, champion = metadata("training_set"), metadata("candidate_model"), metadata("champion_model")
    return {"trigger": trigger, "success": result.success, "version": candidate.get("model_version"),
            "trained_on": (training.get("partitions") or {}).get("flight_features", []),
            "days_left_out": training.get("days_left_out"), "decision": champion.get("event") or champion.get("decision")}


def base(first: str, last: str, out: Path) -> None:
    """History `first`..`last` landed and ingested as one backfill run, the first model trained and
    deployed; the sensors' cursors start after it (what a drill starts from)."""
    loop = Loop(AlertInbox())
    for day in days_between(first, last):
        land(day, day_frames(day))
    ingest = loop.run("ingest_job", tags={"dagster/asset_partition_range_start": first,
                                          "dagster/asset_partition_range_end": last})
    assert ingest.success, "the drills' history failed to ingest"
    retrain = loop.run("retrain_job", run_config={"ops": {"training_set": {"config": {"end_day": last}}}})
    assert retrain.success, "the drills' first model failed to train"
    out.write_text(json.dumps({"first": first, "last": last, "first_model": retrain_summary(loop, retrain, "manual")}))


def drill(name: str, first: str, last: str, incident_first: str, out: Path) -> None:
    inbox = AlertInbox()
    os.environ["FLIGHTS_ALERT_WEBHOOK_URL"] = inbox.url
    loop = Loop(inbox)
    loop.start_watching()  # turned on after the history: it is not acted on
    days = []
    for day in days_between(first, last):
        if name == SERVED_INCIDENT:  # served traffic only: the batch days land as they were
            serve_callers(day, stale=first_days(day, incident_first, 1))
        land(day, day_frames(day, name, incident_first))
        days.append({**play_day(loop, day), "injected": injected(name, day, incident_first)
                     or (name == SERVED_INCIDENT and first_days(day, incident_first, 1))})
    # the periodic retrain at the end of the stretch (periodic_retrain_schedule's request, as of the
    # last day): whatever the sensors did, a retrain whose window holds the incident's days
    periodic = periodic_retrain(loop, last)
    out.write_text(json.dumps({"drill": name, "first": first, "last": last, "incident_first": incident_first,
                               "days": days, "periodic_retrain": periodic}, default=str))


def periodic_retrain(loop: Loop, as_of: str) -> dict:
    from pipelines.orchestration.sensors import retrain_request
    from resources.records import RetrainTrigger

    request = retrain_request(RetrainTrigger(kind="periodic_retrain", reason="the drill's end: the periodic retrain",
                                             as_of=as_of))
    result = loop.run("retrain_job", request)
    return {**retrain_summary(loop, result, "periodic_retrain"), "day_asked": as_of}


def main(argv: list[str] | None = None) -> int:
    from resources.settings import configure_process

    configure_process()
    args = sys.argv[1:] if argv is None else argv
    if args[0] == "base":
        base(args[1], args[2], Path(args[3]))
    else:
        drill(args[1], args[2], args[3], args[4], Path(args[5]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
