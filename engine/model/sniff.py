"""Columns of a source file without a database: Parquet schemas, CSV headers, JSON-lines keys.

Pure file reading for ``engine validate`` (E4 column checks); never imports a backend.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from engine.model.objects import Source, SourceFormat

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
