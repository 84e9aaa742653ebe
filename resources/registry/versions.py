"""Registered versions, their aliases and the events of every alias move.

Registry aliases, not stages: `champion` is the deployed version, `previous` the one a rollback
goes back to, `challenger` a candidate that passed the gate and waits (FLIGHTS_PROMOTION_MODE
approve or shadow). Every alias move is recorded on the version (`deploy.events`: who, why,
which Dagster run). What the pipeline records on a version goes through the typed records of
resources/records.py."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

from resources.records import DeployEvent, GateVerdict, ModelRecord, Tag
from resources.registry.store import CHALLENGER, CHAMPION, PREVIOUS, DeploymentRefused, RegistryStore, RegistryUnavailable


class VersionsAndAliases(RegistryStore):
    """Registered versions, aliases, alias moves and their events."""

    def version_by_alias(self, alias: str):
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(self.model_name, alias)
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "not found" in str(exc).lower():
                return None
            self.raise_refused(exc)
            raise RegistryUnavailable(f"MLflow registry {self.display_tracking_uri}: {exc}") from exc

    @staticmethod
    def _record(mv) -> ModelRecord:
        return ModelRecord.from_tags(mv.name, mv.version, mv.run_id, dict(mv.tags), aliases=mv.aliases,
                                     source=mv.source, created_ms=mv.creation_timestamp,
                                     model_id=mv.model_id or _logged_model_id(mv.source))

    def by_alias(self, alias: str) -> ModelRecord | None:
        """The version holding `alias`, or None."""
        mv = self.version_by_alias(alias)
        return None if mv is None else self._record(mv)

    def champion(self) -> ModelRecord | None:
        return self.by_alias(CHAMPION)

    def record(self, version: str) -> ModelRecord:
        """A registered version by number, or by alias (`champion`)."""
        if not str(version).isdigit():
            found = self.by_alias(str(version))
            if found is None:
                raise LookupError(f"no version of {self.model_name} holds the alias `{version}`")
            return found
        return self._record(self.client.get_model_version(self.model_name, str(version)))

    def versions(self) -> list[ModelRecord]:
        """Every registered version, oldest first."""
        found = self.client.search_model_versions(f"name='{self.model_name}'")
        return sorted((self._record(mv) for mv in found), key=lambda r: int(r.version))

    def set_version_tags(self, version: str, tags: dict[str, str]) -> None:
        client = self.client
        for key, value in tags.items():
            client.set_model_version_tag(self.model_name, str(version), key, value)

    def record_verdict(self, version: str, verdict: GateVerdict, test_roc_auc: float) -> None:
        self.set_version_tags(version, verdict.tags(test_roc_auc))

    def _log_event(self, version: str, kind: str, by: str, reason: str, dagster_run_id: str = "") -> None:
        record = self.record(version)
        event = DeployEvent(kind, datetime.now(UTC).isoformat(timespec="seconds"), by, reason, dagster_run_id)
        events = [e.as_dict() for e in record.events] + [event.as_dict()]
        self.set_version_tags(version, {Tag.DEPLOY_EVENTS: json.dumps(events)})

    def promote(self, version: str, *, by: str = "gate", reason: str = "", dagster_run_id: str = "",
                kind: str = "promoted") -> str | None:
        """Move `champion` to `version`; the old champion keeps `previous`. Returns the old one.
        Repeating it (a retried step) moves nothing and records the event once."""
        client = self.client
        old = self.version_by_alias(CHAMPION)
        if old is not None and str(old.version) == str(version):  # already done (a retried step)
            if not self.record(version).champion_since:
                self._log_event(version, kind, by, reason, dagster_run_id)
            previous = self.version_by_alias(PREVIOUS)
            return None if previous is None else str(previous.version)
        if old is not None:
            client.set_registered_model_alias(self.model_name, PREVIOUS, str(old.version))
        client.set_registered_model_alias(self.model_name, CHAMPION, str(version))  # the move
        self._log_event(version, kind, by, reason, dagster_run_id)
        return None if old is None else str(old.version)

    def challenger(self) -> ModelRecord | None:
        return self.by_alias(CHALLENGER)

    def set_challenger(self, version: str, mode: str, since_day: str, *, by: str, reason: str,
                       dagster_run_id: str = "") -> str | None:
        """`challenger` to `version`, waiting for a person (`approve`) or its shadow days
        (`shadow`); a challenger already waiting is superseded. Returns the superseded one."""
        old = self.challenger()
        if old is not None and old.version == str(version):
            return None  # already done (a retried step)
        if old is not None:
            self._end_challenger(old.version, "superseded", by, f"replaced by v{version}", dagster_run_id)
        self.set_version_tags(version, {Tag.CHALLENGER_MODE: mode, Tag.CHALLENGER_SINCE: since_day})
        self.client.set_registered_model_alias(self.model_name, CHALLENGER, str(version))
        self._log_event(version, "challenger", by, f"{mode}: {reason}", dagster_run_id)
        return None if old is None else old.version

    def _end_challenger(self, version: str, kind: str | None, by: str, reason: str, dagster_run_id: str) -> None:
        client = self.client
        if (holder := self.version_by_alias(CHALLENGER)) is not None and str(holder.version) == str(version):
            client.delete_registered_model_alias(self.model_name, CHALLENGER)
        for key in (Tag.CHALLENGER_MODE, Tag.CHALLENGER_SINCE):
            with contextlib.suppress(Exception):
                client.delete_model_version_tag(self.model_name, str(version), key)
        if kind is not None:
            self._log_event(version, kind, by, reason, dagster_run_id)

    def _waiting_challenger(self, expected: str | None) -> ModelRecord:
        waiting = self.challenger()
        if waiting is None:
            raise DeploymentRefused(f"no challenger waits: no version of {self.model_name} holds the alias "
                                    f"`{CHALLENGER}` (nothing was moved)")
        if expected and str(expected).removeprefix("v") != waiting.version:
            raise DeploymentRefused(f"v{str(expected).removeprefix('v')} is not the challenger: v{waiting.version} is "
                                    "(nothing was moved)")
        return waiting

    def _deployable(self, record: ModelRecord, role: str) -> None:
        """Refuse a version the scoring server could not run (no package, artifacts missing)."""
        if not record.build.package:
            raise DeploymentRefused(f"{role} {record.label} was registered before the served_model package and "
                                    "cannot be served (nothing was moved)")
        try:
            self.load(record.version)
        except RuntimeError as exc:
            raise DeploymentRefused(f"{role} {record.label} cannot be deployed: {exc} (nothing was moved)") from exc

    def approve_challenger(self, *, by: str, reason: str, dagster_run_id: str = "", expected: str | None = None,
                           ) -> tuple[str, str | None]:
        """The waiting challenger becomes the champion (the old one keeps `previous`); returns
        (new champion, old champion)."""
        _needs_reason(by, reason)
        waiting = self._waiting_challenger(expected)
        self._deployable(waiting, "challenger")
        old = self.promote(waiting.version, by=by, reason=reason, dagster_run_id=dagster_run_id, kind="approved")
        self._end_challenger(waiting.version, None, by, reason, dagster_run_id)  # the approval is its event
        return waiting.version, old

    def reject_challenger(self, *, by: str, reason: str, dagster_run_id: str = "", expected: str | None = None,
                          kind: str = "rejected") -> str:
        """The waiting challenger loses its alias (`rejected`, `expired` or `dropped`)."""
        _needs_reason(by, reason)
        waiting = self._waiting_challenger(expected)
        self._end_challenger(waiting.version, kind, by, reason, dagster_run_id)
        return waiting.version

    def rollback(self, target: str | None = None, *, by: str = "operator", reason: str = "",
                 dagster_run_id: str = "", expected_current: str | None = None) -> tuple[str, str, str | None]:
        """`champion` back to `target` (default: the `previous` version). The version rolled back
        from is marked and never restored by a rollback; `previous` moves to the newest other
        version that was champion before and was not rolled back (or is removed). Returns (rolled
        back from, now champion, now previous)."""
        _needs_reason(by, reason)
        current = self.champion()
        if current is None:
            raise DeploymentRefused("no champion to roll back (nothing was moved)")
        if expected_current and str(expected_current).removeprefix("v") != current.version:
            raise DeploymentRefused(f"v{str(expected_current).removeprefix('v')} is not the champion any more: "
                                    f"{current.label} is (nothing was moved)")
        if target is None or str(target).strip() in ("", PREVIOUS):
            to = self.by_alias(PREVIOUS)
            if to is None:
                raise DeploymentRefused(f"no `{PREVIOUS}` version to roll back to: name one (target_version) "
                                        "(nothing was moved)")
        else:
            to = self._existing(str(target).strip().removeprefix("v"))
        if to.version == current.version:
            raise DeploymentRefused(f"{to.label} is the champion already: nothing to roll back to (nothing was moved)")
        if (event := to.rolled_back) is not None:
            raise DeploymentRefused(f"{to.label} was rolled back on {event.at} by {event.by} ({event.reason}): a rollback "
                                    "never restores it; choose another version (nothing was moved)")
        self._deployable(to, "rollback target")
        client = self.client
        client.set_registered_model_alias(self.model_name, CHAMPION, to.version)  # the move
        self._log_event(to.version, "restored", by, f"rollback from v{current.version}: {reason}", dagster_run_id)
        self._log_event(current.version, "rolled_back", by, reason, dagster_run_id)
        earlier = [r for r in self.versions() if r.champion_since and r.rolled_back is None
                   and r.version not in (to.version, current.version)]
        previous = max(earlier, key=lambda r: r.champion_since, default=None)
        if previous is not None:
            client.set_registered_model_alias(self.model_name, PREVIOUS, previous.version)
        elif self.version_by_alias(PREVIOUS) is not None:
            client.delete_registered_model_alias(self.model_name, PREVIOUS)
        return current.version, to.version, None if previous is None else previous.version

    def _existing(self, version: str) -> ModelRecord:
        known = {r.version: r for r in self.versions()}
        if version not in known:
            listed = ", ".join(list(known)[-10:]) or "none"
            raise DeploymentRefused(f"version {version!r} of {self.model_name} does not exist (registered: {listed}); "
                                    "nothing was moved")
        return known[version]


def _needs_reason(by: str, reason: str) -> None:
    if not (by or "").strip() or not (reason or "").strip():
        raise DeploymentRefused("an alias move needs who asks for it and why (approver / requested_by and reason); "
                                "nothing was moved")


def _logged_model_id(source: str | None) -> str | None:
    """The logged model a version was registered from, by its source `models:/<model id>` (the
    SQL store leaves the version's own `model_id` empty)."""
    tail = (source or "").removeprefix("models:/")
    return tail if source and source.startswith("models:/m-") and "/" not in tail else None
