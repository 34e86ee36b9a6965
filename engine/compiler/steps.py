"""Step objects and the plan: frozen data read by the executor and by the printer alike.

Owns no connections and no data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from engine.model import objects as m
from engine.model.objects import ObjectId

# What a step works on: the handler never looks its object up again by name.
Payload = m.Source | m.FeatureGroup | m.FeatureView | m.Model | m.InferenceJob


class StepKind(str, Enum):
    INGEST_SOURCE = "ingest_source"
    BUILD_FEATURE_GROUP = "build_feature_group"
    BUILD_FEATURE_VIEW = "build_feature_view"
    TRAIN_MODEL = "train_model"
    SCORE_BATCH = "score_batch"
    SCORE_STREAM = "score_stream"


class Action(str, Enum):
    RUN = "run"
    SKIP = "skip"


class Reason(str, Enum):
    NEW = "new"
    CHANGED = "changed"
    UPSTREAM_CHANGED = "upstream changed"
    DATA_CHANGED = "data changed"
    NEW_DATA = "new data (incremental)"  # only new files / new input rows are processed
    FULL_REFRESH = "full refresh"
    FORCED = "forced"
    UNCHANGED = "unchanged"
    EXCLUDED = "excluded (has changes)"
    UPSTREAM_EXCLUDED = "upstream excluded"  # it reads an excluded step that has changes
    RANGE_MOVED = "range moved"  # range: {last: ...} now ends at a later day (hour, ...)
    BACKFILL = "backfill"  # --start/--end: a batch job scores that range once


@dataclass(frozen=True)
class Step:
    """One unit of work in the DAG."""

    id: ObjectId
    kind: StepKind
    depends_on: tuple[str, ...]  # keys of the steps it reads
    definition_fingerprint: str  # the definition alone (formatting and descriptions excluded)
    fingerprint: str  # definition + upstream fingerprints + input data
    after: tuple[str, ...] = ()  # ordering only: run after these when they are planned too
    payload: Payload | None = field(default=None, compare=False, repr=False)
    view_fingerprint: str | None = None  # scoring steps: the fingerprint of the view they read
    window: tuple[str, str] | None = None  # batch scoring: the resolved [start, end) (a relative range, or a backfill)

    @property
    def key(self) -> str:
        return str(self.id)


@dataclass(frozen=True)
class PlannedStep:
    step: Step
    action: Action
    reason: Reason

    def as_dict(self) -> dict[str, str]:
        out = {"id": self.step.key, "kind": self.step.kind.value, "action": self.action.value, "reason": self.reason.value}
        if self.step.window is not None:
            out["range"] = list(self.step.window)
        return out


@dataclass(frozen=True)
class Plan:
    project: str
    steps: tuple[PlannedStep, ...]  # dependencies first
    blocked: tuple[str, ...] = ()  # breaking changes found before running: apply refuses (exit 3)
    versions: tuple[str, ...] = ()  # versioning: auto — the new versions this plan takes instead of refusing
    libraries: tuple[str, ...] = ()  # declared feature libraries installed at another version since the last apply
    changes: tuple = ()  # engine.compiler.changes.Change per object whose definition changed since it last ran

    @property
    def to_run(self) -> tuple[PlannedStep, ...]:
        return tuple(s for s in self.steps if s.action is Action.RUN)

    @property
    def has_changes(self) -> bool:
        return bool(self.to_run)

    def as_dict(self) -> dict[str, object]:
        return {"project": self.project, "steps": [s.as_dict() for s in self.steps], "changes": len(self.to_run), "breaking": list(self.blocked), "versions": list(self.versions), "libraries": list(self.libraries), "report": [c.as_dict() for c in self.changes]}
