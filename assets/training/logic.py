"""Training logic (no Dagster): the trailing window split by time, the labelled rows of each
split, the scikit-learn Pipeline, its fit and its operating threshold, and what a model records
about the code and dependencies it came from.

The split is by time, never at random: the oldest days train, the next ones validate (the
operating threshold is chosen there), the newest ones test (the promotion gate uses them).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import pandas as pd

from assets.common import days_ending
from assets.features.logic import LABEL
from assets.training.calibration import calibrate, calibrated
from resources.errors import DataProblem
from resources.records import SPLITS, TrainingWindow
from served_model.features import FEATURE_COLUMNS_CATEGORICAL, model_input

# what every registered version pins (the served model's libraries: no Dagster, no SQLAlchemy)


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


# the validation and test blocks stop growing here: a year of history trains on 337 days
MAX_TEST_DAYS = 14
MAX_VALIDATION_DAYS = 14


def split_days(days: list[str], validation_share: float = 0.1, test_share: float = 0.2) -> dict[str, list[str]]:
    """Consecutive blocks of days: train, then validation, then test (newest); validation and
    test are 10 % and 20 % of the days, at most 14 days each (60 days: 42 / 6 / 12)."""
    days = sorted(days)
    if len(days) < 3:
        raise DataProblem(f"a time split needs at least 3 days, got {len(days)}")
    n_test = min(MAX_TEST_DAYS, max(1, round(len(days) * test_share)))
    n_val = min(MAX_VALIDATION_DAYS, max(1, round(len(days) * validation_share)))
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


def fit(ts: TrainingSet, params: ModelParams, train_days: int = 0, with_validation: bool = False):
    """Fit on the train days; `train_days` > 0: on the newest that many of them only;
    `with_validation`: on the validation days too (the refit once the search has chosen)."""
    train = train_rows(ts, train_days)
    if with_validation:
        train = pd.concat([train, ts.split("validation")], ignore_index=True)
    model = build_pipeline(params)
    model.fit(model_input(train), train[LABEL].to_numpy())
    return model


def train_rows(ts: TrainingSet, train_days: int = 0) -> pd.DataFrame:
    train = ts.split("train")
    if train_days <= 0:
        return train
    return train[train["partition_date"].isin(ts.window.splits["train"][-train_days:])]


def choose_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability threshold that maximizes F1 on the validation days."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y, p)
    f1 = 2 * precision * recall / np.clip(precision + recall, 1e-12, None)
    return float(thresholds[int(np.argmax(f1[:-1]))])


@dataclass(frozen=True)
class Trial:
    """One fit of the search: a training window and hyperparameters, judged on the validation days."""

    number: int
    kind: str  # "window": the default hyperparameters on a training window; "tuning": sampled ones
    train_days: int  # days of the train split it was fitted on
    train_from: str
    params: ModelParams
    validation_roc_auc: float
    validation_log_loss: float
    train_rows: int
    fit_seconds: float

    def as_row(self) -> dict:
        return {"trial": self.number, "kind": self.kind, "train_days": self.train_days, "train_from": self.train_from,
                "validation_roc_auc": round(self.validation_roc_auc, 4), "fit_s": round(self.fit_seconds, 2),
                **{k: v for k, v in self.params.as_dict().items() if k != "random_state"}}


# what each trial's nested MLflow run records as metrics (the rest of `Trial.as_row`: params)
TRIAL_METRICS = ("validation_roc_auc", "fit_s")


@dataclass(frozen=True)
class SearchPolicy:
    """What the retrain tries before it settles on a model, all judged on the validation days
    (never the test days): each training window of `train_window_options` (days of the train
    split, 0 = all of it) with the given hyperparameters, then, on the best window, up to
    `tuning_trials` fits in all (0: no tuning) with hyperparameters sampled from
    `TUNING_SPACE`, stopping early once `tuning_seconds` have passed. With `refit`, the chosen
    trial is fitted again on its train days plus the validation days."""

    train_window_options: tuple[int, ...] = (60, 120, 0)
    tuning_trials: int = 0
    tuning_seconds: float = 30.0
    seed: int = 0
    # the chosen trial fitted again on its train days plus the validation days: the newest days
    # before the test days are the most informative (forward folds over 2013: +0.006 mean ROC AUC)
    refit: bool = True


# the search space of the tuning trials (scikit-learn's ParameterSampler draws from it)
TUNING_SPACE = {
    "learning_rate": [0.03, 0.05, 0.08, 0.12, 0.2],
    "max_iter": [150, 250, 400],
    "max_leaf_nodes": [15, 31, 63],
    "min_samples_leaf": [20, 40, 100, 200],
    "l2_regularization": [0.0, 0.5, 1.0, 3.0],
}


def window_choices(ts: TrainingSet, options: tuple[int, ...]) -> list[int]:
    """The distinct training windows of `options` over this window's train days, shortest
    first (an option as long as the train split, or 0, is all of it: 0)."""
    n = len(ts.window.splits["train"])
    out = sorted({0 if o <= 0 or o >= n else int(o) for o in options}, key=lambda o: o or n)
    if not out:
        raise ValueError("train_window_options is empty")
    return out


@dataclass(frozen=True)
class FittedCandidate:
    model: object
    threshold: float
    validation_roc_auc: float
    trials: tuple[Trial, ...] = ()
    calibration: dict = field(default_factory=dict)  # method applied and the figures behind it
    refit: bool = False  # fitted again with the validation days once the search had chosen

    @property
    def chosen(self) -> Trial | None:
        return max(self.trials, key=lambda t: (t.validation_roc_auc, -t.number)) if self.trials else None


# the splits a fit without calibration reads (calibration is decided on the test days too)
FIT_SPLITS = ("train", "validation")
# what the baseline needs of the train days (historical late rate by route and scheduled hour)
BASELINE_COLUMNS = ["partition_date", "row_number", "sched_dep_ts", "route", "sched_hour", LABEL]


def search(ts: TrainingSet, params: ModelParams, policy: SearchPolicy = SearchPolicy(), clock=time.perf_counter):
    """The model of the best trial (highest validation ROC AUC; ties: the earlier) and every
    trial, in order: first the training windows with `params`, then tuning on the best window."""
    from sklearn.metrics import log_loss, roc_auc_score
    from sklearn.model_selection import ParameterSampler

    val = ts.split("validation")
    X_val, y_val = model_input(val), val[LABEL].to_numpy()
    trials: list[Trial] = []
    best_model, started = None, clock()

    def attempt(kind: str, train_days: int, trial_params: ModelParams):
        nonlocal best_model
        t = clock()
        rows = train_rows(ts, train_days)
        model = fit(ts, trial_params, train_days)
        p = model.predict_proba(X_val)[:, 1]
        train_split = ts.window.splits["train"]
        n_days = min(train_days or len(train_split), len(train_split))
        trial = Trial(len(trials), kind, n_days, train_split[-n_days], trial_params,
                      float(roc_auc_score(y_val, p)), float(log_loss(y_val, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1])),
                      len(rows), clock() - t)
        if not trials or trial.validation_roc_auc > max(x.validation_roc_auc for x in trials):
            best_model = model
        trials.append(trial)

    for option in window_choices(ts, policy.train_window_options):
        attempt("window", option, params)
    best_window = max(trials, key=lambda t: (t.validation_roc_auc, -t.number))
    window_option = 0 if best_window.train_days >= len(ts.window.splits["train"]) else best_window.train_days
    sampled = ParameterSampler(TUNING_SPACE, n_iter=max(0, policy.tuning_trials - len(trials)), random_state=policy.seed)
    for drawn in sampled:
        if clock() - started >= policy.tuning_seconds:
            break
        attempt("tuning", window_option, ModelParams(**{**params.as_dict(), **drawn}))
    return best_model, tuple(trials)


def fit_candidate(ts: TrainingSet, params: ModelParams, policy: SearchPolicy = SearchPolicy(),
                  calibrate_on_test: bool = False) -> FittedCandidate:
    """The search on the train and validation days, then (`policy.refit`) the chosen trial
    fitted again with the validation days; the operating threshold chosen on the validation
    days from the searched model's (out-of-sample) probabilities; with `calibrate_on_test` (the
    window's test rows are in `ts`), calibration as `calibrate` decides."""
    searched, trials = search(ts, params, policy)
    chosen = max(trials, key=lambda t: (t.validation_roc_auc, -t.number))
    return _finish(ts, searched, chosen.params, chosen.train_days, policy.refit,
                   "choose" if calibrate_on_test else "none", trials, chosen.validation_roc_auc)


