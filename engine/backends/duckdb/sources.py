"""Reading source files into DuckDB: one reader per format (``READERS``), quarantine of bad rows
(F6), the multi-file column check (F7) and naive timestamps read in the source's timezone.

Owns how a declared source becomes a table; must not touch feature-group semantics.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine.errors import DataError, InternalError
from engine.model.objects import BadRows, Source, SourceFormat
from engine.sql.quote import quote_ident

Reader = Callable[[Source], tuple[str, list[object]]]  # a source -> (SELECT reading its files, parameters)


def ingest_query(source: Source) -> tuple[str, list[object]]:
    """The SELECT (and its parameters) that reads a source's files in DuckDB, from its format's reader.

    Paths come from the resolved, confined list and travel as parameters. Multi-file sources use
    ``union_by_name`` so that drifting columns are never dropped silently (V18, F7). Naive
    timestamps are normalised afterwards (:func:`normalise_times_sql`), whatever the format.
    """
    reader = READERS.get(source.format)
    if reader is None:  # engine validate checks the backend's capabilities first
        raise InternalError(f"{source.id}: the duckdb backend has no reader for '{source.format}' sources")
    return reader(source)


def _files(source: Source) -> list[str]:
    return [str(p) for p in source.resolved_paths]


def read_parquet(source: Source) -> tuple[str, list[object]]:
    return "SELECT * FROM read_parquet(?, union_by_name=true)", [_files(source)]


def read_jsonl(source: Source) -> tuple[str, list[object]]:
    return "SELECT * FROM read_json(?, format='newline_delimited', union_by_name=true)", [_files(source)]


def read_csv(source: Source) -> tuple[str, list[object]]:
    params: list[object] = [_files(source)]
    # Quarantine keeps bad rows aside (DuckDB's rejects tables, which exclude union_by_name;
    # multi-file sources are checked for identical columns before reading, F7).
    options = ["store_rejects=true"] if source.on_bad_rows == BadRows.QUARANTINE else ["union_by_name=true"]
    options.append("header=true" if source.csv.header else "header=false")
    options.append("delim=?")
    params.append(source.csv.delimiter)
    if source.columns:
        # Declared types: a struct literal of name -> type (types validated by the schema).
        struct = ", ".join(f"{_sql_string(n)}: {_sql_string(t)}" for n, t in source.columns)
        options.append(f"types={{{struct}}}")
    return f"SELECT * FROM read_csv(?, {', '.join(options)})", params


# The formats this backend reads; its ``capabilities.source_formats`` are these names.
READERS: dict[str, Reader] = {
    SourceFormat.CSV: read_csv,
    SourceFormat.PARQUET: read_parquet,
    SourceFormat.JSONL: read_jsonl,
}


def register_reader(name: str, reader: Reader) -> Reader:
    """Teach the DuckDB backend to read source format ``name`` (registered in ``engine.model.formats``)."""
    if name in READERS:
        raise ValueError(f"the duckdb backend already has a reader for '{name}'")
    READERS[name] = reader
    return reader


def unregister_reader(name: str) -> None:
    READERS.pop(name, None)


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def normalise_times_sql(relation: str, columns: dict[str, str], timezone: str) -> str:
    """Project a relation so naive TIMESTAMP columns become UTC TIMESTAMPTZ read in ``timezone``."""
    parts = []
    for name, typ in columns.items():
        q = quote_ident(name)
        if typ.upper() in ("TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S"):
            parts.append(f"timezone({_sql_string(timezone)}, CAST({q} AS TIMESTAMP)) AS {q}")
        else:
            parts.append(q)
    return f"SELECT {', '.join(parts)} FROM {relation}"


def check_same_columns(con, source: Source) -> None:
    """F7: every file of a multi-file source has the same columns (DuckDB would silently drop or
    NULL-fill the difference, V18)."""
    import dataclasses

    if len(source.resolved_paths) < 2:
        return
    first_cols: list[str] | None = None
    for path in source.resolved_paths:
        single = dataclasses.replace(source, resolved_paths=(path,))
        sql, params = ingest_query(single)
        try:
            cols = [r[0] for r in con.execute(f"DESCRIBE {sql}", params).fetchall()]
        except Exception as exc:
            raise DataError(f"{source.id}: reading '{path.name}' failed: {_first_line(exc)}") from exc
        if first_cols is None:
            first_cols, first = cols, path
            continue
        if cols != first_cols:
            added = [c for c in cols if c not in first_cols]
            missing = [c for c in first_cols if c not in cols]
            diff = "; ".join(filter(None, [f"extra columns {added}" if added else "", f"missing columns {missing}" if missing else ""])) or "columns in a different order"
            raise DataError(f"{source.id}: file '{path.name}' does not match '{first.name}': {diff}")


def rejected_rows(con, source: Source) -> list[tuple]:
    """F6 quarantine: rows DuckDB set aside while reading; fail past ``max_bad_rows``."""
    rows = con.execute(
        "SELECT s.file_path, e.line, e.column_name, CAST(e.error_type AS VARCHAR), e.csv_line, e.error_message "
        "FROM reject_errors e JOIN reject_scans s USING (scan_id, file_id) ORDER BY s.file_path, e.line"
    ).fetchall()
    con.execute("DROP TABLE IF EXISTS reject_errors")
    con.execute("DROP TABLE IF EXISTS reject_scans")
    lines = {(r[0], r[1]) for r in rows}
    if len(lines) > source.max_bad_rows:
        first = rows[0]
        raise DataError(
            f"{source.id}: {len(lines)} rows could not be read (more than max_bad_rows {source.max_bad_rows}); "
            f"first: {Path(first[0]).name} line {first[1]} column {first[2]}: {first[5]}; nothing published"
        )
    return [(Path(r[0]).name, r[1], r[2], r[3], r[4], r[5]) for r in rows]


def read_source(con, source: Source, target: str, *, is_storage_failure) -> tuple[int, list[tuple]]:
    """Read every file of ``source`` into the new table ``target`` (times normalised to UTC), inside
    the caller's transaction.

    Returns (rows, rejected rows). DataError for a missing, empty or unreadable source (F6-F8).
    """
    if not source.resolved_paths:
        raise DataError(f"{source.id}: path '{source.path}' matches no file in the project")
    check_same_columns(con, source)
    sql, params = ingest_query(source)
    raw = f"{target[:-1]}__raw\"" if target.endswith('"') else f"{target}__raw"
    try:
        con.execute(f"CREATE OR REPLACE TABLE {raw} AS {sql}", params)
    except Exception as exc:  # duckdb.Error: CSV conversion errors, unreadable files (F6, F7)
        if is_storage_failure(exc):
            raise
        raise DataError(f"{source.id}: reading '{source.path}' failed: {_first_line(exc)}") from exc
    # The caller's transaction rolls the raw table back on any failure below; after a storage
    # error the transaction is aborted and no statement (not even a DROP) may run.
    rows = con.execute(f"SELECT count(*) FROM {raw}").fetchone()[0]
    if rows == 0 and not source.allow_empty:
        raise DataError(f"{source.id}: '{source.path}' has no rows (set allow_empty: true if that is expected)")
    columns = {r[0]: r[1] for r in con.execute(f"DESCRIBE {raw}").fetchall()}
    rejected = rejected_rows(con, source) if source.on_bad_rows == BadRows.QUARANTINE else []
    con.execute(f"CREATE OR REPLACE TABLE {target} AS {normalise_times_sql(raw, columns, source.timezone)}")
    con.execute(f"DROP TABLE {raw}")
    return rows, rejected


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
