"""The model registry's index tables (``_engine.model_versions``, ``_engine.model_aliases``).

Owns their DDL and queries, in SQLite SQL through a ``Catalog`` (``engine.backends.catalog``); the
local registry (``engine.registry.local``) decides what goes in them, the online snapshot reads
them. Times are stored as ISO-8601 UTC text; the manifest is JSON text.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.backends.base import Catalog
from engine.backends.catalog import utc_text

_DDL = [
    """CREATE TABLE IF NOT EXISTS _engine.model_versions (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        manifest TEXT NOT NULL,
        manifest_sha256 TEXT NOT NULL,
        artifact_file TEXT NOT NULL,
        artifact_format TEXT NOT NULL,
        artifact_sha256 TEXT NOT NULL,
        artifact_size INTEGER NOT NULL,
        estimator_class TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (name, version),
        UNIQUE (name, fingerprint))""",
    """CREATE TABLE IF NOT EXISTS _engine.model_aliases (
        name TEXT NOT NULL,
        alias TEXT NOT NULL,
        version INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (name, alias))""",
]
COLUMNS = ("name", "version", "fingerprint", "manifest", "manifest_sha256", "artifact_file", "artifact_format", "artifact_sha256", "artifact_size", "estimator_class")


def has_index(catalog: Catalog) -> bool:
    return catalog.has_table("_engine", "model_versions") and catalog.has_table("_engine", "model_aliases")


def ensure_schema(catalog: Catalog) -> None:
    """Create the index tables if they do not exist (idempotent)."""
    for statement in _DDL:
        catalog.execute(statement)


def version_rows(catalog: Catalog, name: str | None = None) -> list[dict[str, Any]]:
    """Index rows (``COLUMNS``), of one model or all, ordered by name and version."""
    if not has_index(catalog):
        return []
    where, params = (" WHERE name = ?", [name]) if name is not None else ("", [])
    return catalog.query_dicts(f"SELECT {', '.join(COLUMNS)} FROM _engine.model_versions{where} ORDER BY name, version", params)


def aliases(catalog: Catalog) -> list[tuple[str, str, int]]:
    """(model, alias, version) rows, ordered by model and alias."""
    if not has_index(catalog):
        return []
    return [(r[0], r[1], r[2]) for r in catalog.query("SELECT name, alias, version FROM _engine.model_aliases ORDER BY name, alias")]


def names(catalog: Catalog) -> list[str]:
    if not has_index(catalog):
        return []
    return [r[0] for r in catalog.query("SELECT DISTINCT name FROM _engine.model_versions ORDER BY name")]


def highest_version(catalog: Catalog, name: str) -> int:
    if not has_index(catalog):
        return 0
    return catalog.query("SELECT max(version) FROM _engine.model_versions WHERE name = ?", [name])[0][0] or 0


def insert_version(catalog: Catalog, row: dict[str, Any], created_at: datetime) -> None:
    values = [row[c] for c in COLUMNS]
    marks = ", ".join("?" for _ in range(len(COLUMNS) + 1))
    catalog.execute(f"INSERT INTO _engine.model_versions ({', '.join(COLUMNS)}, created_at) VALUES ({marks})", [*values, utc_text(created_at)])


def set_alias(catalog: Catalog, name: str, alias: str, version: int, updated_at: datetime) -> None:
    catalog.execute(
        "INSERT OR REPLACE INTO _engine.model_aliases (name, alias, version, updated_at) VALUES (?, ?, ?, ?)",
        [name, alias, version, utc_text(updated_at)],
    )
