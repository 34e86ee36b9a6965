"""Reading source files into DuckDB: one reader per format (``READERS``), quarantine of bad rows
(F6), the multi-file column check (F7), timestamp columns of one kind stored as UTC instants (F4),
and read errors that name the file, the line and the column.

Owns how a declared source becomes a table; must not touch feature-group semantics.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from engine.errors import DataError, InternalError
from engine.model.formats import open_text
from engine.model.objects import BadRows, Source, SourceFormat
from engine.sql.quote import quote_ident

Reader = Callable[[Source], tuple[str, list[object]]]  # a source -> (SELECT reading its files, parameters)


def ingest_query(source: Source) -> tuple[str, list[object]]:
    """The SELECT (and its parameters) that reads a source's files in DuckDB, from its format's reader.

    Paths come from the resolved, confined list and travel as parameters. Multi-file sources use
    ``union_by_name`` so that drifting columns are never dropped silently (V18, F7). Timestamps are
    normalised afterwards (:func:`normalise_times_sql`), whatever the format.
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
    return _jsonl_query(source)


def _jsonl_query(source: Source, columns: dict[str, str] | None = None) -> tuple[str, list[object]]:
    """read_json; with ``columns`` (every column, name -> type) nothing is detected."""
    params: list[object] = [_files(source)]
    options = ["format='newline_delimited'", f"columns={_struct(columns)}" if columns else "union_by_name=true"]
    if source.timestamp_format:
        options.append("timestampformat=?")
        params.append(source.timestamp_format)
    return f"SELECT * FROM read_json(?, {', '.join(options)})", params


def read_csv(source: Source) -> tuple[str, list[object]]:
    return _csv_query(source)


def _csv_query(source: Source, retype: dict[str, str] | None = None, sniffed: dict[str, str] | None = None) -> tuple[str, list[object]]:
    """read_csv with the declared column types, overridden by ``retype``.

    NULLs: an empty unquoted field is NULL; a quoted empty string ``""`` stays an empty string —
    DuckDB's ``allow_quoted_nulls=false``, which needs every column's type given (``sniffed``, as
    the sniffer typed them with quoted nulls allowed: otherwise a column of numbers holding ``""``
    would become text). ``csv.null_strings`` names the values read as NULL instead, quoted or not."""
    params: list[object] = [_files(source)]
    # Quarantine keeps bad rows aside (DuckDB's rejects tables, which exclude union_by_name;
    # multi-file sources are checked for identical columns before reading, F7).
    options = ["store_rejects=true"] if source.on_bad_rows == BadRows.QUARANTINE else ["union_by_name=true"]
    options.append("header=true" if source.csv.header else "header=false")
    options.append("delim=?")
    params.append(source.csv.delimiter)
    types = {**(sniffed or {}), **dict(source.columns), **(retype or {})}
    if types:  # a struct literal of name -> type (declared types validated by the schema)
        options.append(f"types={_struct(types)}")
    if source.csv.null_strings is not None:
        options.append("nullstr=?")
        params.append(list(source.csv.null_strings))
    elif sniffed is not None:
        options.append("allow_quoted_nulls=false")
    if source.timestamp_format:
        options.append("timestampformat=?")
        params.append(source.timestamp_format)
    if source.csv.max_line_size:
        options.append("max_line_size=?")
        params.append(source.csv.max_line_size)
    return f"SELECT * FROM read_csv(?, {', '.join(options)})", params


# The formats this backend reads; its ``capabilities.source_formats`` are these names.
READERS: dict[str, Reader] = {
    SourceFormat.CSV: read_csv,
    SourceFormat.PARQUET: read_parquet,
    SourceFormat.JSONL: read_jsonl,
}

