"""The ``_engine`` metadata tables: step fingerprints, runs, published feature-group and view
versions, training datasets, quarantined rows and stream watermarks.

Owns their DDL and queries, in portable SQL run through the backend's ``Catalog`` (the same
transaction as the data it describes); must not touch user tables. Model versions are indexed by
``engine.state.model_index``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine.backends.base import Catalog
from engine.compiler.planner import StoredStep

_DDL = [
    "CREATE SCHEMA IF NOT EXISTS _engine",
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
    # inference (engine.serving): one watermark row per streaming job, written in the same
    # transaction as the rows it appends.
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


def ensure_schema(catalog: Catalog) -> None:
    for statement in _DDL:
        catalog.execute(statement)


def has_metadata(catalog: Catalog) -> bool:
    return catalog.has_table("_engine", "steps")


def stored_steps(catalog: Catalog) -> dict[str, StoredStep]:
    if not has_metadata(catalog):
        return {}
    rows = catalog.query("SELECT step_id, definition_fingerprint, fingerprint FROM _engine.steps")
    return {r[0]: StoredStep(r[1], r[2]) for r in rows}


def record_step(catalog: Catalog, step_id: str, definition_fingerprint: str, fingerprint: str, run_id: str) -> None:
    catalog.execute(
        "INSERT OR REPLACE INTO _engine.steps VALUES (?, ?, ?, ?, now())",
        [step_id, definition_fingerprint, fingerprint, run_id],
    )


def start_run(catalog: Catalog, run_id: str) -> None:
    catalog.execute("INSERT INTO _engine.runs VALUES (?, now(), NULL, 'running', NULL)", [run_id])


def finish_run(catalog: Catalog, run_id: str, status: str, summary: dict) -> None:
    catalog.execute(
        "UPDATE _engine.runs SET finished_at = now(), status = ?, summary = ? WHERE run_id = ?",
        [status, json.dumps(summary, default=str), run_id],
    )


def interrupted_runs(catalog: Catalog) -> list[str]:
    """Runs that started and never finished (the process was killed): reported, then closed."""
    if not has_metadata(catalog):
        return []
    return [r[0] for r in catalog.query("SELECT run_id FROM _engine.runs WHERE status = 'running' ORDER BY started_at")]


def close_interrupted(catalog: Catalog, run_ids: list[str]) -> None:
    for run_id in run_ids:
        catalog.execute("UPDATE _engine.runs SET status = 'interrupted', finished_at = now() WHERE run_id = ?", [run_id])


def version_row(catalog: Catalog, table: str, name: str, version: int | None) -> dict[str, Any] | None:
    """The row of ``_engine.<table>`` for ``name`` at ``version`` (the highest when None), as a dict."""
    sql = f"SELECT * FROM _engine.{table} WHERE name = ?"
    params: list[object] = [name]
    if version is not None:
        sql += " AND version = ?"
        params.append(version)
    rows = catalog.query_dicts(sql + " ORDER BY version DESC LIMIT 1", params)
    return rows[0] if rows else None


def feature_group_version(catalog: Catalog, name: str, version: int | None = None) -> FeatureGroupVersion | None:
    """A published version (the highest when ``version`` is None), or None."""
    if not has_metadata(catalog):
        return None
    rec = version_row(catalog, "feature_groups", name, version)
    return None if rec is None else _feature_group_version(rec)


def all_feature_group_versions(catalog: Catalog) -> list[FeatureGroupVersion]:
    """Every published version, ordered by name and version."""
    if not has_metadata(catalog):
        return []
    return [_feature_group_version(r) for r in catalog.query_dicts("SELECT * FROM _engine.feature_groups ORDER BY name, version")]


def _feature_group_version(rec: dict[str, Any]) -> FeatureGroupVersion:
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


def feature_group_versions(catalog: Catalog) -> list[tuple[str, int, int, str]]:
    """(name, version, row_count, published_at) of every published version."""
    if not has_metadata(catalog):
        return []
    return [
        (r[0], r[1], r[2], str(r[3]))
        for r in catalog.query("SELECT name, version, row_count, published_at FROM _engine.feature_groups ORDER BY name, version")
    ]


def upsert_feature_group(catalog: Catalog, fgv: FeatureGroupVersion, rows_written: int) -> None:
    catalog.execute(
        "INSERT OR REPLACE INTO _engine.feature_groups VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
        [
            fgv.name, fgv.version, fgv.offline_table, fgv.online_table, json.dumps(list(fgv.primary_key)),
            fgv.event_time, json.dumps(fgv.columns), json.dumps(fgv.fitted, default=str),
            json.dumps(fgv.stats, default=str), fgv.row_count, fgv.fingerprint, fgv.run_id,
        ],
    )
    catalog.execute(
        "INSERT INTO _engine.feature_group_writes VALUES (?, ?, ?, ?, ?, ?, now())",
        [fgv.run_id, fgv.name, fgv.version, rows_written, fgv.row_count, json.dumps(fgv.stats, default=str)],
    )


# --- feature views and training datasets ------------------------------------------------------------


def upsert_feature_view(catalog: Catalog, name: str, version: int, table: str, layout: dict, rows: int, fingerprint: str, run_id: str) -> None:
    catalog.execute(
        "INSERT OR REPLACE INTO _engine.feature_views VALUES (?, ?, ?, ?, ?, ?, ?, now())",
        [name, version, table, json.dumps(layout), rows, fingerprint, run_id],
    )


def feature_view_row(catalog: Catalog, name: str, version: int | None = None) -> dict[str, Any] | None:
    """The metadata row of a materialised view version (the highest when None)."""
    if not catalog.has_table("_engine", "feature_views"):
        return None
    rec = version_row(catalog, "feature_views", name, version)
    if rec is not None:
        rec["layout"] = json.loads(rec["layout"])
    return rec


def has_training_dataset(catalog: Catalog, name: str) -> bool:
    return bool(catalog.query("SELECT count(*) FROM _engine.training_datasets WHERE name = ?", [name])[0][0])


def insert_training_dataset(
    catalog: Catalog, name: str, model: str, view: str, view_version: int, table: str, fingerprint: str, split: dict, rows: dict, run_id: str
) -> None:
    catalog.execute(
        "INSERT INTO _engine.training_datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
        [name, model, view, view_version, table, fingerprint, json.dumps(split), json.dumps(rows), run_id],
    )


# --- quarantined rows, runs ---------------------------------------------------------------------


def record_rejects(catalog: Catalog, run_id: str, source: str, rows: tuple[tuple, ...]) -> None:
    """Rows a source set aside (file, line, column, error type, csv line, message)."""
    for row in rows:
        catalog.execute("INSERT INTO _engine.rejected_rows VALUES (?, ?, ?, ?, ?, ?, ?, ?, now())", [run_id, source, *row])


def rejects(catalog: Catalog, source: str | None = None) -> list[dict[str, Any]]:
    """Quarantined rows, newest run first (all sources, or one)."""
    if not catalog.has_table("_engine", "rejected_rows"):
        return []
    where, params = ("WHERE source = ?", [source]) if source else ("", [])
    return catalog.query_dicts(f"SELECT * FROM _engine.rejected_rows {where} ORDER BY rejected_at DESC, file, line", params)


def run_started_at(catalog: Catalog, run_id: str):
    """When ``run_id`` started (aware), or None when it is not recorded."""
    if not catalog.has_table("_engine", "runs"):
        return None
    rows = catalog.query("SELECT started_at FROM _engine.runs WHERE run_id = ?", [run_id])
    return rows[0][0] if rows else None


# --- stream watermarks ------------------------------------------------------------------------------


def watermark(catalog: Catalog, job: str) -> dict | None:
    """A streaming job's watermark row, or None before its first scoring run."""
    if not catalog.has_table("_engine", "stream_watermarks"):
        return None
    rows = catalog.query_dicts(
        "SELECT job, runs, rows_scored, last_run_id, last_event_time, updated_at FROM _engine.stream_watermarks WHERE job = ?", [job]
    )
    return rows[0] if rows else None


def advance_watermark(catalog: Catalog, job: str, rows: int, run_id: str, last_event_time) -> None:
    """Upsert the watermark: one more run, ``rows`` more scored, the latest event time seen."""
    catalog.execute(
        """INSERT INTO _engine.stream_watermarks VALUES (?, 1, ?, ?, ?::TIMESTAMPTZ, now())
           ON CONFLICT (job) DO UPDATE SET
               runs = stream_watermarks.runs + 1,
               rows_scored = stream_watermarks.rows_scored + excluded.rows_scored,
               last_run_id = excluded.last_run_id,
               last_event_time = greatest(stream_watermarks.last_event_time, excluded.last_event_time),
               updated_at = excluded.updated_at""",
        [job, rows, run_id, last_event_time],
    )
