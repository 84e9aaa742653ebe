"""`make drills` on one incident, as a user runs it (bench/drills.py, each drill in its own
process, real stores, the pipeline's sensors and jobs): the history is built, the incident is
played, and the table says what noticed it and that no model learned from it."""

import json
import subprocess
import sys

import pytest

from tests.support import POSTGRES_SERVER, REPO

# the drills' stores are SQLite files copied whole from their base, whatever the profile: played
# once, in `make test`
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(bool(POSTGRES_SERVER), reason="the drills keep their stores in files")]


def test_a_drill_finds_the_incident_and_no_model_trains_on_it(tmp_path):
    from resources.settings import subprocess_env

    env = subprocess_env({"FLIGHTS_DATA_DIR": str(tmp_path / "data")})
    done = subprocess.run([sys.executable, str(REPO / "bench" / "drills.py"), "--only", "airport_weather_missing",
                           "--results", str(tmp_path / "results")], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 of 1 drills as expected" in done.stdout
    (row,) = json.loads((tmp_path / "results" / "drills.json").read_text())["rows"]
    assert row["days_to_detection"] == 0 and row["checks"] == "weather_coverage"
    assert row["retrains_on_broken_days"] == 0 and row["versions_trained_on_broken_data"] == 0 and row["false_alarms"] == 0
    assert "1 left out" in row["periodic_retrain"]  # the end's periodic retrain left the flagged day out
    assert any(a.startswith(":red_circle: *Feed incident on 2013-06-23: not retraining (weather_coverage)") for a in row["alert_titles"])
    assert (tmp_path / "results" / "drills.png").stat().st_size > 10_000
    assert "| airport_weather_missing | 2013-06-23 | 0 | weather_coverage |" in (tmp_path / "results" / "drills.md").read_text()