# Text formats, whose timestamps DuckDB parses (and whose sniffer types a column from a sample):
# how to read one with chosen column types, (source, the columns as sniffed, overrides) -> query.
# Parquet columns carry their own type, TIMESTAMP or TIMESTAMPTZ, and cannot mix the two.
Retyped = Callable[[Source, dict[str, str], dict[str, str]], tuple[str, list[object]]]
_RETYPED: dict[str, Retyped] = {
    SourceFormat.CSV: lambda source, sniffed, retype: _csv_query(source, retype, sniffed),
    SourceFormat.JSONL: lambda source, sniffed, retype: _jsonl_query(source, {**sniffed, **retype}),
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


def _struct(mapping: dict[str, str]) -> str:
    return "{" + ", ".join(f"{_sql_string(n)}: {_sql_string(t)}" for n, t in mapping.items()) + "}"


# --- timestamps (F4) ----------------------------------------------------------------------------------


class TimeKind(str, Enum):
    """What the values of one timestamp column are; a column is one kind throughout."""

    NAIVE = "naive"  # wall-clock times, read in the source's timezone
    AWARE = "aware"  # instants: every value carries a UTC offset or a zone name


@dataclass(frozen=True)
class TimeColumn:
    kind: TimeKind
    text: bool = False  # the raw table holds the column's text, cast when normalised


_NAIVE_TYPES = frozenset({"TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "DATETIME"})
_AWARE_TYPES = frozenset({"TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"})
# A value whose time of day is followed by what DuckDB's TIMESTAMPTZ cast reads as a zone: Z, +05,
# +0530, +05:30, UTC, EST, America/New_York. One syntax for RE2 (in DuckDB) and Python's re.
_AWARE_TEXT = r"[0-9]:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?\s*(Z|[+-][0-9]{1,2}(:?[0-9]{2}){0,2}|[A-Za-z]{3,5}|[A-Za-z_]+/[A-Za-z0-9_/+-]+)\s*$"


def _time_type(typ: str) -> TimeKind | None:
    upper = typ.upper()
    return TimeKind.NAIVE if upper in _NAIVE_TYPES else TimeKind.AWARE if upper in _AWARE_TYPES else None


def normalise_times_sql(relation: str, columns: dict[str, str], timezone: str, times: dict[str, TimeColumn] | None = None) -> str:
    """Project a relation so every timestamp column becomes a UTC TIMESTAMPTZ: naive values read in
    ``timezone``, values with an offset as the instants they name.

    ``times`` says what each column holds (from :func:`read_source`); a column it does not name
    is taken at its type: TIMESTAMP naive, TIMESTAMPTZ aware. A text column is cast with TRY_CAST
    (a value it cannot read becomes NULL, which :func:`read_source` checks for).
    """
    tz = _sql_string(timezone)
    parts = []
    for name, typ in columns.items():
        q = quote_ident(name)
        time = (times or {}).get(name)
        if time is None:
            kind = _time_type(typ)
            time = TimeColumn(kind) if kind else None
        if time is None:
            parts.append(q)
        elif time.text:
            parts.append(f"timezone({tz}, TRY_CAST({q} AS TIMESTAMP)) AS {q}" if time.kind is TimeKind.NAIVE else f"TRY_CAST({q} AS TIMESTAMPTZ) AS {q}")
        elif _time_type(typ) is TimeKind.AWARE:  # naive values in a TIMESTAMPTZ column were read as UTC
            parts.append(q if time.kind is TimeKind.AWARE else f"timezone({tz}, timezone('UTC', {q})) AS {q}")
        else:  # a TIMESTAMP column holds naive values, or (timestamp_format with %z) instants in UTC
            zone = tz if time.kind is TimeKind.NAIVE else "'UTC'"
            parts.append(f"timezone({zone}, CAST({q} AS TIMESTAMP)) AS {q}")
    return f"SELECT {', '.join(parts)} FROM {relation}"


def _sniff(con, source: Source, query: tuple[str, list[object]]) -> dict[str, str]:
    """The columns of a text format as DuckDB types them from its sample ({} for other formats)."""
    if source.format not in _RETYPED:  # Parquet, or a format registered without a text reading
        return {}
    try:
        return {r[0]: r[1] for r in con.execute(f"DESCRIBE {query[0]}", query[1]).fetchall()}
    except Exception as exc:  # a file DuckDB cannot even sniff
        raise _read_failure(con, source, exc) from exc


def _kinds(con, source: Source, raw: str, columns: list[str]) -> dict[str, tuple[TimeKind, int]]:
    """The kind and the number of values of each text column of ``raw``; a DataError for a column
    mixing naive values and values with an offset. One aggregate over the stored text."""
    aggregates = []
    for column in columns:
        q = quote_ident(column)
        aggregates += [f"count({q})", f"count(*) FILTER (WHERE regexp_matches({q}, {_sql_string(_AWARE_TEXT)}))"]
    row = con.execute(f"SELECT {', '.join(aggregates)} FROM {raw}").fetchone()
    kinds = {}
    for i, column in enumerate(columns):
        values, aware = row[2 * i], row[2 * i + 1]
        if 0 < aware < values:
            raise _mixed_kinds(source, column, values, aware)
        kinds[column] = (TimeKind.AWARE if aware else TimeKind.NAIVE, values)
    return kinds


def _mixed_kinds(source: Source, column: str, values: int, aware: int) -> DataError:
    naive = values - aware
    report_aware = aware <= naive  # name the first value of the rarer kind
    pattern = re.compile(_AWARE_TEXT)
    where = f"column {column}: a value"
    scan = _VALUE_SCANS.get(source.format)
    for file, line, value in scan(source, column) if scan else ():
        if bool(pattern.search(value.strip())) == report_aware:
            where = f"{file} line {line} column {column}: '{_clip(value)}'"
            break
    what = "has a UTC offset but the column's other values are naive" if report_aware else "has no UTC offset but the column's other values have one"
    return DataError(
        f"{source.id}: {where} {what} ({naive} naive, {aware} with an offset); a column is one kind throughout: "
        f"make every value naive (they are read in the source's timezone: {source.timezone}), or give every value an offset, "
        "or declare the source's timestamp_format (with %z every value must carry an offset, e.g. '%Y-%m-%d %H:%M:%S%z')"
    )


# --- reading ------------------------------------------------------------------------------------------


def check_same_columns(con, source: Source) -> None:
    """F7: every file of a multi-file source has the same columns (DuckDB would silently drop or
    NULL-fill the difference, V18)."""
    if len(source.resolved_paths) < 2:
        return
    first_cols: list[str] | None = None
    for path in source.resolved_paths:
        single = dataclasses.replace(source, resolved_paths=(path,))
        sql, params = ingest_query(single)
        try:
            cols = [r[0] for r in con.execute(f"DESCRIBE {sql}", params).fetchall()]
        except Exception as exc:
            raise DataError(f"{source.id}: reading '{path.name}' failed: {_explain(con, single, exc)}") from exc
        if first_cols is None:
            first_cols, first = cols, path
            continue
        if cols != first_cols:
            added = [c for c in cols if c not in first_cols]
            missing = [c for c in first_cols if c not in cols]
            diff = "; ".join(filter(None, [f"extra columns {added}" if added else "", f"missing columns {missing}" if missing else ""])) or "columns in a different order"
            raise DataError(f"{source.id}: file '{path.name}' does not match '{first.name}': {diff}")


def _drop_rejects(con) -> None:
    con.execute("DROP TABLE IF EXISTS reject_errors")
    con.execute("DROP TABLE IF EXISTS reject_scans")


def rejected_rows(con, source: Source) -> list[tuple]:
    """F6 quarantine: rows DuckDB set aside while reading; fail past ``max_bad_rows``."""
    rows = con.execute(
        "SELECT s.file_path, e.line, e.column_name, CAST(e.error_type AS VARCHAR), e.csv_line, e.error_message "
        "FROM reject_errors e JOIN reject_scans s USING (scan_id, file_id) ORDER BY s.file_path, e.line"
    ).fetchall()
    _drop_rejects(con)
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

    Returns (rows, rejected rows). DataError for a missing, empty or unreadable source (F6-F8), and
    for a timestamp column mixing naive values and values with an offset (F4).

    DuckDB types a text column from a sample: one value with an offset among naive ones made the
    whole column TIMESTAMPTZ (the naive values then read as UTC), and an offset past the sample was
    dropped. So the timestamp columns of csv and jsonl sources are read as text, their kind counted
    in one aggregate and cast here. ``timestamp_format`` makes DuckDB parse them strictly instead.
    """
    if not source.resolved_paths:
        raise DataError(f"{source.id}: path '{source.path}' matches no file in the project")
    check_same_columns(con, source)
    raw = f"{target[:-1]}__raw\"" if target.endswith('"') else f"{target}__raw"

    def create(query: tuple[str, list[object]]) -> None:
        try:
            con.execute(f"CREATE OR REPLACE TABLE {raw} AS {query[0]}", query[1])
        except Exception as exc:  # duckdb.Error: CSV conversion errors, unreadable files (F6, F7)
            if is_storage_failure(exc):
                raise
            raise _read_failure(con, source, exc) from exc

    query = ingest_query(source)
    sniffed = _sniff(con, source, query)
    if source.format == SourceFormat.CSV and source.csv.null_strings is None and sniffed:
        query = _csv_query(source, None, sniffed)  # a quoted "" is text: every column typed as sniffed
    stamps = [c for c, t in sniffed.items() if _time_type(t)]
    if not stamps:
        create(query)
        return _publish(con, source, raw, target, {})
    if source.timestamp_format:  # DuckDB applies it to TIMESTAMP columns only (not TIMESTAMPTZ, _NS)
        create(_RETYPED[source.format](source, sniffed, {c: "TIMESTAMP" for c in stamps}))
        kind = TimeKind.AWARE if "%z" in source.timestamp_format else TimeKind.NAIVE
        return _publish(con, source, raw, target, {c: TimeColumn(kind) for c in stamps})
    create(_RETYPED[source.format](source, sniffed, {c: "VARCHAR" for c in stamps}))
    kinds = _kinds(con, source, raw, stamps)
    done = _publish(con, source, raw, target, {c: TimeColumn(k, text=True) for c, (k, _) in kinds.items()}, {c: n for c, (_, n) in kinds.items()})
    if done is not None:
        return done
    # A value no timestamp cast reads: a layout DuckDB's sniffer recognised, or a bad value. DuckDB
    # reads the files again with the types it chose, and names the line and column of a bad value.
    create(query)
    typed = {r[0]: r[1] for r in con.execute(f"DESCRIBE {raw}").fetchall()}
    for column, (kind, _) in kinds.items():
        if kind is TimeKind.AWARE and _time_type(typed[column]) is TimeKind.NAIVE:
            raise DataError(
                f"{source.id}: column {column}: its values carry a UTC offset in a layout DuckDB reads without it; "
                "declare the source's timestamp_format with %z (e.g. '%d/%m/%Y %H:%M%z')"
            )
    return _publish(con, source, raw, target, {c: TimeColumn(k) for c, (k, _) in kinds.items()})


def _publish(con, source: Source, raw: str, target: str, times: dict[str, TimeColumn], values: dict[str, int] | None = None) -> tuple[int, list[tuple]] | None:
    """``raw`` normalised into ``target``: (rows, rejected rows); None (both tables gone) when a text
    timestamp column held a value its cast could not read (``values``: the non-NULL count of each)."""
    # The caller's transaction rolls the tables back on any failure below; after a storage error
    # the transaction is aborted and no statement (not even a DROP) may run.
    rows = con.execute(f"SELECT count(*) FROM {raw}").fetchone()[0]
    if rows == 0 and not source.allow_empty:
        raise DataError(f"{source.id}: '{source.path}' has no rows (set allow_empty: true if that is expected)")
    columns = {r[0]: r[1] for r in con.execute(f"DESCRIBE {raw}").fetchall()}
    rejected = rejected_rows(con, source) if source.on_bad_rows == BadRows.QUARANTINE else []
    con.execute(f"CREATE OR REPLACE TABLE {target} AS {normalise_times_sql(raw, columns, source.timezone, times)}")
    if values:
        cast = con.execute(f"SELECT {', '.join(f'count({quote_ident(c)})' for c in values)} FROM {target}").fetchone()
        if list(cast) != list(values.values()):
            con.execute(f"DROP TABLE {target}")
            con.execute(f"DROP TABLE {raw}")
            return None
    con.execute(f"DROP TABLE {raw}")
    return rows, rejected


# --- read errors that name the file, the line and the column (F6) -------------------------------------

_CSV_LINE = re.compile(r"CSV Error on Line: (\d+)")
_CSV_FILE = re.compile(r"^\s*file = (.+?)\s*$", re.M)
_CONVERT = re.compile(r"Error when converting column \"(.+?)\"\. Could not convert string \"(.*?)\" to '([^']+)'", re.S)
_LINE_SIZE = re.compile(r"Maximum line size of (\d+) bytes exceeded")
_FIELDS = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")


def _read_failure(con, source: Source, exc: BaseException) -> DataError:
    return DataError(f"{source.id}: reading '{source.path}' failed: {_explain(con, source, exc)}")


def _explain(con, source: Source, exc: BaseException) -> str:
    """What went wrong and where: ``file line N column C: ...`` for CSV, DuckDB's first line otherwise."""
    text = str(exc)
    line_match = _CSV_LINE.search(text)
    if source.format != SourceFormat.CSV or line_match is None:
        return _first_line(exc)
    file_match = _CSV_FILE.search(text)
    file = Path(file_match.group(1)).name if file_match else source.resolved_paths[0].name
    where = f"{file} line {line_match.group(1)}"
    if size := _LINE_SIZE.search(text):
        return _oversized_line(source, int(size.group(1)), where)
    if convert := _CONVERT.search(text):
        column, value, typ = convert.groups()
        typ = "TIMESTAMPTZ" if typ.upper() == "TIMESTAMP WITH TIME ZONE" else typ
        note = f" with timestamp_format '{source.timestamp_format}'" if source.timestamp_format and _time_type(typ) else ""
        if value == "" and source.csv.null_strings is None:  # a quoted "" is an empty string, not NULL
            return (f"{where} column {column}: cannot convert the quoted empty string \"\" to {typ} "
                    "(a quoted \"\" is text, an empty unquoted field is NULL): declare csv: {null_strings: [\"\"]} on the source to read it as NULL")
        return f"{where} column {column}: cannot convert '{_clip(value)}' to {typ}{note}{_epoch_hint(column, value, typ)}"
    if fields := _FIELDS.search(text):
        first = "the header" if source.csv.header else "the first line"
        return f"{where}: {fields.group(2)} fields where {first} has {fields.group(1)}"
    column = _rejected_column(con, source, file, int(line_match.group(1)))
    return f"{where}{f' column {column}' if column else ''}: {_csv_reason(text)}"


def _epoch_hint(column: str, value: str, typ: str) -> str:
    """F4, epoch seconds vs milliseconds: a number where a timestamp was declared."""
    if _time_type(typ) is None or not re.fullmatch(r"\s*-?[0-9]+(\.[0-9]*)?\s*", value):
        return ""
    number = abs(float(value))
    if number > 1e14:
        return f"; it looks like epoch microseconds: declare the column BIGINT and convert it in SQL with make_timestamp({column})"
    if number > 1e11:  # as seconds: past the year 5138
        year = int(1970 + number / 31_556_952)
        return f"; it looks like epoch milliseconds (read as seconds it would be in the year {year}): declare the column BIGINT and convert it in SQL with epoch_ms({column})"
    return f"; it looks like epoch seconds: declare the column BIGINT and convert it in SQL with to_timestamp({column})"


def _csv_reason(text: str) -> str:
    """DuckDB's one-line reason, which follows the echoed 'Original Line'."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Original Line:"):
            return next((rest.strip() for rest in lines[i + 1 :] if rest.strip()), lines[0])
    return lines[0] if lines else "unreadable"


def _rejected_column(con, source: Source, file: str, line: int) -> str | None:
    """The column of the bad row at ``file`` ``line``: the read again on a cursor (the caller's
    transaction is aborted) with DuckDB's rejects tables."""
    sql, params = _csv_query(dataclasses.replace(source, on_bad_rows=BadRows.QUARANTINE))
    cur = con.cursor()
    try:
        cur.execute(f"CREATE TEMP TABLE _engine_probe AS {sql}", params)
        found = cur.execute(
            "SELECT s.file_path, e.line, e.column_name FROM reject_errors e JOIN reject_scans s USING (scan_id, file_id) "
            "WHERE e.column_name IS NOT NULL ORDER BY s.file_path, e.line"
        ).fetchall()
    except Exception:  # the message without a column is still right
        return None
    finally:
        cur.close()
    return next((c for f, n, c in found if Path(f).name == file and n == line), None)


def _oversized_line(source: Source, limit: int, where: str) -> str:
    """A line longer than the reader's max_line_size, found by a scan of the files (DuckDB reports
    "Line: 1" for a long line inside its sniffing sample)."""
    for file, line, names, row in _csv_rows(source):
        if sum(map(len, row)) * 4 + len(row) <= limit:  # at most 4 UTF-8 bytes a character
            continue
        sizes = [len(value.encode()) for value in row]
        if sum(sizes) + len(row) <= limit:
            continue
        widest = max(range(len(sizes)), key=sizes.__getitem__)
        column = names[widest] if names and widest < len(names) else f"column{widest}"
        suggest = ((sum(sizes) + len(row) + 2) // (1 << 20) + 1) << 20  # the next MiB
        return (
            f"{file} line {line} column {column}: a field of {sizes[widest]} bytes makes the line longer than the CSV reader's "
            f"max_line_size ({limit} bytes); if the value is genuine, raise the limit on the source: csv: {{max_line_size: {suggest}}}"
        )
    return f"{where}: the line is longer than the CSV reader's max_line_size ({limit} bytes); raise it on the source with csv: {{max_line_size: ...}}"


def _csv_rows(source: Source) -> Iterator[tuple[str, int, list[str] | None, list[str]]]:
    """(file name, line where the row starts, header, fields) for every row of a CSV source, read
    in Python for error reports only."""
    import csv

    if len(source.csv.delimiter) != 1:  # Python's csv reads one-character delimiters only
        return
    limit = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)
    try:
        for path in source.resolved_paths:
            with open_text(path) as fh:
                reader = csv.reader(fh, delimiter=source.csv.delimiter)
                names = next(reader, None) if source.csv.header else None
                start = reader.line_num + 1
                for row in reader:
                    yield path.name, start, names, row
                    start = reader.line_num + 1
    finally:
        csv.field_size_limit(limit)


def _csv_values(source: Source, column: str) -> Iterator[tuple[str, int, str]]:
    for file, line, names, row in _csv_rows(source):
        if names is not None:
            index = names.index(column) if column in names else None
        else:  # DuckDB names the columns of a file without a header column0, column1, ...
            index = int(column[6:]) if re.fullmatch(r"column[0-9]+", column) else None
        if index is not None and index < len(row) and row[index]:
            yield file, line, row[index]


def _jsonl_values(source: Source, column: str) -> Iterator[tuple[str, int, str]]:
    import json

    for path in source.resolved_paths:
        with open_text(path) as fh:
            for line, text in enumerate(fh, start=1):
                try:
                    value = json.loads(text).get(column)
                except (ValueError, AttributeError):
                    continue
                if isinstance(value, str):
                    yield path.name, line, value


# (source, column) -> (file name, line, text) of each value, for locating the value an error names.
_VALUE_SCANS: dict[str, Callable[[Source, str], Iterator[tuple[str, int, str]]]] = {
    SourceFormat.CSV: _csv_values,
    SourceFormat.JSONL: _jsonl_values,
}


def _clip(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else value[:limit] + f"… ({len(value)} characters)"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
