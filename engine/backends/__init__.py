"""Compute backends behind one protocol (``engine.backends.base.Backend``).

A backend is named in ``BACKENDS`` and imported only when chosen, so ``engine validate`` loads no
engine library: ``capabilities(name)`` reads the class's flags without opening anything.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from engine.errors import UsageError, did_you_mean

if TYPE_CHECKING:
    from engine.backends.base import Backend, Capabilities

DEFAULT = "duckdb"
BACKENDS: dict[str, str] = {
    "duckdb": "engine.backends.duckdb.backend:DuckDBBackend",
    "spark": "engine.backends.spark.backend:SparkBackend",  # pip install 'engine[spark]' and Java 17+
}


ENVIRONMENT = "ENGINE_BACKEND"  # names the backend when neither the CLI nor the caller does


def selected(name: str | None = None, spec: str | None = None) -> str:
    """The backend to use: ``name`` (``--backend``), else ``$ENGINE_BACKEND``, else ``spec`` (the
    project's ``backend.kind``), else DuckDB."""
    import os

    return name or os.environ.get(ENVIRONMENT) or spec or DEFAULT


def load(name: str = DEFAULT) -> "type[Backend]":
    """The backend class registered as ``name``; UsageError (exit 2) for an unknown one."""
    if name not in BACKENDS:
        hint = did_you_mean(name, list(BACKENDS))
        raise UsageError(f"unknown backend '{name}'{f' ({hint})' if hint else ''}; known backends: {', '.join(sorted(BACKENDS))}")
    module, _, attr = BACKENDS[name].partition(":")
    return getattr(import_module(module), attr)


def capabilities(name: str = DEFAULT) -> "Capabilities":
    """What backend ``name`` can do (no connection is opened, no engine library imported)."""
    return load(name).capabilities
