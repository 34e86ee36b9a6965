"""The composition root: the one place that picks a backend, stores and a registry for a project
and its workspace, and opens them for reading or for an apply.

Everything else receives these objects; nothing else names ``DuckDBBackend`` or ``LocalRegistry``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.backends import DEFAULT, load
from engine.errors import UsageError

if TYPE_CHECKING:
    from engine.backends.base import Backend
    from engine.registry.local import LocalRegistry
    from engine.state.workspace import Workspace
    from engine.store.offline import TableOfflineStore


@dataclass(frozen=True)
class Stores:
    """A backend and what lives on it: the offline store and the model registry."""

    backend: "Backend"
    offline: "TableOfflineStore"
    registry: "LocalRegistry"


def stores(backend: "Backend", workspace: "Workspace") -> Stores:
    from engine.registry.local import LocalRegistry
    from engine.store.offline import TableOfflineStore

    return Stores(backend, TableOfflineStore(backend), LocalRegistry(backend.catalog, workspace.models_dir))


def open_backend(
    workspace: "Workspace",
    *,
    sandboxed: bool = False,
    memory_limit: str | None = None,
    threads: int | None = None,
    spill: bool = True,
    backend: str = DEFAULT,
) -> "Backend":
    """The workspace's backend, read-write (the caller holds the project lock): compute over the
    workspace's lake, with its catalog."""
    from engine.backends.catalog import SqliteCatalog
    from engine.backends.lake import Lake

    cls = load(backend)
    workspace.check_format()
    catalog = SqliteCatalog.open(workspace.catalog)
    return cls.open(
        catalog,
        Lake(workspace.tables_dir, catalog),
        sandboxed=sandboxed,
        memory_limit=memory_limit,
        threads=threads,
        temp_directory=workspace.tmp_dir if spill else None,
    )


@contextmanager
def reading(workspace: "Workspace", *, backend: str = DEFAULT) -> Iterator[Stores]:
    """Read-only stores over the workspace's last committed state; never blocked by an apply."""
    from engine.backends.catalog import SqliteCatalog
    from engine.backends.lake import Lake

    workspace.check_format()
    if not workspace.exists():
        raise UsageError(f"no workspace at {workspace.root}: run `engine apply` first")
    catalog = SqliteCatalog.open_read_only(workspace.catalog)
    opened = load(backend).open(catalog, Lake(workspace.tables_dir, catalog, read_only=True))
    try:
        yield stores(opened, workspace)
    finally:
        opened.close()


@contextmanager
def writing(workspace: "Workspace", *, run_id: str | None = None, **kwargs) -> Iterator[Stores]:
    """Read-write stores over the workspace (the caller holds the project lock); the lake stamps
    its commits with ``run_id``."""
    opened = open_backend(workspace, **kwargs)
    if opened.lake is not None:
        opened.lake.run_id = run_id
    try:
        yield stores(opened, workspace)
    finally:
        opened.close()
