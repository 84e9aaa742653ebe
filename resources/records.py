"""What the pipeline records about a model in the MLflow registry, as typed values.

The tag names live here and only here: `TrainingWindow`, `RetrainTrigger`, `BuildInfo` and
`GateVerdict` write their tags (`.tags()`) and read them back (`.from_tags()`); `ModelRecord`
is a registered version as every step and CLI reads it. No Dagster, no MLflow import: the
registry resource (resources/registry.py) moves these to and from MLflow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

SPLITS = ("train", "validation", "test")


class Tag:
    """Names of the tags on MLflow runs and registered model versions."""

    DAGSTER_RUN_ID = "dagster.run_id"
    DAGSTER_JOB = "dagster.job"
    DAGSTER_ASSET = "dagster.asset"
    WINDOW = "data.window"
    PARTITIONS = "data.partitions"  # JSON: split -> days
    DATA_VERSIONS = "data.versions"  # JSON: day -> flight_features data version (content hash)
    DATA_VERSION_IDS = "data.version_ids"  # JSON: day -> the flight_features version read (day_versions)
    GIT_COMMIT = "git.commit"
    LOCK_SHA256 = "deps.lock_sha256"
    PACKAGE = "served_model.package"  # the served_model package version the version ships
    TRIGGER = "trigger"
    TRIGGER_PREFIX = "trigger."
    AS_OF = "retrain.as_of"
    THRESHOLD = "threshold"
    MODEL_PARAMS = "model.params"  # JSON: the chosen hyperparameters, training window and calibration
    CALIBRATION = "model.calibration"  # none | isotonic | sigmoid
    GATE_DECISION = "gate.decision"
    GATE_REASONS = "gate.reasons"
    EVAL_TEST_ROC_AUC = "eval.test_roc_auc"
    DEPLOY_EVENTS = "deploy.events"  # JSON list of DeployEvent: every alias move of the version
    CHALLENGER_MODE = "challenger.mode"  # approve | shadow, while the version is the challenger
    CHALLENGER_SINCE = "challenger.since_day"  # the day the challenger was trained up to
    REGISTERED_VERSION = "registered.version"  # on a retrain's run: the version registered from it
    REGISTRY_ID = "flights.registry_id"  # on the project's experiment: the registry's identity (made once)


@dataclass(frozen=True)
class TrainingWindow:
    """The days a model is trained on, split by time, and each day's data version: the content
    hash and the id of the `flight_features` version it read (absent on versions registered
    before days kept their versions)."""

    splits: dict[str, list[str]]  # train / validation / test -> days
    data_versions: dict[str, str] = field(default_factory=dict)
    version_ids: dict[str, str] = field(default_factory=dict)

    @property
    def days(self) -> list[str]:
        return [d for s in SPLITS for d in self.splits.get(s, [])]

    @property
    def label(self) -> str:
        days = self.days
        return f"{days[0]}..{days[-1]}" if days else ""

    def split_of(self, day: str) -> str:
        return next(s for s in SPLITS if day in self.splits.get(s, []))

    def tags(self) -> dict[str, str]:
        return {Tag.WINDOW: self.label, Tag.PARTITIONS: json.dumps(self.splits),
                Tag.DATA_VERSIONS: json.dumps(self.data_versions), Tag.DATA_VERSION_IDS: json.dumps(self.version_ids)}

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> TrainingWindow:
        return cls(json.loads(tags.get(Tag.PARTITIONS) or "{}"), json.loads(tags.get(Tag.DATA_VERSIONS) or "{}"),
                   json.loads(tags.get(Tag.DATA_VERSION_IDS) or "{}"))


@dataclass(frozen=True)
class RetrainTrigger:
    """What started a run: a sensor (for a retrain, with the report record), a schedule or a
    person; its tags go on the run, and a retrain's candidate copies them onto its version."""

    kind: str = "manual"
    reason: str | None = None
    asset: str | None = None
    partition: str | None = None
    storage_id: str | None = None
    run_id: str | None = None
    as_of: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def tags(self) -> dict[str, str]:
        out = {Tag.TRIGGER: self.kind}
        for name in ("reason", "asset", "partition", "storage_id", "run_id"):
            if getattr(self, name) is not None:
                out[Tag.TRIGGER_PREFIX + name] = str(getattr(self, name))
        out.update({Tag.TRIGGER_PREFIX + k: v for k, v in self.extra.items()})
        if self.as_of is not None:
            out[Tag.AS_OF] = self.as_of
        return out

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> RetrainTrigger:
        known = {"reason", "asset", "partition", "storage_id", "run_id"}
        fields_ = {k.removeprefix(Tag.TRIGGER_PREFIX): v for k, v in tags.items() if k.startswith(Tag.TRIGGER_PREFIX)}
        return cls(kind=tags.get(Tag.TRIGGER, "manual"), as_of=tags.get(Tag.AS_OF),
                   extra={k: v for k, v in fields_.items() if k not in known},
                   **{k: v for k, v in fields_.items() if k in known})


