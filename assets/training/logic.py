"""Training logic (no Dagster): the trailing window split by time, the labelled rows of each
split, the scikit-learn Pipeline, its fit and its operating threshold, and what a model records
about the code and dependencies it came from.

The split is by time, never at random: the oldest days train, the next ones validate (the
operating threshold is chosen there), the newest ones test (the promotion gate uses them).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import asdict, dataclass, fields

import numpy as np
import pandas as pd

from assets.common import days_ending
from resources.errors import DataProblem
from resources.records import SPLITS, TrainingWindow
from resources.settings import REPO_ROOT
from served_model.features import FEATURE_COLUMNS_CATEGORICAL, model_input

LABEL = "is_late"
# what every registered version pins (the served model's libraries: no Dagster, no SQLAlchemy)
MODEL_REQUIREMENTS = ("scikit-learn", "numpy", "pandas", "scipy", "skops", "pydantic", "mlflow")


@dataclass(frozen=True)
class ModelParams:
    """Hyperparameters of the gradient-boosted trees (fixed seed)."""

    learning_rate: float = 0.08
    max_iter: int = 250
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 40
    l2_regularization: float = 1.0
    random_state: int = 0

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_strings(cls, values: dict[str, str]) -> ModelParams:
        """The parameters as MLflow stores them (text), e.g. to rebuild a version."""
        return cls(**{f.name: type(getattr(cls(), f.name))(values[f.name]) for f in fields(cls) if f.name in values})


@dataclass
class TrainingSet:
    """The labelled rows of a window, each with its split."""

    frame: pd.DataFrame  # features, label, partition_date and split of each labelled flight
    window: TrainingWindow

    def split(self, name: str) -> pd.DataFrame:
        return self.frame[self.frame["split"] == name]


def split_days(days: list[str], validation_share: float = 0.1, test_share: float = 0.2) -> dict[str, list[str]]:
    """Consecutive blocks of days: train, then validation, then test (newest)."""
    days = sorted(days)
    if len(days) < 3:
        raise DataProblem(f"a time split needs at least 3 days, got {len(days)}")
    n_test = max(1, round(len(days) * test_share))
    n_val = max(1, round(len(days) * validation_share))
    n_train = len(days) - n_test - n_val
    if n_train < 1:
        raise DataProblem(f"{len(days)} days leave no training day")
    return {"train": days[:n_train], "validation": days[n_train: n_train + n_val], "test": days[n_train + n_val:]}


def window_days(end_day: str, window: int) -> list[str]:
    return days_ending(end_day, window)


def check_label_counts(counts: pd.DataFrame, splits: dict[str, list[str]], min_rows: int,
                       names: tuple[str, ...] = SPLITS) -> None:
    """Enough labelled rows, and both classes in every split of `names`; `counts`: one row per
    (partition_date, is_late) with its `rows`, over the labelled flights of the window."""
    days = [d for s in names for d in splits[s]]
    problems = []
    total = int(counts["rows"].sum()) if len(counts) else 0
    if total < min_rows:
        problems.append(f"only {total} labelled rows in {days[0]}…{days[-1]} (need {min_rows})")
    for name in names:
        part = counts[counts["partition_date"].isin(splits[name])]
        if part.loc[part["rows"] > 0, LABEL].nunique() < 2:
            problems.append(f"the {name} split ({int(part['rows'].sum())} rows) holds a single class")
    if problems:
        raise DataProblem(f"training window {days[0]}…{days[-1]}: " + "; ".join(problems))


def label_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """(partition_date, is_late) -> rows, over the labelled rows of `frame`."""
    labelled = frame[frame[LABEL].notna()]
    return labelled.groupby(["partition_date", LABEL]).size().rename("rows").reset_index()


def build_training_set(frame: pd.DataFrame, window: TrainingWindow, min_rows: int = 1,
                       splits: tuple[str, ...] = SPLITS) -> TrainingSet:
    """The labelled rows of the window's days of `splits` (cancelled and diverted flights have no
    label), each with its split, in a stable order."""
    days = [d for s in splits for d in window.splits.get(s, [])]
    missing = sorted(set(days) - set(frame["partition_date"]))
    if missing:
        raise DataProblem(f"training window {window.label}: no features for {len(missing)} day(s), e.g. {missing[:5]}")
    check_label_counts(label_counts(frame), window.splits, min_rows, splits)
    frame = frame[frame[LABEL].notna()].copy()
    frame[LABEL] = frame[LABEL].astype(int)
    frame["split"] = frame["partition_date"].map({d: s for s, ds in window.splits.items() for d in ds})
    frame = frame.sort_values(["partition_date", "sched_dep_ts", "row_number"], kind="stable").reset_index(drop=True)
    return TrainingSet(frame, window)


def build_pipeline(params: ModelParams):
    """Ordinal codes for the categories (unknown or missing: NaN), then gradient-boosted trees.

    The codes are split on as numbers, not as native categories: forward in time over 2013 that
    scored a higher mean ROC AUC (0.719 vs 0.715, bench/bench_model.py), and it keeps the
    fitted model to one trusted skops type and the single-row serving path short.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    prep = ColumnTransformer(
        [("categories", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                       encoded_missing_value=np.nan),
          FEATURE_COLUMNS_CATEGORICAL)],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )
    clf = HistGradientBoostingClassifier(
        learning_rate=params.learning_rate, max_iter=params.max_iter, max_leaf_nodes=params.max_leaf_nodes,
        min_samples_leaf=params.min_samples_leaf, l2_regularization=params.l2_regularization,
        early_stopping=False, random_state=params.random_state,
    )
    return Pipeline([("prepare", prep), ("classify", clf)])


