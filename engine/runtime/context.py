"""What a run's step handlers share: the stores, the checked project, the run id and options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.compiler.semantics import CheckedProject
from engine.session import Stores
from engine.sql.ops import Relation
from engine.state.workspace import Workspace
from engine.store.offline import input_relation, source_relation  # noqa: F401 (source_relation re-exported)


@dataclass(frozen=True)
class RunOptions:
    sql_timeout_s: float | None = 600.0
    memory_limit: str | None = None
    threads: int | None = None
    allow_code_drift: bool = False  # score a pinned model version whose on-demand function code changed
    output_root: Path | None = None  # an environment's run: job files go here (same relative path), not into the project




@dataclass(frozen=True)
class StepOutcome:
    """What a handler reports: rows produced; for models and scoring, what the user can use next
    (a model version, a predictions file or table) and a trained model's test metrics."""

    rows: int | None
    output: str | None = None
    metrics: tuple[tuple[str, float | None], ...] = ()
    reason: str | None = None  # why it ran, when the handler found out more than the plan knew
    notes: tuple[str, ...] = ()  # what the user should know about the outcome (an alias a gate held)


@dataclass
class RunContext:
    """What every step handler gets: the run's stores and settings."""

    stores: Stores
    checked: CheckedProject
    run_id: str
    options: RunOptions
    workspace: Workspace

    @property
    def backend(self):
        return self.stores.backend

    def relation_of(self, name: str) -> Relation:
        """The physical relation of a source or of a feature group's current version."""
        return input_relation(self.checked.project, self.stores.offline, name)
