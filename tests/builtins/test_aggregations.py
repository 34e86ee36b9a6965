"""Windowed aggregations: DuckDB SQL against a brute-force oracle of the (t - window, t] contract."""

from __future__ import annotations

import math
import statistics
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.model.objects import AggFunction, Aggregation
from engine.backends.duckdb.aggregations import window_aggregation_sql

from . import check_golden, connect

BASE = datetime(2024, 3, 10, 0, 0, 0)
FUNCTIONS = list(AggFunction)


def _agg(column: str, function: AggFunction, seconds: int) -> Aggregation:
    return Aggregation(column, function, f"{seconds}s", seconds, f"{column}_{function.value}_{seconds}")


def _load(con, rows, tz: bool) -> None:
    ts_type = "TIMESTAMPTZ" if tz else "TIMESTAMP"
    con.execute(f'CREATE TABLE "src" ("k" VARCHAR, "k2" INTEGER, "t" {ts_type}, "x" DOUBLE, "n" BIGINT)')
    if rows:
        fixed = [
            (k, k2, t.replace(tzinfo=timezone.utc) if tz else t, x, n) for (k, k2, t, x, n) in rows
        ]
        con.executemany('INSERT INTO "src" VALUES (?, ?, ?, ?, ?)', fixed)


def _oracle_value(function: AggFunction, values: list):
    vals = [v for v in values if v is not None]
    if function is AggFunction.COUNT:
        return len(vals)
    if not vals:
        return None
    match function:
        case AggFunction.SUM:
            return sum(vals)
        case AggFunction.MEAN:
            return sum(vals) / len(vals)
        case AggFunction.MIN:
            return min(vals)
        case AggFunction.MAX:
            return max(vals)
        case AggFunction.STD:
            return statistics.stdev(vals) if len(vals) >= 2 else None
    raise AssertionError(function)


def _oracle(rows, keys: tuple[int, ...], aggs: list[Aggregation]) -> list[tuple]:
    """Brute force: one row per distinct (keys, t); rows of the same keys with time in (t - w, t]."""
    column_index = {"x": 3, "n": 4}

    def key_of(r):
        return tuple(r[i] for i in keys)

    out = []
    for key, t in sorted({(key_of(r), r[2]) for r in rows}):
        values = []
        for agg in aggs:
            lo = t - timedelta(seconds=agg.window_seconds)
            window = [r[column_index[agg.column]] for r in rows if key_of(r) == key and lo < r[2] <= t]
            values.append(_oracle_value(agg.function, window))
        out.append((*key, t, *values))
    return out


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-6)


def _assert_matches(got: list[tuple], want: list[tuple], aggs: list[Aggregation], n_keys: int) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g[: n_keys + 1] == w[: n_keys + 1]
        for agg, gv, wv in zip(aggs, g[n_keys + 1 :], w[n_keys + 1 :], strict=True):
            if agg.function in (AggFunction.COUNT, AggFunction.MIN, AggFunction.MAX):
                assert gv == wv, (agg.name, g, w)
            else:
                assert _close(gv, wv), (agg.name, g, w)


def _run(rows, key_cols: tuple[str, ...], aggs, tz: bool) -> list[tuple]:
    con = connect()
    _load(con, rows, tz)
    got = con.execute(window_aggregation_sql('"src"', key_cols, "t", aggs)).fetchall()
    if tz:  # compare as naive UTC
        got = [
            tuple(v.astimezone(timezone.utc).replace(tzinfo=None) if isinstance(v, datetime) else v for v in row)
            for row in got
        ]
    return got


# Minute offsets from a small set: many ties, and windows whose lower bound lands exactly on a row.
row_strategy = st.tuples(
    st.sampled_from(["a", "b", "c"]),
    st.sampled_from([1, 2]),
    st.integers(0, 12).map(lambda m: BASE + timedelta(minutes=10 * m)),
    st.one_of(st.none(), st.floats(-1000, 1000, allow_nan=False), st.integers(-5, 5).map(float)),
    st.one_of(st.none(), st.integers(-10**6, 10**6)),
)
agg_strategy = st.builds(
    _agg,
    st.sampled_from(["x", "n"]),
    st.sampled_from(FUNCTIONS),
    st.sampled_from([1, 60, 600, 1200, 1800, 3600, 86400]),
)


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(row_strategy, min_size=0, max_size=25),
    aggs=st.lists(agg_strategy, min_size=1, max_size=4, unique_by=lambda a: a.name),
    two_keys=st.booleans(),
    tz=st.booleans(),
)
def test_window_aggregation_matches_oracle(rows, aggs, two_keys, tz) -> None:
    """F3-style oracle: every value equals the brute-force (t - window, t] aggregate; peers included."""
    key_cols = ("k", "k2") if two_keys else ("k",)
    key_idx = (0, 1) if two_keys else (0,)
    got = _run(rows, key_cols, aggs, tz)
    _assert_matches(got, _oracle(rows, key_idx, aggs), aggs, len(key_cols))