@dataclass(frozen=True)
class BuildInfo:
    """Where a model came from: the Dagster run and job, the code and the locked dependencies."""

    dagster_run_id: str
    dagster_job: str
    git_commit: str
    lock_sha256: str
    package: str

    def tags(self) -> dict[str, str]:
        return {Tag.DAGSTER_RUN_ID: self.dagster_run_id, Tag.DAGSTER_JOB: self.dagster_job,
                Tag.DAGSTER_ASSET: "candidate_model", Tag.GIT_COMMIT: self.git_commit,
                Tag.LOCK_SHA256: self.lock_sha256, Tag.PACKAGE: self.package}

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> BuildInfo:
        return cls(tags.get(Tag.DAGSTER_RUN_ID, ""), tags.get(Tag.DAGSTER_JOB, ""), tags.get(Tag.GIT_COMMIT, "unknown"),
                   tags.get(Tag.LOCK_SHA256, "unknown"), tags.get(Tag.PACKAGE, ""))


@dataclass(frozen=True)
class GateVerdict:
    """The promotion gate's decision on a candidate, and every reason behind it."""

    promote: bool
    reasons: list[str]
    overridden: bool = False

    def tags(self, test_roc_auc: float) -> dict[str, str]:
        return {Tag.GATE_DECISION: "promoted" if self.promote else "rejected",
                Tag.GATE_REASONS: json.dumps(self.reasons), Tag.EVAL_TEST_ROC_AUC: f"{test_roc_auc:.6f}"}

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> GateVerdict | None:
        if Tag.GATE_DECISION not in tags:
            return None
        return cls(tags[Tag.GATE_DECISION] == "promoted", json.loads(tags.get(Tag.GATE_REASONS) or "[]"))


@dataclass(frozen=True)
class DeployEvent:
    """One alias move of a version, who made it and why (an audit record on the version).

    `kind`: promoted (champion by the gate), challenger (waiting: approve or shadow), approved
    (champion by a person or the shadow verdict), rejected, expired, dropped (shadow lost),
    superseded (a newer challenger replaced it), rolled_back (champion no more, never again by a
    rollback), restored (champion again by a rollback)."""

    kind: str
    at: str  # UTC, ISO
    by: str
    reason: str
    dagster_run_id: str = ""

    BECAME_CHAMPION = ("promoted", "approved", "restored")

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "at": self.at, "by": self.by, "reason": self.reason, "dagster_run_id": self.dagster_run_id}

    @classmethod
    def parse(cls, tags: Mapping[str, str]) -> tuple[DeployEvent, ...]:
        return tuple(cls(**e) for e in json.loads(tags.get(Tag.DEPLOY_EVENTS) or "[]"))


@dataclass(frozen=True)
class ModelRecord:
    """A registered model version, as the steps and the operator CLIs read it."""

    name: str
    version: str
    run_id: str
    aliases: tuple[str, ...]
    threshold: float
    window: TrainingWindow
    trigger: RetrainTrigger
    build: BuildInfo
    verdict: GateVerdict | None
    evaluation_roc_auc: float | None  # the candidate's test ROC AUC at evaluation
    source: str = ""
    created_ms: int = 0
    events: tuple[DeployEvent, ...] = ()
    challenger_mode: str | None = None
    challenger_since: str | None = None
    model_params: dict = field(default_factory=dict)  # the chosen hyperparameters, training window, calibration
    model_id: str | None = None  # the MLflow logged model the version was registered from (its metrics page)

    @property
    def rolled_back(self) -> DeployEvent | None:
        """The rollback that took this version off, if one did (it is never restored by a rollback)."""
        return next((e for e in reversed(self.events) if e.kind == "rolled_back"), None)

    @property
    def became_champion_by(self) -> str | None:
        """How the version last became champion (promoted, approved, restored), None if never."""
        return next((e.kind for e in reversed(self.events) if e.kind in DeployEvent.BECAME_CHAMPION), None)

    @property
    def champion_since(self) -> str:
        """When the version last became champion ('' if never, as its events say)."""
        return next((e.at for e in reversed(self.events) if e.kind in DeployEvent.BECAME_CHAMPION), "")

    @classmethod
    def from_tags(cls, name: str, version: str, run_id: str, tags: Mapping[str, str], aliases=(),
                  source: str = "", created_ms: int = 0, model_id: str | None = None) -> ModelRecord:
        auc = tags.get(Tag.EVAL_TEST_ROC_AUC)
        return cls(name=name, version=str(version), run_id=run_id, aliases=tuple(aliases or ()),
                   threshold=float(tags.get(Tag.THRESHOLD, 0.5)), window=TrainingWindow.from_tags(tags),
                   trigger=RetrainTrigger.from_tags(tags), build=BuildInfo.from_tags(tags),
                   verdict=GateVerdict.from_tags(tags), evaluation_roc_auc=None if auc is None else float(auc),
                   source=source, created_ms=created_ms, events=DeployEvent.parse(tags),
                   challenger_mode=tags.get(Tag.CHALLENGER_MODE), challenger_since=tags.get(Tag.CHALLENGER_SINCE),
                   model_params=json.loads(tags.get(Tag.MODEL_PARAMS) or "{}"), model_id=model_id)

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"
