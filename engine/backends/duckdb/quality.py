"""DuckDB SQL for data expectations, primary-key checks and non-finite values on a staged table.

Every identifier goes through ``quote_ident``; every user value (bounds, sets, regex patterns) is
a bound ``?`` parameter. Turning failures into a ``DataError`` is the caller's decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.backends.base import ExpectationResult, json_safe
from engine.model.objects import Expectation, ExpectationKind
from engine.sql.quote import quote_ident

MAX_SAMPLES = 5
_FLOAT_TYPES = {"FLOAT", "DOUBLE", "REAL", "FLOAT4", "FLOAT8"}
_STRING_TYPES = {"VARCHAR", "TEXT", "STRING"}


def column_types(con: Any, relation: str) -> dict[str, str]:
    """Column name → DuckDB type name of ``relation``, in column order."""
    rows = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def _failure_condition(e: Expectation, col: str, sql_type: str) -> tuple[str, list[Any]]:
    """A WHERE condition true on failing rows of a per-row expectation, with its parameters."""
    is_float = sql_type.upper() in _FLOAT_TYPES
    nan = f" OR isnan({col})" if is_float else ""
    match e.kind:
        case ExpectationKind.NOT_NULL:
            return f"{col} IS NULL{nan}", []
        case ExpectationKind.BETWEEN:
            parts, params = [], []
            if e.low is not None:
                parts.append(f"{col} < ?")
                params.append(float(e.low))
            if e.high is not None:
                parts.append(f"{col} > ?")
                params.append(float(e.high))
            if is_float:
                parts.insert(0, f"isnan({col})")
            if not parts:
                return "FALSE", []
            return f"{col} IS NOT NULL AND ({' OR '.join(parts)})", params
        case ExpectationKind.IN_SET:
            values = [v for v in e.values if v is not None]
            if sql_type.upper() in _STRING_TYPES:
                values = [str(v) for v in values]
            if not values:
                return f"{col} IS NOT NULL", []
            marks = ", ".join("?" for _ in values)
            return f"{col} IS NOT NULL AND {col} NOT IN ({marks})", values
        case ExpectationKind.REGEX:
            if e.pattern is None:
                raise ValueError("regex expectation without a pattern")
            return (
                f"{col} IS NOT NULL AND NOT regexp_full_match(CAST({col} AS VARCHAR), ?)",
                [e.pattern],
            )
    raise ValueError(f"not a per-row expectation: {e.kind}")


def _run_one(con: Any, relation: str, e: Expectation, types: dict[str, str], total: int) -> ExpectationResult:
    if e.kind is ExpectationKind.ROW_COUNT:
        too_few = e.low is not None and total < e.low
        too_many = e.high is not None and total > e.high
        return ExpectationResult(e, int(too_few or too_many), total, ())
    if e.column is None or e.column not in types:
        raise ValueError(f"expectation column {e.column!r} is not a column of {relation}")
    col = quote_ident(e.column)
    if e.kind is ExpectationKind.UNIQUE:
        failing = (
            f"SELECT {col} FROM (SELECT {col}, count(*) OVER (PARTITION BY {col}) AS \"__engine_n\" "
            f"FROM {relation} WHERE {col} IS NOT NULL) WHERE \"__engine_n\" > 1"
        )
        params: list[Any] = []
    else:
        condition, params = _failure_condition(e, col, types[e.column])
        failing = f"SELECT {col} FROM {relation} WHERE {condition}"
    failed = con.execute(f"SELECT count(*) FROM ({failing})", params).fetchone()[0]
    samples: tuple[dict, ...] = ()
    if failed:
        rows = con.execute(
            f"SELECT DISTINCT {col} FROM ({failing}) ORDER BY {col} NULLS FIRST LIMIT {MAX_SAMPLES}",
            params,
        ).fetchall()
        samples = tuple({e.column: json_safe(r[0])} for r in rows)
    return ExpectationResult(e, int(failed), total, samples)


def run_expectations(con: Any, relation: str, expectations: Sequence[Expectation]) -> list[ExpectationResult]:
    """Run each expectation over ``relation`` (an already-quoted name); one result each, in order.

    Semantics: ``not_null`` fails NULL (and NaN) values; ``unique`` fails every row whose non-NULL
    value occurs more than once; ``between`` is inclusive, a ``None`` bound is open, NULL passes
    and NaN fails; ``in_set`` fails non-NULL values outside the set; ``regex`` fails non-NULL
    values that do not fully match; ``row_count`` fails (1 of N) outside [min, max]. Samples
    are up to 5 distinct failing values, sorted.
    """
    types = column_types(con, relation)
    total = int(con.execute(f"SELECT count(*) FROM {relation}").fetchone()[0])
    return [_run_one(con, relation, e, types, total) for e in expectations]


def check_primary_key(
    con: Any, relation: str, primary_key: Sequence[str], event_time: str | None, *, ordered: bool = False
) -> tuple[int, int, tuple[dict, ...]]:
    """F1/F2: ``(null_key_rows, duplicate_key_rows, samples)`` for the key (pk…, event_time).

    ``null_key_rows`` counts rows with NULL in any key column or the event time;
    ``duplicate_key_rows`` counts the rows (without NULL keys) whose key occurs more than once.
    ``samples`` holds up to 5 distinct offending keys as dicts: NULL keys first, then duplicates,
    each part sorted. ``ordered``: ``relation`` was stored sorted by the key, so one streamed pass
    can prove its keys unique (``_strictly_increasing``; it trusts no one: a table that is not in
    order only costs that pass before the hash check).
    """
    names = [*primary_key, *([event_time] if event_time else [])]
    if not names:
        raise ValueError("a primary key needs at least one column")
    cols = ", ".join(quote_ident(n) for n in names)
    any_null = " OR ".join(f"{quote_ident(n)} IS NULL" for n in names)
    total, null_rows = (int(v) for v in con.execute(f"SELECT count(*), coalesce(count_if({any_null}), 0) FROM {relation}").fetchone())
    if ordered and not null_rows and _strictly_increasing(con, relation, names):
        return 0, 0, ()
    # Counting the distinct keys proves them unique in one hash aggregate without a count per key
    # (0.65 s against 1.4 s for the GROUP BY ... HAVING below, over 10M rows); only when some key
    # repeats are the duplicated rows counted.
    # (without NULL keys, the filter is left out: it cost 5-10% of the check)
    not_null = f" WHERE NOT ({any_null})" if null_rows else ""
    distinct = int(con.execute(f"SELECT count(*) FROM (SELECT DISTINCT {cols} FROM {relation}{not_null})").fetchone()[0])
    dup_groups = (
        f"SELECT {cols}, count(*) AS \"__engine_n\" FROM {relation} "
        f"WHERE NOT ({any_null}) GROUP BY ALL HAVING count(*) > 1"
    )
    dup_rows = 0
    if distinct < total - null_rows:
        dup_rows = int(con.execute(f"SELECT coalesce(sum(\"__engine_n\"), 0) FROM ({dup_groups})").fetchone()[0])
    rows: list[tuple] = []
    if null_rows:
        rows += con.execute(
            f"SELECT DISTINCT {cols} FROM {relation} WHERE {any_null} "
            f"ORDER BY ALL NULLS FIRST LIMIT {MAX_SAMPLES}"
        ).fetchall()
    if dup_rows and len(rows) < MAX_SAMPLES:
        rows += con.execute(
            f"SELECT {cols} FROM ({dup_groups}) ORDER BY ALL LIMIT {MAX_SAMPLES - len(rows)}"
        ).fetchall()
    samples = tuple({n: json_safe(v) for n, v in zip(names, r, strict=True)} for r in rows)
    return null_rows, dup_rows, samples


#: Key types whose order and equality DuckDB's comparison and its DISTINCT share: not floats (NaN,
#: -0.0), nor nested types.
_ORDERED_KEY_TYPES = {
    "BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
    "UHUGEINT", "VARCHAR", "DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS",
}  # fmt: skip


def _strictly_increasing(con: Any, relation: str, names: Sequence[str]) -> bool:
    """Whether one scan of ``relation`` reads its rows in strictly increasing key order, which
    proves every key unique: each row is compared with the one before it (``lag() OVER ()``, a
    streaming window: 0.1 s over 10M rows of a two-column key, against 0.69 s for ``DISTINCT``).

    The proof needs nothing from how the rows were stored or scanned: whatever order the window
    saw them in, a sequence that only increases holds no two equal keys. A table not stored in
    key order just fails it (so callers try it only on tables they wrote sorted). The first row
    is the only one without a predecessor, or the proof fails too. No NULL key may be present
    (the caller counts them first); key types outside ``_ORDERED_KEY_TYPES`` are not tried.
    """
    types = column_types(con, relation)
    if any(types.get(n, "").upper() not in _ORDERED_KEY_TYPES and not types.get(n, "").upper().startswith("DECIMAL") for n in names):
        return False
    cols = [quote_ident(n) for n in names]
    prev = [quote_ident(f"__engine_prev_{i}") for i in range(len(names))]
    greater = f"{cols[-1]} > {prev[-1]}"  # (cols) > (prev), lexicographically
    for col, before in zip(reversed(cols[:-1]), reversed(prev[:-1]), strict=True):
        greater = f"{col} > {before} OR ({col} = {before} AND ({greater}))"
    lagged = ", ".join(f"lag({c}) OVER () AS {p}" for c, p in zip(cols, prev, strict=True))
    rows, firsts, not_greater = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {prev[0]} IS NULL), count(*) FILTER (WHERE NOT ({greater})) "
        f"FROM (SELECT {', '.join(cols)}, {lagged} FROM {relation})"
    ).fetchall()[0]
    return int(not_greater) == 0 and int(firsts) == min(int(rows), 1)


def non_finite_counts(con: Any, relation: str, files: Sequence[str] = ()) -> dict[str, int]:
    """F5: NaN and ±inf values per float column of ``relation`` (columns with none left out).

    ``files``: the Parquet files ``relation`` reads, when known. A column whose every row group's
    footer counts no NaN and gives a finite minimum and maximum (or holds only NULLs) has no
    non-finite value, and is not scanned: DuckDB writes those figures (``nan_count`` since 1.4;
    it leaves min/max out of a row group holding ±inf), other writers may not, and a file without
    them is scanned as before. Saved a 0.08 s scan per 10M rows of two float columns."""
    floats = [c for c, t in column_types(con, relation).items() if t in ("DOUBLE", "FLOAT", "REAL")]
    if floats and files:
        floats = [c for c in floats if c not in _finite_by_footer(con, files, floats)]
    if not floats:
        return {}
    counts = con.execute(
        f"SELECT {', '.join(f'count(*) FILTER (WHERE NOT isfinite({quote_ident(c)}))' for c in floats)} FROM {relation}"
    ).fetchall()[0]
    return {c: int(n) for c, n in zip(floats, counts) if n}


def _finite_by_footer(con: Any, files: Sequence[str], columns: Sequence[str]) -> set[str]:
    """The ``columns`` that every row group of ``files`` proves free of NaN and ±inf."""
    finite = (
        "stats_nan_count = 0 AND (CASE WHEN stats_min_value IS NULL AND stats_max_value IS NULL THEN stats_null_count = num_values "
        "ELSE isfinite(TRY_CAST(stats_min_value AS DOUBLE)) AND isfinite(TRY_CAST(stats_max_value AS DOUBLE)) END)"
    )
    rows = con.execute(
        f"SELECT path_in_schema, bool_and(coalesce({finite}, false)), count(DISTINCT file_name) "
        "FROM parquet_metadata(?) WHERE path_in_schema IN (SELECT unnest(?)) GROUP BY path_in_schema",
        [list(files), list(columns)],
    ).fetchall()
    return {name for name, proven, in_files in rows if proven and in_files == len(set(files))}


def nullify_non_finite(con: Any, relation: str, columns: Sequence[str]) -> None:
    """Set NaN and ±inf values of ``columns`` to NULL, in place."""
    sets = ", ".join(f"{quote_ident(c)} = CASE WHEN isfinite({quote_ident(c)}) THEN {quote_ident(c)} END" for c in columns)
    con.execute(f"UPDATE {relation} SET {sets}")
