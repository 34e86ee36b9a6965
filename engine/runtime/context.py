"""What a run's step handlers share: the stores, the checked project, the run id and options."""

from __future__ import annotations

from dataclasses import dataclass

from engine.compiler.semantics import CheckedProject
from engine.session import Stores
from engine.sql.ops import Relation
from engine.state.workspace import Workspace


@dataclass(frozen=True)
class RunOptions:
    sql_timeout_s: float | None = 600.0
    memory_limit: str | None = None
    threads: int | None = None


def source_relation(name: str) -> Relation:
    return Relation("src", name)


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
        project = self.checked.project
        if name in project.sources:
            return source_relation(name)
        fg = project.feature_groups[name]
        return self.stores.offline.relation(fg.name, fg.version)
