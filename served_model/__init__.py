"""The code shipped with every registered model version (MLflow `code_paths`).

What MLflow's scoring server runs for a version: the typed model (`model.py`) around the fitted
scikit-learn Pipeline (saved and loaded by `files.py` with skops and reviewed types only) and the
feature schema it needs (`features.py`). It imports neither Dagster nor SQLAlchemy, so a
version's pinned requirements are the model's own libraries.

`PACKAGE_VERSION` is recorded on each version (tag `served_model.package`); the scoring server
refuses a version logged before this package existed (it shipped the whole `resources/`
folder and needs SQLAlchemy): retrain, or roll back to a version that has the tag.
"""

PACKAGE_VERSION = "1"
