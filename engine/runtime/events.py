"""Progress events emitted while a plan runs; only the CLI turns them into output."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum


class StepStatus(str, Enum):
    RAN = "ran"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class StepStarted:
    step_id: str
    reason: str


@dataclass(frozen=True)
class StepFinished:
    step_id: str
    status: StepStatus
    reason: str
    seconds: float = 0.0
    rows: int | None = None
    message: str | None = None
    output: str | None = None  # what the step wrote: a table, a file, a model version
    metrics: tuple[tuple[str, float | None], ...] = ()  # a trained model's test metrics
    notes: tuple[str, ...] = ()  # e.g. an alias its promotion gate kept on the previous version


@dataclass(frozen=True)
class RunNotice:
    """Something the user should know that is not a step (e.g. an interrupted earlier run)."""

    message: str


@dataclass(frozen=True)
class PlanMade:
    """The plan an apply is about to run, made under the project lock (so ``N/M`` can be shown)."""

    plan: object  # engine.compiler.steps.Plan


Event = StepStarted | StepFinished | RunNotice | PlanMade
Listener = Callable[[Event], None]


def ignore(_: Event) -> None:
    """The default listener."""


@dataclass
class RunResult:
    run_id: str
    steps: list[StepFinished] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    @property
    def ran(self) -> int:
        return sum(1 for s in self.steps if s.status is StepStatus.RAN)

    def as_dict(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "steps": [
                {"id": s.step_id, "status": s.status.value, "reason": s.reason, "seconds": round(s.seconds, 3), "rows": s.rows, "message": s.message, "notes": list(s.notes)}
                for s in self.steps
            ],
            "notices": self.notices,
        }