def fit(ts: TrainingSet, params: ModelParams):
    train = ts.split("train")
    model = build_pipeline(params)
    model.fit(model_input(train), train[LABEL].to_numpy())
    return model


def choose_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability threshold that maximizes F1 on the validation days."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y, p)
    f1 = 2 * precision * recall / np.clip(precision + recall, 1e-12, None)
    return float(thresholds[int(np.argmax(f1[:-1]))])


@dataclass(frozen=True)
class FittedCandidate:
    model: object
    threshold: float
    validation_roc_auc: float


# the splits each step reads: fitting needs train + validation, the gate test + the train labels
FIT_SPLITS = ("train", "validation")
# what the baseline needs of the train days (historical late rate by route and scheduled hour)
BASELINE_COLUMNS = ["partition_date", "row_number", "sched_dep_ts", "route", "sched_hour", LABEL]


def fit_candidate(ts: TrainingSet, params: ModelParams) -> FittedCandidate:
    """Fit on the train days; choose the operating threshold on the validation days."""
    from sklearn.metrics import roc_auc_score

    model = fit(ts, params)
    val = ts.split("validation")
    p_val = model.predict_proba(model_input(val))[:, 1]
    return FittedCandidate(model, choose_threshold(val[LABEL].to_numpy(), p_val), float(roc_auc_score(val[LABEL], p_val)))


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else "unknown"
    except Exception:
        return "unknown"


def lock_digest() -> str:
    """sha256 of requirements.lock: the exact versions of every dependency the model came from."""
    path = REPO_ROOT / "requirements.lock"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "unknown"


def pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in MODEL_REQUIREMENTS]


def training_dataset(window: TrainingWindow, source: str):
    """An MLflow dataset that points at the window's rows in the warehouse (called with the
    signature's input schema)."""
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    days = window.days
    digest = hashlib.sha256(json.dumps(window.data_versions, sort_keys=True).encode()).hexdigest()[:8]

    def dataset(schema):
        return MetaDataset(source=HTTPDatasetSource(f"{source}?days={days[0]}..{days[-1]}"),
                           name=f"flight_features {days[0]}..{days[-1]}", digest=digest, schema=schema)

    return dataset


def split_summary(counts: pd.DataFrame, splits: dict[str, list[str]]) -> list[dict]:
    """Per split: its days, labelled rows and late share, from `label_counts`-shaped counts."""
    out = []
    for name, days in splits.items():
        part = counts[counts["partition_date"].isin(days)]
        rows = int(part["rows"].sum())
        late = int(part.loc[part[LABEL].astype(float) == 1, "rows"].sum())
        out.append({"split": name, "days": f"{days[0]} … {days[-1]} ({len(days)})", "rows": rows,
                    "late_share": round(late / rows, 3) if rows else float("nan")})
    return out
