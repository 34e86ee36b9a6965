"""Reading source files with Spark: CSV, Parquet and JSON lines, times as UTC instants (F4), the
multi-file column check (F7), empty and missing sources (F8), read errors as DataError.

Owns how a declared source becomes a DataFrame; storing it is the backend's. Column types follow
the DuckDB backend's where the formats allow it (integers read as BIGINT, JSON columns in file
order, naive times read in the source's timezone), so both backends store the same table.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from engine.backends.spark.connect import first_line
from engine.errors import DataError
from engine.model.formats import open_text
from engine.model.objects import Source, SourceFormat

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger("engine.spark")

FORMATS = frozenset({SourceFormat.CSV, SourceFormat.PARQUET, SourceFormat.JSONL})

# A value whose time of day is followed by a zone: Z, +05, +0530, +05:30, UTC, America/New_York
# (the DuckDB backend's rule, in a syntax Java's regex reads the same way).
_AWARE_TEXT = r"[0-9]:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?\s*(Z|[+-][0-9]{1,2}(:?[0-9]{2}){0,2}|[A-Za-z]{3,5}|[A-Za-z_]+/[A-Za-z0-9_/+-]+)\s*$"
_STRPTIME = {"%Y": "yyyy", "%m": "MM", "%d": "dd", "%H": "HH", "%M": "mm", "%S": "ss", "%f": "SSSSSS", "%z": "XX", "%y": "yy", "%b": "MMM", "%p": "a", "%I": "hh", "%T": "HH:mm:ss", "%%": "%"}


def spark_datetime_pattern(strptime: str) -> str:
    """A strptime format (the spec's ``timestamp_format``) as a Spark datetime pattern.

    >>> spark_datetime_pattern("%Y-%m-%d %H:%M:%S%z")
    "yyyy-MM-dd HH:mm:ssXX"
    """
    out, i = [], 0
    while i < len(strptime):
        token = strptime[i : i + 2]
        if token in _STRPTIME:
            out.append(_STRPTIME[token])
            i += 2
        elif strptime[i].isalpha():
            out.append(f"'{strptime[i]}'")
            i += 1
        else:
            out.append(strptime[i])
            i += 1
    return "".join(out)


def read(spark: "SparkSession", source: Source) -> "DataFrame":
    """The rows of every file of ``source``, timestamps as UTC instants; DataError for a missing,
    empty, drifting or unreadable source."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if not source.resolved_paths:
        raise DataError(f"{source.id}: path '{source.path}' matches no file in the project")
    files = [str(p) for p in source.resolved_paths]
    _check_same_columns(spark, source)
    try:
        df = _reader(spark, source).load(files)
        if source.format == SourceFormat.JSONL:
            order = _json_key_order(source.resolved_paths[0])
            df = df.select(*sorted(df.columns, key=lambda c: order.get(c, len(order))))
        if source.format != SourceFormat.PARQUET:  # inferred integers are BIGINT, as DuckDB infers them; Parquet keeps its widths
            df = df.select(*(F.col(f.name).cast("bigint").alias(f.name) if isinstance(f.dataType, T.IntegerType | T.ShortType | T.ByteType) else F.col(f.name) for f in df.schema.fields))
        df = _times_as_utc(spark, source, df, files)
        rows = df.count()
    except DataError:
        raise
    except Exception as exc:
        if type(exc).__name__ in ("Py4JError", "Py4JNetworkError"):
            raise
        log.debug("reading %s failed", source.id, exc_info=True)
        raise DataError(f"{source.id}: reading '{source.path}' failed: {first_line(exc)}") from None
    if rows == 0 and not source.allow_empty:
        raise DataError(f"{source.id}: '{source.path}' has no rows (set allow_empty: true if that is expected)")
    return df


def _reader(spark: "SparkSession", source: Source, *, typed: bool = True):
    reader = spark.read.option("mode", "FAILFAST")
    match source.format:
        case SourceFormat.CSV:
            reader = reader.format("csv").option("header", str(source.csv.header).lower()).option("sep", source.csv.delimiter)
            reader = reader.option("inferSchema", str(typed).lower())
            if source.csv.max_line_size:
                reader = reader.option("maxCharsPerColumn", str(source.csv.max_line_size))
            # An empty unquoted field is null; a quoted "" stays '' (as on DuckDB): Spark compares
            # every value, quoted or not, with nullValue, so it must name a value no file holds.
            nulls = source.csv.null_strings
            reader = reader.option("nullValue", nulls[0] if nulls else "\u0001")
        case SourceFormat.JSONL:
            reader = reader.format("json").option("inferTimestamp", str(typed).lower()).option("primitivesAsString", str(not typed).lower())
        case SourceFormat.PARQUET:
            reader = reader.format("parquet").option("mergeSchema", "true")
    if source.timestamp_format:
        reader = reader.option("timestampFormat", spark_datetime_pattern(source.timestamp_format))
    if typed and source.columns and source.format != SourceFormat.PARQUET:
        from engine.backends.spark.types import spark_type_name

        declared = dict(source.columns)
        reader = reader.schema(", ".join(f"`{n.replace('`', '``')}` {spark_type_name(t)}" for n, t in declared.items()))
    return reader


def _times_as_utc(spark: "SparkSession", source: Source, df: "DataFrame", files: list[str]) -> "DataFrame":
    """Naive timestamps read in the source's timezone; values with an offset kept as the instants
    they name; a text column mixing both kinds is a DataError (F4)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    stamps = [f for f in df.schema.fields if isinstance(f.dataType, T.TimestampType | T.TimestampNTZType)]
    if not stamps:
        return df
    kinds: dict[str, bool] = {}  # column -> aware
    if source.format == SourceFormat.PARQUET:
        kinds = {f.name: isinstance(f.dataType, T.TimestampType) for f in stamps}
    elif source.timestamp_format:
        kinds = {f.name: "%z" in source.timestamp_format for f in stamps}
    else:
        text = _reader(spark, source, typed=False).load(files)
        counts = text.agg(*(x for f in stamps for x in (F.count(F.col(f.name)), F.count(F.when(F.col(f.name).rlike(_AWARE_TEXT), 1))))).toArrow().to_pylist()[0]
        values = list(counts.values())
        for i, f in enumerate(stamps):
            total, aware = values[2 * i], values[2 * i + 1]
            if 0 < aware < total:
                raise DataError(
                    f"{source.id}: column {f.name} mixes naive values and values with a UTC offset ({total - aware} naive, {aware} with an offset); "
                    f"a column is one kind throughout: make every value naive (read in the source's timezone: {source.timezone}) or give every value an offset"
                )
            kinds[f.name] = bool(aware)
    out = []
    for f in df.schema.fields:
        if f.name in kinds and not kinds[f.name]:
            # A naive wall-clock time: Spark read it as if in UTC (the session zone); shift it.
            out.append(F.to_utc_timestamp(F.col(f.name).cast("timestamp"), source.timezone).alias(f.name))
        elif f.name in kinds:
            out.append(F.col(f.name).cast("timestamp").alias(f.name))
        else:
            out.append(F.col(f.name))
    return df.select(*out)


def _check_same_columns(spark: "SparkSession", source: Source) -> None:
    """F7: every file of a multi-file source has the same columns."""
    if len(source.resolved_paths) < 2:
        return
    first: tuple[Path, list[str]] | None = None
    for path in source.resolved_paths:
        cols = _file_columns(spark, source, path)
        if first is None:
            first = (path, cols)
            continue
        if cols != first[1]:
            added = [c for c in cols if c not in first[1]]
            missing = [c for c in first[1] if c not in cols]
            diff = "; ".join(filter(None, [f"extra columns {added}" if added else "", f"missing columns {missing}" if missing else ""])) or "columns in a different order"
            raise DataError(f"{source.id}: file '{path.name}' does not match '{first[0].name}': {diff}")


def _file_columns(spark: "SparkSession", source: Source, path: Path) -> list[str]:
    try:
        if source.format == SourceFormat.PARQUET:
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        if source.format == SourceFormat.JSONL:
            return list(_json_key_order(path))
        if source.csv.header:
            import csv

            with open_text(path) as fh:
                return next(csv.reader(fh, delimiter=source.csv.delimiter), [])
        return _reader(spark, source, typed=False).load(str(path)).columns
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{source.id}: reading '{path.name}' failed: {first_line(exc)}") from None


def _json_key_order(path: Path) -> dict[str, int]:
    """Column order of a JSON lines file: keys in order of first appearance (Spark sorts them)."""
    order: dict[str, int] = {}
    with open_text(path) as fh:
        for n, line in enumerate(fh):
            if n >= 1000:
                break
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                for key in record:
                    order.setdefault(key, len(order))
    return order
