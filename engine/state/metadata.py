"""The ``_engine`` metadata tables: step fingerprints, runs, published feature-group and view
versions, training datasets, quarantined rows, stream watermarks and the committed version of every
table the engine writes.

Owns their DDL and queries, in SQLite SQL run through a ``Catalog`` (``engine.backends.catalog``);
must not touch user tables. Times are stored as ISO-8601 UTC text and come back from here as aware
``datetime``s (UTC); JSON columns hold text. Model versions are indexed by
``engine.state.model_index``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.backends.base import Catalog
from engine.compiler.planner import StoredStep
from engine.backends.catalog import utc_datetime, utc_text

# Columns that hold times; read back through ``_timed``.
_TIME_COLUMNS = (
    "started_at", "finished_at", "published_at", "created_at", "rejected_at", "written_at", "last_event_time", "updated_at", "committed_at",
)

_DDL = [
    """CREATE TABLE IF NOT EXISTS _engine.steps (
        step_id TEXT PRIMARY KEY,
        definition_fingerprint TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        run_id TEXT NOT NULL,
        updated_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS _engine.runs (
        run_id TEXT PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL,
        summary TEXT)""",
    """CREATE TABLE IF NOT EXISTS _engine.feature_groups (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        offline_table TEXT NOT NULL,
        online_table TEXT,
        primary_key TEXT NOT NULL,
        event_time TEXT,
        columns TEXT NOT NULL,
        fitted TEXT,
        stats TEXT,
        row_count INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        run_id TEXT NOT NULL,
        published_at TEXT NOT NULL,
        PRIMARY KEY (name, version))""",
    """CREATE TABLE IF NOT EXISTS _engine.feature_views (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        table_name TEXT NOT NULL,
        layout TEXT NOT NULL,
        row_count INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        run_id TEXT NOT NULL,
        published_at TEXT NOT NULL,
        PRIMARY KEY (name, version))""",
    """CREATE TABLE IF NOT EXISTS _engine.training_datasets (
        name TEXT PRIMARY KEY,
        model TEXT NOT NULL,
        feature_view TEXT NOT NULL,
        feature_view_version INTEGER NOT NULL,
        table_name TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        split TEXT NOT NULL,
        rows TEXT NOT NULL,
        run_id TEXT NOT NULL,
        created_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS _engine.rejected_rows (
        run_id TEXT NOT NULL,
        source TEXT NOT NULL,
        file TEXT,
        line INTEGER,
        column_name TEXT,
        error_type TEXT,
        csv_line TEXT,
        message TEXT,
        rejected_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS _engine.feature_group_writes (
        run_id TEXT NOT NULL,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        rows_written INTEGER NOT NULL,
        row_count INTEGER NOT NULL,
        stats TEXT,
        written_at TEXT NOT NULL)""",
    # incremental ingest: the files each source's lake table holds (path relative to the project
    # root, content digest, rows read from it, the src commit that added it), written in the
    # ingest's transaction; a replacing ingest rewrites the source's rows.
    """CREATE TABLE IF NOT EXISTS _engine.source_files (
        source TEXT NOT NULL,
        file TEXT NOT NULL,
        digest TEXT NOT NULL,
        rows INTEGER,
        lake_version INTEGER NOT NULL,
        run_id TEXT NOT NULL,
        PRIMARY KEY (source, file))""",
    # a replacing ingest because consumed files changed or disappeared: which ones (append groups
    # downstream refuse to rebuild silently and name them).
    """CREATE TABLE IF NOT EXISTS _engine.source_changes (
        source TEXT NOT NULL,
        lake_version INTEGER NOT NULL,
        files TEXT NOT NULL,
        run_id TEXT NOT NULL,
        PRIMARY KEY (source, lake_version))""",
    # incremental feature groups: the lake version of each input a step last consumed, and (by_time)
    # the latest input event time processed, written with the step's record.
    """CREATE TABLE IF NOT EXISTS _engine.step_inputs (
        step_id TEXT NOT NULL,
        input_name TEXT NOT NULL,
        relation TEXT NOT NULL,
        version INTEGER NOT NULL,
        watermark TEXT,
        PRIMARY KEY (step_id, input_name))""",
    # change reports (engine.compiler.changes): the definition document of each step as it last
    # ran, written with the step's record.
    """CREATE TABLE IF NOT EXISTS _engine.step_definitions (
        step_id TEXT PRIMARY KEY,
        document TEXT NOT NULL,
        run_id TEXT NOT NULL)""",
    # inference (engine.serving): one watermark row per streaming job, written in the same
    # transaction as the rows it appends.
    """CREATE TABLE IF NOT EXISTS _engine.stream_watermarks (
        job TEXT PRIMARY KEY,
        runs INTEGER NOT NULL,
        rows_scored INTEGER NOT NULL,
        last_run_id TEXT NOT NULL,
        last_event_time TEXT,
        updated_at TEXT NOT NULL)""",
    # inference (engine.serving.batch): what a batch job's predictions table holds for its own
    # range, written in the transaction that wrote them: the model version that scored the rows,
    # the range, the published view table and lake version they were read from, and the
    # predictions table's own lake version after the write (any other write to it since, by a
    # backfill or another job, voids the record). The next run with the same model, range and
    # view scores only the view rows appended since.
    """CREATE TABLE IF NOT EXISTS _engine.batch_scores (
        job TEXT PRIMARY KEY,
        model TEXT NOT NULL,
        range_start TEXT NOT NULL,
        range_end TEXT NOT NULL,
        view_table TEXT NOT NULL,
        view_version INTEGER NOT NULL,
        table_version INTEGER NOT NULL,
        run_id TEXT NOT NULL)""",
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
    """Create the metadata tables if they do not exist (idempotent)."""
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


def record_definition(catalog: Catalog, step_id: str, document: dict, run_id: str) -> None:
    """The definition document a step ran with (``engine.compiler.changes``), replacing the last."""
    catalog.execute(
        "INSERT OR REPLACE INTO _engine.step_definitions VALUES (?, ?, ?)",
        [step_id, json.dumps(document, sort_keys=True, default=str), run_id],
    )


def stored_definitions(catalog: Catalog) -> dict[str, dict]:
    """step id -> the definition document it last ran with; {} in a workspace without them."""
    if not catalog.has_table("_engine", "step_definitions"):
        return {}
    out = {}
    for step_id, text in catalog.query("SELECT step_id, document FROM _engine.step_definitions"):
        try:
            out[step_id] = json.loads(text)
        except ValueError:
            continue
    return out


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
    return _timed(rows[0]) if rows else None


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
    rows = catalog.query_dicts("SELECT * FROM _engine.feature_groups ORDER BY name, version")
    return [_feature_group_version(r) for r in rows]


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
        published_at=str(utc_datetime(rec["published_at"])),
    )


def feature_group_versions(catalog: Catalog) -> list[tuple[str, int, int, str]]:
    """(name, version, row_count, published_at) of every published version."""
    if not has_metadata(catalog):
        return []
    return [
        (r[0], r[1], r[2], str(utc_datetime(r[3])))
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


def feature_view_versions(catalog: Catalog) -> list[dict[str, Any]]:
    """Every materialised view version (name, version, table_name, published_at), by name and version."""
    if not catalog.has_table("_engine", "feature_views"):
        return []
    return [_timed(r) for r in catalog.query_dicts("SELECT name, version, table_name, published_at FROM _engine.feature_views ORDER BY name, version")]


def forget_version(catalog: Catalog, kind: str, name: str, version: int) -> None:
    """Remove a collected feature group or view version's records (its tables are dropped by the
    caller in the same transaction): the published row and the step's record and definition."""
    table = {"feature_group": "feature_groups", "feature_view": "feature_views"}[kind]
    catalog.execute(f"DELETE FROM _engine.{table} WHERE name = ? AND version = ?", [name, version])
    step = f"{kind}:{name}@{version}"
    catalog.execute("DELETE FROM _engine.steps WHERE step_id = ?", [step])
    if catalog.has_table("_engine", "step_definitions"):
        catalog.execute("DELETE FROM _engine.step_definitions WHERE step_id = ?", [step])


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
    """Rows a source set aside (file, line, column, error type, csv line, message), all stamped
    with one time (so ``rejects`` keeps them in file and line order)."""
    if not rows:
        return
    stamp = catalog.query("SELECT now()")[0][0]
    for row in rows:
        catalog.execute("INSERT INTO _engine.rejected_rows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [run_id, source, *row, stamp])


def rejects(catalog: Catalog, source: str | None = None) -> list[dict[str, Any]]:
    """Quarantined rows, newest run first (all sources, or one)."""
    if not catalog.has_table("_engine", "rejected_rows"):
        return []
    where, params = ("WHERE source = ?", [source]) if source else ("", [])
    rows = catalog.query_dicts(f"SELECT * FROM _engine.rejected_rows {where} ORDER BY rejected_at DESC, file, line", params)
    return [_timed(r) for r in rows]


def run_started_at(catalog: Catalog, run_id: str) -> datetime | None:
    """When ``run_id`` started (aware), or None when it is not recorded."""
    if not catalog.has_table("_engine", "runs"):
        return None
    rows = catalog.query("SELECT started_at FROM _engine.runs WHERE run_id = ?", [run_id])
    return utc_datetime(rows[0][0]) if rows else None


# --- incremental ingest and feature groups ---------------------------------------------------------


@dataclass(frozen=True)
class SourceFile:
    """A file a source's lake table holds: relative path, content digest, rows, the commit that added it."""

    file: str
    digest: str
    rows: int | None
    lake_version: int


@dataclass(frozen=True)
class ConsumedInput:
    """What an incremental step last read of one input: its lake table and version, and the
    latest input event time it processed (by_time groups; None otherwise)."""

    relation: str
    version: int
    watermark: datetime | None


def source_files(catalog: Catalog, source: str | None = None) -> dict[str, dict[str, SourceFile]]:
    """{source: {relative path: SourceFile}} of every source (or one) the workspace ingested."""
    if not catalog.has_table("_engine", "source_files"):
        return {}
    where, params = ("WHERE source = ?", [source]) if source else ("", [])
    out: dict[str, dict[str, SourceFile]] = {}
    for src, file, dig, rows, version in catalog.query(f"SELECT source, file, digest, rows, lake_version FROM _engine.source_files {where}", params):
        out.setdefault(src, {})[file] = SourceFile(file, dig, rows, int(version))
    return out


def record_source_files(catalog: Catalog, source: str, files: list[SourceFile], run_id: str, *, replace: bool) -> None:
    """Record the files an ingest read (``replace``: they are now the source's only files)."""
    if replace:
        catalog.execute("DELETE FROM _engine.source_files WHERE source = ?", [source])
    for f in files:
        catalog.execute("INSERT OR REPLACE INTO _engine.source_files VALUES (?, ?, ?, ?, ?, ?)", [source, f.file, f.digest, f.rows, f.lake_version, run_id])


def record_source_change(catalog: Catalog, source: str, lake_version: int, files: list[str], run_id: str) -> None:
    catalog.execute("INSERT OR REPLACE INTO _engine.source_changes VALUES (?, ?, ?, ?)", [source, lake_version, json.dumps(sorted(files)), run_id])


def source_changes_since(catalog: Catalog, source: str, version: int) -> list[str]:
    """Files that changed or disappeared under ``source`` in replacing ingests after lake ``version``."""
    if not catalog.has_table("_engine", "source_changes"):
        return []
    rows = catalog.query("SELECT files FROM _engine.source_changes WHERE source = ? AND lake_version > ? ORDER BY lake_version", [source, version])
    return sorted({f for (text,) in rows for f in json.loads(text)})


def consumed_inputs(catalog: Catalog, step_id: str) -> dict[str, ConsumedInput]:
    if not catalog.has_table("_engine", "step_inputs"):
        return {}
    rows = catalog.query("SELECT input_name, relation, version, watermark FROM _engine.step_inputs WHERE step_id = ?", [step_id])
    return {n: ConsumedInput(r, int(v), utc_datetime(w) if w else None) for n, r, v, w in rows}


def record_consumed_inputs(catalog: Catalog, step_id: str, inputs: dict[str, ConsumedInput]) -> None:
    catalog.execute("DELETE FROM _engine.step_inputs WHERE step_id = ?", [step_id])
    for name, c in inputs.items():
        catalog.execute(
            "INSERT INTO _engine.step_inputs VALUES (?, ?, ?, ?, ?)", [step_id, name, c.relation, c.version, utc_text(c.watermark) if c.watermark else None]
        )


# --- stream watermarks ------------------------------------------------------------------------------


def watermark(catalog: Catalog, job: str) -> dict | None:
    """A streaming job's watermark row, or None before its first scoring run."""
    if not catalog.has_table("_engine", "stream_watermarks"):
        return None
    rows = catalog.query_dicts(
        "SELECT job, runs, rows_scored, last_run_id, last_event_time, updated_at FROM _engine.stream_watermarks WHERE job = ?", [job]
    )
    return _timed(rows[0]) if rows else None


def advance_watermark(catalog: Catalog, job: str, rows: int, run_id: str, last_event_time: object) -> None:
    """Upsert the watermark: one more run, ``rows`` more scored, the latest event time seen.

    ``last_event_time``: a ``datetime`` (or pandas ``Timestamp``; naive means UTC), ISO text, or
    None when the run saw no event time (the stored one is then kept).
    """
    catalog.execute(
        """INSERT INTO _engine.stream_watermarks VALUES (?, 1, ?, ?, ?, now())
           ON CONFLICT (job) DO UPDATE SET
               runs = stream_watermarks.runs + 1,
               rows_scored = stream_watermarks.rows_scored + excluded.rows_scored,
               last_run_id = excluded.last_run_id,
               last_event_time = greatest(stream_watermarks.last_event_time, excluded.last_event_time),
               updated_at = excluded.updated_at""",
        [job, rows, run_id, utc_text(last_event_time)],
    )


# --- batch scoring basis -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchScored:
    """What a batch job's predictions table holds for the job's range: rows scored by ``model``
    (``model:name@version``) over ``[range_start, range_end)`` from the published view table
    ``view_table`` as of its lake version ``view_version``, as the table's lake version
    ``table_version`` holds them."""

    model: str
    range_start: str  # ISO-8601 UTC
    range_end: str
    view_table: str
    view_version: int
    table_version: int | None = None


def batch_scored(catalog: Catalog, job: str) -> BatchScored | None:
    """The job's recorded scoring basis, or None (never scored, or last scored otherwise)."""
    if not catalog.has_table("_engine", "batch_scores"):
        return None
    rows = catalog.query(
        "SELECT model, range_start, range_end, view_table, view_version, table_version FROM _engine.batch_scores WHERE job = ?", [job]
    )
    return BatchScored(*rows[0][:4], int(rows[0][4]), int(rows[0][5])) if rows else None


def record_batch_scored(catalog: Catalog, job: str, basis: BatchScored | None, run_id: str) -> None:
    """Replace the job's scoring basis (None: forget it, so the next run scores its whole range)."""
    catalog.execute(next(d for d in _DDL if "_engine.batch_scores" in d))  # a workspace from before the table
    catalog.execute("DELETE FROM _engine.batch_scores WHERE job = ?", [job])
    if basis is not None:
        catalog.execute(
            "INSERT INTO _engine.batch_scores VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [job, basis.model, basis.range_start, basis.range_end, basis.view_table, basis.view_version, basis.table_version, run_id],
        )


def _timed(rec: dict[str, Any]) -> dict[str, Any]:
    """A row with its time columns as aware ``datetime``s (UTC), as callers had them from DuckDB."""
    for column in _TIME_COLUMNS:
        if column in rec:
            rec[column] = utc_datetime(rec[column])
    return rec
