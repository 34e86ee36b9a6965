"""What environments (``engine.runtime.environments``) do to workspace catalogs, in SQLite SQL.

Owns the statements: a consistent copy of a catalog (SQLite's backup API), the digest of what a
catalog has published, its tables' committed versions, and replacing one catalog's metadata tables
with another's inside the caller's transaction. Must not know what the metadata means.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from pathlib import Path

from engine.backends.base import Catalog

SOURCE = "envsrc"  # the schema another workspace's catalog is attached as


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True)


def published_token(path: Path) -> str:
    """A digest of what the catalog at ``path`` has published (every table's committed version,
    every model version and alias): it changes with every apply that publishes anything."""
    if not Path(path).is_file():
        return "empty"
    con = _read_only(path)
    try:
        parts = []
        for sql in (
            "SELECT schema_name, table_name, version FROM tables ORDER BY 1, 2",
            "SELECT name, version, fingerprint FROM model_versions ORDER BY 1, 2",
            "SELECT name, alias, version FROM model_aliases ORDER BY 1, 2",
        ):
            try:
                parts.append(con.execute(sql).fetchall())
            except sqlite3.OperationalError:  # a table a workspace does not have yet
                parts.append([])
    finally:
        con.close()
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def table_versions(path: Path) -> dict[str, int]:
    """``schema.table`` -> committed version, of the catalog at ``path`` ({} when none)."""
    if not Path(path).is_file():
        return {}
    con = _read_only(path)
    try:
        return {f"{s}.{n}": int(v) for s, n, v in con.execute("SELECT schema_name, table_name, version FROM tables")}
    except sqlite3.OperationalError:
        return {}
    finally:
        con.close()


def backup(src: Path, dst: Path) -> None:
    """``dst`` as a consistent copy of the catalog at ``src`` (whatever a reader or the WAL holds)."""
    source, target = _read_only(src), sqlite3.connect(dst)
    try:
        source.backup(target)
        target.execute("PRAGMA journal_mode = WAL")
    finally:
        source.close()
        target.close()


def attach(catalog: Catalog, path: Path) -> list[str]:
    """Attach the catalog at ``path`` read-only as ``envsrc`` (outside any transaction); the
    names of its tables."""
    catalog.execute(f"ATTACH DATABASE ? AS {SOURCE}", [f"{Path(path).absolute().as_uri()}?mode=ro"])
    return [r[0] for r in catalog.query(f"SELECT name FROM {SOURCE}.sqlite_master WHERE type = 'table'")]


def replace_table(catalog: Catalog, table: str) -> None:
    """``_engine.<table>`` := the attached catalog's rows (created first if this one lacks it)."""
    columns = [r[1] for r in catalog.query(f'PRAGMA {SOURCE}.table_info("{table}")')]
    if not catalog.has_table("_engine", table):  # a kind of record this workspace never made yet
        sql = catalog.query(f"SELECT sql FROM {SOURCE}.sqlite_master WHERE type = 'table' AND name = ?", [table])[0][0]
        catalog.execute(re.sub(r"^CREATE TABLE (IF NOT EXISTS )?[^\s(]+", f'CREATE TABLE _engine."{table}"', sql, count=1))
    cols = ", ".join(f'"{c}"' for c in columns)
    catalog.execute(f'DELETE FROM _engine."{table}"')
    catalog.execute(f'INSERT INTO _engine."{table}" ({cols}) SELECT {cols} FROM {SOURCE}."{table}"')


def view_summaries(catalog: Catalog) -> list[dict]:
    """Every materialised view version with its layout, rows and fingerprint."""
    if not catalog.has_table("_engine", "feature_views"):
        return []
    return catalog.query_dicts("SELECT name, version, layout, row_count, fingerprint FROM _engine.feature_views ORDER BY name, version")


__all__ = ["attach", "backup", "published_token", "replace_table", "table_versions", "view_summaries"]
