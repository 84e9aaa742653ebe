"""Rebuild a registered model version from its recorded inputs and show that it is the same model.

    python -m pipelines.reproduce [VERSION|champion] [--json]

From the version's record (MLflow tags and params): the training window's days and each day's
data version, the hyperparameters, the threshold. The days are read back from the warehouse and
their data versions checked; the model is fitted again with the pipeline's own code; its
predictions on every labelled row of the window are compared with the registered version's.
Exit status 0 when the rebuilt model predicts the same (max |difference| <= 1e-9) from the same
data, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

TOLERANCE = 1e-9


def reproduce(version: str, registry=None, warehouse=None) -> dict:
    from assets.partitions import stored_data_versions
    from assets.training import LABEL, ModelConfig, build_training_set, choose_threshold, fit, git_commit, lock_digest, model_input
    from resources.registry import CHAMPION, ModelRegistry
    from resources.schemas import flight_features
    from resources.warehouse import warehouse_from_env

    registry = registry or ModelRegistry()
    warehouse = warehouse or warehouse_from_env()
    client = registry.client
    if version == "champion":
        version = str(registry.version_by_alias(CHAMPION).version)
    mv = client.get_model_version(registry.model_name, str(version))
    params = client.get_run(mv.run_id).data.params
    splits = json.loads(mv.tags["data.partitions"])
    days = [d for s in ("train", "validation", "test") for d in splits[s]]
    recorded = json.loads(mv.tags.get("data.versions", "{}"))

    frame = warehouse.read(flight_features, days)
    current = stored_data_versions(frame, flight_features)
    changed = sorted(d for d in days if recorded.get(d) != current.get(d))

    hyper = ModelConfig(**{k: type(getattr(ModelConfig(), k))(v) for k, v in params.items() if k in ModelConfig.model_fields})
    ts = build_training_set(frame, days, min_rows=1)
    model = fit(ts, hyper)
    val = ts.split("validation")
    threshold = choose_threshold(val[LABEL].to_numpy(), model.predict_proba(model_input(val))[:, 1])

    registered = registry.load(str(version))
    X = model_input(ts.frame)
    rebuilt_p = model.predict_proba(X)[:, 1]
    registered_p = registered.predict_proba(X)[:, 1]
    diff = float(np.max(np.abs(rebuilt_p - registered_p))) if len(X) else float("nan")
    recorded_threshold = float(mv.tags.get("threshold", "nan"))
    same = not changed and diff <= TOLERANCE and abs(threshold - recorded_threshold) <= 1e-6
    return {
        "model": f"{mv.name} v{mv.version}",
        "window": f"{days[0]} … {days[-1]} ({len(days)} days)",
        "rows_compared": int(len(X)),
        "days_whose_data_changed": changed,
        "max_abs_prediction_difference": diff,
        "threshold": {"recorded": recorded_threshold, "rebuilt": round(threshold, 6)},
        "hyperparameters": hyper.model_dump(),
        "git_commit": {"recorded": mv.tags.get("git.commit"), "now": git_commit()},
        "requirements_lock_sha256": {"recorded": mv.tags.get("deps.lock_sha256"), "now": lock_digest()},
        "reproduced": bool(same),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Rebuild a model version and compare its predictions.")
    parser.add_argument("version", nargs="?", default="champion")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    r = reproduce(args.version)
    if args.json:
        print(json.dumps(r, indent=1))
    else:
        print(f"{r['model']}: rebuilt from {r['window']}, {r['rows_compared']} rows compared")
        print(f"  data versions: {'all as recorded' if not r['days_whose_data_changed'] else 'CHANGED on ' + ', '.join(r['days_whose_data_changed'])}")
        print(f"  max |prediction difference|: {r['max_abs_prediction_difference']:.3g} (tolerance {TOLERANCE:g})")
        print(f"  threshold: recorded {r['threshold']['recorded']}, rebuilt {r['threshold']['rebuilt']}")
        for key in ("git_commit", "requirements_lock_sha256"):
            rec, now = r[key]["recorded"], r[key]["now"]
            print(f"  {key}: recorded {rec}, now {now}{'' if rec == now else '  (differs)'}")
        print("  REPRODUCED" if r["reproduced"] else "  NOT REPRODUCED")
    return 0 if r["reproduced"] else 1


if __name__ == "__main__":
    sys.exit(main())