def rebuild(ts: TrainingSet, params: ModelParams, train_days: int, calibration: str, refit: bool) -> FittedCandidate:
    """The chosen trial fitted again, as recorded on a version (no search): the same rows, the
    same hyperparameters and seed, the same refit and calibration, the threshold chosen the same way."""
    from sklearn.metrics import roc_auc_score

    searched = fit(ts, params, train_days)
    val = ts.split("validation")
    auc = float(roc_auc_score(val[LABEL], searched.predict_proba(model_input(val))[:, 1]))
    return _finish(ts, searched, params, train_days, refit, calibration, (), auc)


def _finish(ts: TrainingSet, searched, params: ModelParams, train_days: int, refit: bool, calibration: str,
            trials: tuple, validation_roc_auc: float) -> FittedCandidate:
    val = ts.split("validation")
    threshold = choose_threshold(val[LABEL].to_numpy(), searched.predict_proba(model_input(val))[:, 1])
    model = fit(ts, params, train_days, with_validation=True) if refit else searched
    scorer = searched if refit else None
    if calibration == "choose":
        model, figures = calibrate(model, val, ts.split("test"), scorer)
    else:
        model, figures = calibrated(model, val, calibration, scorer), {"method": calibration}
    if figures["method"] != "none":  # the threshold on the calibrated scale: the map applied to the searched model's
        p_val = calibrated(searched, val, figures["method"]).predict_proba(model_input(val))[:, 1]
        threshold = choose_threshold(val[LABEL].to_numpy(), p_val)
    return FittedCandidate(model, threshold, validation_roc_auc, trials, figures, refit)


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
