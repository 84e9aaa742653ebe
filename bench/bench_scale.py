"""Cost as the work grows: each day's flights replicated 1x, 4x and 16x as distinct flights and
aircraft (weather unchanged), through the pipeline's own steps via the CLI, for one day and for a
month of days (one run over the range).

Copy k of a flight gets flight number (flight - 1 + 613 k) mod 9999 + 1 and tail number
TAILNUM-k, so the copies are other flights on other aircraft with the same schedule, route and
weather; a rare copy that lands on an existing (carrier, flight, origin, scheduled time) is
quarantined as a duplicate, and counted. Each step (raw_flights, raw_weather,
validated_flights, validated_weather, flight_features) is materialized by its own CLI process
(`dg launch --assets STEP`), in order, on the landing source: per step, the step's own time
(the event log's step start to end, no process start), the process's wall time and its peak RSS,
and the step's microseconds per flight; against 1x, the ratios and the marginal cost of an added
flight (the step's fixed part, its imports and stores, taken out). Target: at 16x the cost per
flight within 1.2x of 1x, peak memory growing no faster than the data.

    python bench/bench_scale.py [--factors 1,4,16] [--scopes day,month]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_data_foundation import BIN, _fresh_env, _timed, write_results  # noqa: E402

STEPS = ("raw_flights", "raw_weather", "validated_flights", "validated_weather", "flight_features")
MONTH = [f"2013-07-{d:02d}" for d in range(1, 32)]
SCOPES = {"day": (["--partition", "2013-07-15"], ["2013-07-15"]),
          "month": (["--partition-range", f"{MONTH[0]}...{MONTH[-1]}"], MONTH)}


def replicated(flights, factor: int):
    """The day's flights and factor - 1 copies of them as other flights on other aircraft."""
    import pandas as pd

    copies = [flights]
    for k in range(1, factor):
        copy = flights.copy()
        number = pd.to_numeric(copy["flight"], errors="coerce")
        copy["flight"] = ((number - 1 + 613 * k) % 9999 + 1).astype("Int64").astype(str)
        copy["tailnum"] = copy["tailnum"].where(copy["tailnum"].isna(), copy["tailnum"] + f"-{k}")
        copies.append(copy)
    return pd.concat(copies, ignore_index=True)


def land(folder: Path, days: list[str], factor: int) -> int:
    """The days' landing files (flights replicated, weather as it was); the flights written."""
    from tests.support import replay_day, write_landing

    folder.mkdir(parents=True)
    flights = 0
    for day in days:
        frame = replicated(replay_day("flights", day), factor)
        write_landing(folder, "flights", day, frame, fmt="parquet")
        write_landing(folder, "weather", day, replay_day("weather", day), fmt="parquet")
        flights += len(frame)
    return flights


def step_seconds(home: str) -> float:
    """The newest run's one step, start to end, from the instance's own step statistics."""
    from dagster import DagsterInstance

    instance = DagsterInstance.from_config(home)
    run = instance.get_runs(limit=1)[0]
    (stats,) = instance.get_run_step_stats(run.run_id)
    return stats.end_time - stats.start_time


def quarantined(env: dict, days: list[str]) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{Path(env['FLIGHTS_DATA_DIR']) / 'warehouse.db'}")
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM quarantine WHERE dataset = 'flights' AND partition_date BETWEEN :a AND :b"),
                         {"a": days[0], "b": days[-1]}).scalar()
    engine.dispose()
    return int(n)


def measure(root: Path, factor: int, scope: str) -> dict:
    partition_args, days = SCOPES[scope]
    env = _fresh_env(root)
    env.update(FLIGHTS_SOURCE="landing", FLIGHTS_LANDING_DIR=str(root / "landing"))
    flights = land(root / "landing", days, factor)
    steps = {}
    for step in STEPS:
        wall, rss = _timed([str(BIN / "dg"), "launch", "--assets", step, *partition_args], env)
        seconds = step_seconds(env["DAGSTER_HOME"])
        steps[step] = {"step_s": round(seconds, 2), "process_wall_s": round(wall, 1), "peak_rss_mib": round(rss),
                       "us_per_flight": round(seconds / flights * 1e6, 1)}
        print(f"  {scope} {factor:>2}x {step:<18} step {seconds:6.2f} s  process {wall:6.1f} s  "
              f"peak {rss:5.0f} MiB  {seconds / flights * 1e6:7.1f} µs/flight", flush=True)
    return {"flights": flights, "quarantined_flights": quarantined(env, days), "steps": steps}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factors", default="1,4,16")
    parser.add_argument("--scopes", default="day,month")
    args = parser.parse_args(argv)
    factors = [int(f) for f in args.factors.split(",")]
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for scope in args.scopes.split(","):
            results[scope] = {}
            for factor in factors:
                results[scope][f"{factor}x"] = measure(Path(tmp) / f"{scope}-{factor}", factor, scope)
            base = results[scope][f"{factors[0]}x"]
            for factor in factors[1:]:
                top = results[scope][f"{factor}x"]
                growth = {s: {"cost_per_flight_ratio": round(top["steps"][s]["us_per_flight"]
                                                             / base["steps"][s]["us_per_flight"], 2),
                              "peak_rss_ratio": round(top["steps"][s]["peak_rss_mib"] / base["steps"][s]["peak_rss_mib"], 2),
                              # what each added flight costs, the step's fixed part taken out
                              "marginal_us_per_added_flight": round((top["steps"][s]["step_s"] - base["steps"][s]["step_s"])
                                                                    / (top["flights"] - base["flights"]) * 1e6, 1)}
                          for s in STEPS}
                results[scope][f"{factor}x_against_{factors[0]}x"] = growth
                print(f"{scope}, {factor}x against {factors[0]}x (data {top['flights'] / base['flights']:.1f}x): "
                      + json.dumps(growth), flush=True)
    return write_results("scale", results)


if __name__ == "__main__":
    main()
