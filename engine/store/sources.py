"""Reading source files: column sniffing without a database, and the DuckDB ingest query.

Owns how a declared source becomes a table; must not touch feature-group semantics.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from engine.model.objects import Source, SourceFormat
from engine.sql.quote import quote_ident

_ARROW_TO_DUCKDB = {
    "int8": "TINYINT", "int16": "SMALLINT", "int32": "INTEGER", "int64": "BIGINT",
    "uint8": "UTINYINT", "uint16": "USMALLINT", "uint32": "UINTEGER", "uint64": "UBIGINT",
    "float": "FLOAT", "halffloat": "FLOAT", "double": "DOUBLE", "bool": "BOOLEAN",
    "string": "VARCHAR", "large_string": "VARCHAR", "string_view": "VARCHAR", "date32[day]": "DATE",
}


def _arrow_type_name(arrow_type) -> str:
    text = str(arrow_type)
    if text.startswith("timestamp"):
        return "TIMESTAMPTZ" if "tz=" in text else "TIMESTAMP"
    if text.startswith("decimal"):
        return text.replace("decimal128", "DECIMAL").replace("decimal256", "DECIMAL").upper()
    return _ARROW_TO_DUCKDB.get(text, "UNKNOWN")


def sniff_columns(source: Source) -> dict[str, str] | None:
    """Columns of a source (name -> DuckDB type, ``UNKNOWN`` where unsure) without a database.

    Declared ``columns`` override sniffed types. None when no file matches or it cannot be read.
    """
    declared = dict(source.columns)
    if not source.resolved_paths:
        return None
    first = source.resolved_paths[0]
    try:
        match source.format:
            case SourceFormat.PARQUET:
                import pyarrow.parquet as pq

                schema = pq.read_schema(first)
                columns = {f.name: _arrow_type_name(f.type) for f in schema}
            case SourceFormat.CSV:
                columns = _csv_header(first, source)
            case SourceFormat.JSONL:
                columns = _jsonl_keys(first)
    except Exception:  # an unreadable file is reported when the source is ingested
        return None
    if columns is None:
        return None
    for name, typ in declared.items():
        columns[name] = typ
    return columns


def _open_text(path: Path):
    if path.suffix == ".gz":
        import gzip

        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace", newline="")


def _csv_header(path: Path, source: Source) -> dict[str, str] | None:
    if not source.csv.header:
        return None
    with _open_text(path) as fh:
        row = next(csv.reader(fh, delimiter=source.csv.delimiter), None)
    return {name: "UNKNOWN" for name in row} if row else None


def _jsonl_keys(path: Path) -> dict[str, str] | None:
    with _open_text(path) as fh:
        line = fh.readline()
    obj = json.loads(line) if line.strip() else None
    return {k: "UNKNOWN" for k in obj} if isinstance(obj, dict) else None


def ingest_query(source: Source) -> tuple[str, list[object]]:
    """The SELECT (and its parameters) that reads a source's files in DuckDB.

    Paths come from the resolved, confined list and travel as parameters. Multi-file sources use
    ``union_by_name`` so that drifting columns are never dropped silently (V18, F7). Naive
    timestamps are read in the source's timezone and stored as UTC TIMESTAMPTZ.
    """
    files = [str(p) for p in source.resolved_paths]
    params: list[object] = [files]
    match source.format:
        case SourceFormat.PARQUET:
            reader = "read_parquet(?, union_by_name=true)"
        case SourceFormat.JSONL:
            reader = "read_json(?, format='newline_delimited', union_by_name=true)"
        case SourceFormat.CSV:
            # Quarantine keeps bad rows aside (DuckDB's rejects tables, which exclude union_by_name;
            # multi-file sources are checked for identical columns before reading, F7).
            options = ["store_rejects=true"] if source.on_bad_rows == "quarantine" else ["union_by_name=true"]
            options.append("header=true" if source.csv.header else "header=false")
            options.append("delim=?")
            params.append(source.csv.delimiter)
            if source.columns:
                # Declared types: a struct literal of name -> type (types validated by the schema).
                struct = ", ".join(f"{_sql_string(n)}: {_sql_string(t)}" for n, t in source.columns)
                options.append(f"types={{{struct}}}")
            reader = f"read_csv(?, {', '.join(options)})"
    return f"SELECT * FROM {reader}", params


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
