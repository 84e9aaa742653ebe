"""Rebuild a registered model version from its recorded inputs and show that it is the same model.

    flights-reproduce [VERSION|champion] [--json]

From the version's record (MLflow tags and params): the training window's days and the id and
content hash of each day's `flight_features` version, the hyperparameters, the threshold. Those
versions are read back from the warehouse -- superseded ones included, so a day ingested again
since still gives the rows the model saw -- and their content hashes checked; the model is fitted
again with the pipeline's own code; its predictions on every labelled row of the window are
compared with the registered version's. Exit status 0 when the rebuilt model predicts the same
(max |difference| <= 1e-9) from the same data, 1 otherwise, 2 when it cannot be rebuilt (an
unknown version, a day whose version was deleted).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from assets.common import stored_data_versions
from assets.training.build import git_commit, lock_digest
from assets.training.logic import ModelParams, build_training_set, rebuild
from pipelines.commands.convention import cannot_carry_out, refused
from resources.errors import DataProblem
from resources.registry import ModelRegistry
from resources.schemas import flight_features
from resources.settings import configure_process
from resources.training_data import read_window
from resources.warehouse import Warehouse
from served_model.features import model_input

TOLERANCE = 1e-9


def reproduce(version: str, registry: ModelRegistry | None = None, warehouse: Warehouse | None = None) -> dict:
    registry = registry or ModelRegistry()
    warehouse = warehouse or Warehouse()
    record = registry.record(version)
    window = record.window
    if not window.days:
        raise DataProblem(f"{record.label} records no training window: there is nothing to rebuild it from")
    frame = read_window(warehouse, window, window.days)
    read = stored_data_versions(frame, flight_features)
    changed = sorted(d for d in window.days if window.data_versions.get(d) != read.get(d))
    now = warehouse.current_versions("flight_features", window.days)
    superseded = sorted(d for d, vid in window.version_ids.items() if now.get(d, (None,))[0] != vid)

    recorded = registry.run_params(record.run_id)
    hyper = ModelParams.from_strings(recorded)
    ts = build_training_set(frame, window)
    # the chosen trial again, without the search: its training window, hyperparameters and calibration
    rebuilt = rebuild(ts, hyper, int(recorded.get("train_days", 0)), recorded.get("calibration", "none"),
                      recorded.get("refit_with_validation", "False") == "True")
    X = model_input(ts.frame)
    rebuilt_p = rebuilt.model.predict_proba(X)[:, 1]
    registered_p = registry.load(record.version).predict_proba(X)[:, 1]
    diff = float(np.max(np.abs(rebuilt_p - registered_p))) if len(X) else float("nan")
    same = not changed and diff <= TOLERANCE and abs(rebuilt.threshold - record.threshold) <= 1e-6
    return {
        "model": record.label,
        "window": f"{window.days[0]} … {window.days[-1]} ({len(window.days)} days)",
        "rows_compared": int(len(X)),
        "data_read": ("the recorded flight_features versions" if window.version_ids
                      else "the current rows (this version predates recorded version ids)"),
        "days_ingested_again_since": superseded,
        "days_whose_data_changed": changed,
        "max_abs_prediction_difference": diff,
        "threshold": {"recorded": record.threshold, "rebuilt": round(rebuilt.threshold, 6)},
        "hyperparameters": {**hyper.as_dict(), "train_days": int(recorded.get("train_days", 0)),
                            "refit_with_validation": recorded.get("refit_with_validation", "False") == "True",
                            "calibration": recorded.get("calibration", "none")},
        "git_commit": {"recorded": record.build.git_commit, "now": git_commit()},
        "requirements_lock_sha256": {"recorded": record.build.lock_sha256, "now": lock_digest()},
        "reproduced": bool(same),
    }


def main(argv=None) -> int:
    configure_process()
    parser = argparse.ArgumentParser(description="Rebuild a model version and compare its predictions.")
    parser.add_argument("version", nargs="?", default="champion")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        r = reproduce(args.version)
    except cannot_carry_out() as exc:
        return refused(f"cannot reproduce {args.version}", exc)
    if args.json:
        print(json.dumps(r, indent=1))
    else:
        print(f"{r['model']}: rebuilt from {r['window']}, {r['rows_compared']} rows compared")
        again = r["days_ingested_again_since"]
        print(f"  data read: {r['data_read']}" + (f"; {len(again)} day(s) built again since: {', '.join(again[:10])}"
                                                   + (" …" if len(again) > 10 else "") if again else ""))
        print(f"  content hashes: {'all as recorded' if not r['days_whose_data_changed'] else 'CHANGED on ' + ', '.join(r['days_whose_data_changed'])}")
        print(f"  max |prediction difference|: {r['max_abs_prediction_difference']:.3g} (tolerance {TOLERANCE:g})")
        print(f"  threshold: recorded {r['threshold']['recorded']}, rebuilt {r['threshold']['rebuilt']}")
        for key in ("git_commit", "requirements_lock_sha256"):
            rec, now = r[key]["recorded"], r[key]["now"]
            print(f"  {key}: recorded {rec}, now {now}{'' if rec == now else '  (differs)'}")
        print("  REPRODUCED" if r["reproduced"] else "  NOT REPRODUCED")
    return 0 if r["reproduced"] else 1


if __name__ == "__main__":
    sys.exit(main())
