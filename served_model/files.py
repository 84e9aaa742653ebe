"""The fitted scikit-learn Pipeline on disk: saved in MLflow's sklearn format through skops,
loaded back only with a reviewed list of trusted types (no pickle, no arbitrary callables).

Kept free of Dagster so that MLflow's scoring server imports it quickly.
"""

from __future__ import annotations

from pathlib import Path

# Types skops may load beyond its defaults (reviewed: arrays and numbers, no callables): the
# fitted trees of HistGradientBoosting, and the calibration wrapped around the classifier (its
# fitted calibrators: isotonic thresholds, or a sigmoid's two coefficients). Anything else in a
# model file is refused.
SKOPS_TRUSTED_TYPES = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
                       "sklearn.calibration._CalibratedClassifier", "sklearn.calibration._SigmoidCalibration"]

# the name of the Pipeline's folder inside a registered model version (see served_model/model.py)
PIPELINE_ARTIFACT = "sklearn_pipeline"


def save_pipeline(model, path: Path, signature, pip_requirements: list[str]) -> None:
    """Write `model` to the folder `path` in MLflow's sklearn format, serialized with skops."""
    import mlflow.sklearn

    mlflow.sklearn.save_model(
        model,
        path=str(path),
        signature=signature,
        pip_requirements=pip_requirements,
        serialization_format="skops",
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        pyfunc_predict_fn="predict_proba",
    )


def load_pipeline(path: str | Path):
    """The Pipeline saved at `path`; refuses anything but skops with the reviewed trusted types."""
    import mlflow.sklearn
    from mlflow.models import Model

    flavor = Model.load(str(path)).flavors.get("sklearn", {})
    trusted = flavor.get("skops_trusted_types") or []
    if flavor.get("serialization_format") != "skops" or not set(trusted) <= set(SKOPS_TRUSTED_TYPES):
        raise RuntimeError(
            f"refusing to load: serialization {flavor.get('serialization_format')!r}, "
            f"trusted types {trusted} (allowed: skops with {SKOPS_TRUSTED_TYPES})"
        )
    return mlflow.sklearn.load_model(str(path))