@settings(max_examples=30, deadline=None)
@given(
    rows=st.lists(row_strategy, min_size=1, max_size=20),
    later=st.lists(row_strategy, min_size=1, max_size=10),
    aggs=st.lists(agg_strategy, min_size=1, max_size=3, unique_by=lambda a: a.name),
    cut=st.integers(0, 12),
)
def test_later_rows_never_change_earlier_outputs(rows, later, aggs, cut) -> None:
    """No later rows: replacing every input row with time > t never changes the output row at t."""
    cutoff = BASE + timedelta(minutes=10 * cut)
    shifted = [(k, k2, cutoff + (t - BASE) + timedelta(minutes=1), x, n) for (k, k2, t, x, n) in later]
    before = _run(rows, ("k",), aggs, tz=False)
    kept = [r for r in rows if r[2] <= cutoff]
    after = _run(kept + shifted, ("k",), aggs, tz=False)
    assert [r for r in before if r[1] <= cutoff] == [r for r in after if r[1] <= cutoff]


def test_boundary_is_open_below_closed_above() -> None:
    """A row exactly one window earlier is excluded; rows at t (peers) are all included."""
    rows = [
        ("a", 1, BASE, 1.0, None),
        ("a", 1, BASE + timedelta(hours=1), 2.0, None),
        ("a", 1, BASE + timedelta(hours=1), 4.0, None),
        ("a", 1, BASE + timedelta(hours=1, microseconds=1), 8.0, None),
    ]
    aggs = [_agg("x", AggFunction.SUM, 3600), _agg("x", AggFunction.COUNT, 3600)]
    got = _run(rows, ("k",), aggs, tz=False)
    assert got == [
        ("a", BASE, 1.0, 1),
        ("a", BASE + timedelta(hours=1), 6.0, 2),
        ("a", BASE + timedelta(hours=1, microseconds=1), 14.0, 3),
    ]


def test_std_is_sample_and_null_below_two_values() -> None:
    rows = [("a", 1, BASE, 1.0, None), ("a", 1, BASE + timedelta(minutes=1), 3.0, None)]
    got = _run(rows, ("k",), [_agg("x", AggFunction.STD, 3600)], tz=False)
    assert got[0][2] is None
    assert got[1][2] == pytest.approx(math.sqrt(2.0))


@pytest.mark.parametrize("bad", [0, -5, 1.5, True])
def test_rejects_non_positive_or_non_integer_window(bad) -> None:
    agg = Aggregation("x", AggFunction.SUM, "?", bad, "x_sum")
    with pytest.raises(ValueError):
        window_aggregation_sql('"src"', ["k"], "t", [agg])


def test_identifiers_are_quoted_and_sql_is_one_statement() -> None:
    """P5: hostile column names stay identifiers; the SQL parses as exactly one SELECT."""
    import sqlglot

    evil = 'x"; DROP TABLE t; --'
    sql = window_aggregation_sql('"src"', ['k"k'], "t", [Aggregation(evil, AggFunction.MAX, "1h", 3600, "m")])
    statements = sqlglot.parse(sql, read="duckdb")
    assert len(statements) == 1 and isinstance(statements[0], sqlglot.exp.Select)
    assert '"x""; DROP TABLE t; --"' in sql and '"k""k"' in sql


def test_generated_sql_golden() -> None:
    aggs = [
        Aggregation("precip", AggFunction.SUM, "3h", 3 * 3600, "precip_sum_3h"),
        Aggregation("wind_speed", AggFunction.MAX, "6h", 6 * 3600, "wind_speed_max_6h"),
        Aggregation("temp", AggFunction.STD, "1d", 86400, "temp_std_1d"),
    ]
    check_golden("window_aggregation_sql", window_aggregation_sql('"staging"."in_1"', ["origin"], "time_hour", aggs))


def test_every_aggregation_function_is_declared_everywhere_the_recipe_names() -> None:
    """docs/architecture.md, "an aggregation function": the enum and its type table
    (engine/model/objects.py), the schema's enum, and the DuckDB backend's aggregate map agree."""
    from engine.backends.duckdb.aggregations import _SQL_FUNCTION
    from engine.model.objects import AGGREGATION_TYPES, AggFunction
    from engine.spec.schema import load_schema

    names = [f.value for f in AggFunction]
    assert set(AGGREGATION_TYPES) == set(AggFunction)
    assert set(_SQL_FUNCTION) == set(AggFunction)
    enums = [node["enum"] for node in _walk(load_schema()) if isinstance(node, dict) and "count" in node.get("enum", [])]
    assert enums == [names]


def _walk(node):
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)
