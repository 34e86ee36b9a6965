"""The composition root: the one place that picks a backend, stores and a registry for a project
and its workspace, and opens them for reading or for an apply.

Everything else receives these objects; nothing else names ``DuckDBBackend`` or ``LocalRegistry``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.backends import load, selected
from engine.errors import UsageError

if TYPE_CHECKING:
    from engine.backends.base import Backend, Catalog
    from engine.model.objects import Project, RegistrySettings
    from engine.registry.base import ModelRegistry
    from engine.state.workspace import Workspace
    from engine.store.offline import TableOfflineStore


@dataclass(frozen=True)
class Stores:
    """A backend and what lives on it: the offline store and the model registry."""

    backend: "Backend"
    offline: "TableOfflineStore"
    registry: "ModelRegistry"
    # The content fingerprints of the published view versions models were trained on, by
    # (table, committed lake version): models on one view hash its rows once per run.
    view_hashes: dict[tuple[str, int], str] = field(default_factory=dict, compare=False, repr=False)


def stores(backend: "Backend", workspace: "Workspace", registry: "RegistrySettings | None" = None) -> Stores:
    from engine.store.offline import TableOfflineStore

    return Stores(backend, TableOfflineStore(backend), open_registry(registry, backend, workspace))


def open_registry(settings: "RegistrySettings | None", backend: "Backend", workspace: "Workspace") -> "ModelRegistry":
    """The registry the spec names (``registry:``): the workspace's own by default, or an MLflow
    model registry (its tracking URI from the spec or ``MLFLOW_TRACKING_URI``)."""
    import os

    from engine.registry.base import load_registry

    kind = settings.kind if settings is not None else "local"
    cls = load_registry(kind)
    if kind == "local":
        return cls(backend.catalog, workspace.models_dir)
    uri = settings.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise UsageError("registry: {kind: mlflow} needs a tracking server: set registry.tracking_uri in the spec or MLFLOW_TRACKING_URI")
    return cls(uri, experiment=settings.experiment, namespace=settings.namespace, cache_dir=workspace.models_dir)


def open_backend(
    workspace: "Workspace",
    *,
    sandboxed: bool = False,
    memory_limit: str | None = None,
    threads: int | None = None,
    spill: bool = True,
    backend: str | None = None,
    project: "Project | None" = None,
) -> "Backend":
    """The workspace's backend, read-write (the caller holds the project lock): compute over the
    workspace's lake, with its catalog. ``backend`` None: ``$ENGINE_BACKEND`` (set by ``--backend``),
    else the spec's ``backend.kind``, else DuckDB; the spec's settings go to the backend it names."""
    from engine.backends.catalog import SqliteCatalog
    from engine.backends.lake import Lake

    cls = load(_chosen(backend, project))
    workspace.check_format()
    catalog = SqliteCatalog.open(workspace.catalog)
    return cls.open(
        catalog,
        Lake(workspace.tables_dir, catalog),
        sandboxed=sandboxed,
        memory_limit=memory_limit,
        threads=threads,
        temp_directory=workspace.tmp_dir if spill else None,
        **_spec_options(cls.name, project),
    )


def _chosen(backend: str | None, project: "Project | None") -> str:
    return selected(backend, project.backend.kind if project is not None else None)


def _spec_options(name: str, project: "Project | None") -> dict[str, object]:
    """The spec's ``backend:`` settings, for the backend they were written for only."""
    if project is None or project.backend.kind != name:
        return {}
    options = project.backend.options()
    return {"spec_options": options} if options else {}


@contextmanager
def reading(
    workspace: "Workspace", *, backend: str | None = None, registry: "RegistrySettings | None" = None, project: "Project | None" = None
) -> Iterator[Stores]:
    """Read-only stores over the workspace's last committed state; never blocked by an apply.
    ``project``: its ``registry:`` and ``backend:`` settings apply."""
    from engine.backends.catalog import SqliteCatalog
    from engine.backends.lake import Lake

    workspace.check_format()
    if not workspace.exists():
        raise UsageError(f"no workspace at {workspace.root}: run `engine apply` first")
    catalog = SqliteCatalog.open_read_only(workspace.catalog)
    cls = load(_chosen(backend, project))
    opened = cls.open(catalog, Lake(workspace.tables_dir, catalog, read_only=True), **_spec_options(cls.name, project))
    try:
        yield stores(opened, workspace, registry or (project.registry if project is not None else None))
    finally:
        opened.close()


@contextmanager
def catalog_reading(workspace: "Workspace") -> Iterator["Catalog"]:
    """The workspace's catalog alone, read-only (no compute engine opened): what planning needs."""
    from engine.backends.catalog import SqliteCatalog

    workspace.check_format()
    catalog = SqliteCatalog.open_read_only(workspace.catalog)
    try:
        yield catalog
    finally:
        catalog.close()


@contextmanager
def writing(
    workspace: "Workspace", *, run_id: str | None = None, registry: "RegistrySettings | None" = None, project: "Project | None" = None, **kwargs
) -> Iterator[Stores]:
    """Read-write stores over the workspace (the caller holds the project lock); the lake stamps
    its commits with ``run_id``. ``project``: its ``registry:`` and ``backend:`` settings apply."""
    opened = open_backend(workspace, project=project, **kwargs)
    registry = registry or (project.registry if project is not None else None)
    if opened.lake is not None:
        opened.lake.run_id = run_id
    try:
        yield stores(opened, workspace, registry)
    finally:
        opened.close()
