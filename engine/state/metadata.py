"""The ``_engine`` metadata schema in the workspace database: step fingerprints, runs, and
published feature-group versions. Owns its DDL and queries; must not touch user tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine.compiler.planner import StoredStep

SCHEMAS = ("_engine", "src", "offline", "online", "staging", "views", "training")

_DDL = [
    *(f"CREATE SCHEMA IF NOT EXISTS {s}" for s in SCHEMAS),
    """CREATE TABLE IF NOT EXISTS _engine.steps (
        step_id VARCHAR PRIMARY KEY,
        definition_fingerprint VARCHAR NOT NULL,
        fingerprint VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS _engine.runs (
        run_id VARCHAR PRIMARY KEY,
        started_at TIMESTAMPTZ NOT NULL,
        finished_at TIMESTAMPTZ,
        status VARCHAR NOT NULL,
        summary JSON)""",
    """CREATE TABLE IF NOT EXISTS _engine.feature_groups (
        name VARCHAR NOT NULL,
        version INTEGER NOT NULL,
        offline_table VARCHAR NOT NULL,
        online_table VARCHAR,
        primary_key JSON NOT NULL,
        event_time VARCHAR,
        columns JSON NOT NULL,
        fitted JSON,
        stats JSON,
        row_count BIGINT NOT NULL,
        fingerprint VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL,
        published_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (name, version))""",
    """CREATE TABLE IF NOT EXISTS _engine.feature_views (
        name VARCHAR NOT NULL,
        version INTEGER NOT NULL,
        table_name VARCHAR NOT NULL,
        layout JSON NOT NULL,
        row_count BIGINT NOT NULL,
        fingerprint VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL,
        published_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (name, version))""",
    """CREATE TABLE IF NOT EXISTS _engine.training_datasets (
        name VARCHAR PRIMARY KEY,
        model VARCHAR NOT NULL,
        feature_view VARCHAR NOT NULL,
        feature_view_version INTEGER NOT NULL,
        table_name VARCHAR NOT NULL,
        fingerprint VARCHAR NOT NULL,
        split JSON NOT NULL,
        rows JSON NOT NULL,
        run_id VARCHAR NOT NULL,
        created_at TIMESTAMPTZ NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS _engine.rejected_rows (
        run_id VARCHAR NOT NULL,
        source VARCHAR NOT NULL,
        file VARCHAR,
        line BIGINT,
        column_name VARCHAR,
        error_type VARCHAR,
        csv_line VARCHAR,
        message VARCHAR,
        rejected_at TIMESTAMPTZ NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS _engine.feature_group_writes (
        run_id VARCHAR NOT NULL,
        name VARCHAR NOT NULL,
        version INTEGER NOT NULL,
        rows_written BIGINT NOT NULL,
        row_count BIGINT NOT NULL,
        stats JSON,
        written_at TIMESTAMPTZ NOT NULL)""",
    # inference (engine.serving): predictions tables live in their own schema; one watermark row
    # per streaming job, written in the same transaction as the rows it appends.
    "CREATE SCHEMA IF NOT EXISTS predictions",
    """CREATE TABLE IF NOT EXISTS _engine.stream_watermarks (
        job VARCHAR PRIMARY KEY,
        runs BIGINT NOT NULL,
        rows_scored BIGINT NOT NULL,
        last_run_id VARCHAR NOT NULL,
        last_event_time TIMESTAMPTZ,
        updated_at TIMESTAMPTZ NOT NULL)""",
]


@dataclass(frozen=True)
class FeatureGroupVersion:
    """A published feature-group version as the workspace records it."""

    name: str
    version: int
    offline_table: str
    online_table: str | None
    primary_key: tuple[str, ...]
    event_time: str | None
    columns: dict[str, str]
    fitted: dict[str, Any]
    stats: dict[str, Any]
    row_count: int
    fingerprint: str
    run_id: str
    published_at: str


def ensure_schema(con) -> None:
    for statement in _DDL:
        con.execute(statement)


def has_metadata(con) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = '_engine' AND table_name = 'steps'"
    ).fetchone()
    return bool(row and row[0])


def stored_steps(con) -> dict[str, StoredStep]:
    if not has_metadata(con):
        return {}
    rows = con.execute("SELECT step_id, definition_fingerprint, fingerprint FROM _engine.steps").fetchall()
    return {r[0]: StoredStep(r[1], r[2]) for r in rows}


def record_step(con, step_id: str, definition_fingerprint: str, fingerprint: str, run_id: str) -> None:
    con.execute(
        "INSERT OR REPLACE INTO _engine.steps VALUES (?, ?, ?, ?, now())",
        [step_id, definition_fingerprint, fingerprint, run_id],
    )


def start_run(con, run_id: str) -> None:
    con.execute("INSERT INTO _engine.runs VALUES (?, now(), NULL, 'running', NULL)", [run_id])


def finish_run(con, run_id: str, status: str, summary: dict) -> None:
    con.execute(
        "UPDATE _engine.runs SET finished_at = now(), status = ?, summary = ? WHERE run_id = ?",
        [status, json.dumps(summary, default=str), run_id],
    )


def interrupted_runs(con) -> list[str]:
    """Runs that started and never finished (the process was killed): reported, then closed."""
    if not has_metadata(con):
        return []
    return [r[0] for r in con.execute("SELECT run_id FROM _engine.runs WHERE status = 'running' ORDER BY started_at").fetchall()]


def close_interrupted(con, run_ids: list[str]) -> None:
    for run_id in run_ids:
        con.execute("UPDATE _engine.runs SET status = 'interrupted', finished_at = now() WHERE run_id = ?", [run_id])


def version_row(con, table: str, name: str, version: int | None) -> dict[str, Any] | None:
    """The row of ``_engine.<table>`` for ``name`` at ``version`` (the highest when None), as a dict."""
    sql = f"SELECT * FROM _engine.{table} WHERE name = ?"
    params: list[object] = [name]
    if version is not None:
        sql += " AND version = ?"
        params.append(version)
    cursor = con.execute(sql + " ORDER BY version DESC LIMIT 1", params)
    row = cursor.fetchone()
    return None if row is None else dict(zip([d[0] for d in cursor.description], row))


def feature_group_version(con, name: str, version: int | None = None) -> FeatureGroupVersion | None:
    """A published version (the highest when ``version`` is None), or None."""
    if not has_metadata(con):
        return None
    rec = version_row(con, "feature_groups", name, version)
    if rec is None:
        return None
    return FeatureGroupVersion(
        name=rec["name"],
        version=rec["version"],
        offline_table=rec["offline_table"],
        online_table=rec["online_table"],
        primary_key=tuple(json.loads(rec["primary_key"])),
        event_time=rec["event_time"],
        columns=json.loads(rec["columns"]),
        fitted=json.loads(rec["fitted"]) if rec["fitted"] else {},
        stats=json.loads(rec["stats"]) if rec["stats"] else {},
        row_count=rec["row_count"],
        fingerprint=rec["fingerprint"],
        run_id=rec["run_id"],
        published_at=str(rec["published_at"]),
    )


def feature_group_versions(con) -> list[tuple[str, int, int, str]]:
    """(name, version, row_count, published_at) of every published version."""
    if not has_metadata(con):
        return []
    return [
        (r[0], r[1], r[2], str(r[3]))
        for r in con.execute("SELECT name, version, row_count, published_at FROM _engine.feature_groups ORDER BY name, version").fetchall()
    ]


def upsert_feature_group(con, fgv: FeatureGroupVersion, rows_written: int) -> None:
    con.execute(
        "INSERT OR REPLACE INTO _engine.feature_groups VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
        [
            fgv.name, fgv.version, fgv.offline_table, fgv.online_table, json.dumps(list(fgv.primary_key)),
            fgv.event_time, json.dumps(fgv.columns), json.dumps(fgv.fitted, default=str),
            json.dumps(fgv.stats, default=str), fgv.row_count, fgv.fingerprint, fgv.run_id,
        ],
    )
    con.execute(
        "INSERT INTO _engine.feature_group_writes VALUES (?, ?, ?, ?, ?, ?, now())",
        [fgv.run_id, fgv.name, fgv.version, rows_written, fgv.row_count, json.dumps(fgv.stats, default=str)],
    )
