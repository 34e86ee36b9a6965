"""Descriptive statistics against pandas ``describe()`` on random tables; JSON-safe output."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.backends.duckdb.stats import compute_stats

from . import connect

BASE = datetime(2024, 1, 1)
row = st.tuples(
    st.one_of(st.none(), st.integers(-1000, 1000)),
    st.one_of(st.none(), st.just(math.nan), st.floats(-1e6, 1e6)),
    st.one_of(st.none(), st.text(alphabet="abcé☃", max_size=6)),
    st.one_of(st.none(), st.integers(0, 10_000).map(lambda m: BASE + timedelta(minutes=m))),
    st.one_of(st.none(), st.booleans()),
)


def _close(a, b) -> bool:
    if a is None or b is None or (isinstance(b, float) and math.isnan(b)):
        return a is None and (b is None or math.isnan(b))
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(row, max_size=30))
def test_stats_match_pandas_describe(rows) -> None:
    con = connect()
    con.execute('CREATE TABLE "t" ("i" BIGINT, "x" DOUBLE, "s" VARCHAR, "ts" TIMESTAMPTZ, "b" BOOLEAN)')
    if rows:
        con.executemany(
            'INSERT INTO "t" VALUES (?, ?, ?, ?, ?)',
            [(i, x, s, ts.replace(tzinfo=timezone.utc) if ts else None, b) for i, x, s, ts, b in rows],
        )
    stats = compute_stats(con, '"t"')
    json.dumps(stats, allow_nan=False)
    assert list(stats) == ["i", "x", "s", "ts", "b"]
    assert stats["ts"]["type"] == "TIMESTAMP WITH TIME ZONE"

    frame = pd.DataFrame(rows, columns=["i", "x", "s", "ts", "b"], dtype=object)
    for name in ("i", "x"):
        col = pd.to_numeric(frame[name], errors="coerce").astype("float64")
        got = stats[name]
        assert got["count"] == int(col.count())
        assert got["nulls"] + got.get("nans", 0) == int(col.isna().sum())
        if col.count() == 0:
            assert all(got[k] is None for k in ("mean", "std", "min", "max", "p25", "p50", "p75"))
            continue
        d = col.describe()
        for ours, theirs in [("mean", "mean"), ("std", "std"), ("min", "min"), ("max", "max"),
                             ("p25", "25%"), ("p50", "50%"), ("p75", "75%")]:  # fmt: skip
            assert _close(got[ours], float(d[theirs])), (name, ours, got[ours], d[theirs])
        assert abs(got["distinct"] - col.nunique()) <= max(1, 0.05 * col.nunique())
    if any(r[0] is not None for r in rows):
        assert isinstance(stats["i"]["min"], int)
    assert stats["x"]["nans"] == sum(isinstance(r[1], float) and math.isnan(r[1]) for r in rows)

    strings = [r[2] for r in rows if r[2] is not None]
    assert stats["s"]["count"] == len(strings)
    assert stats["s"]["min_length"] == (min(map(len, strings)) if strings else None)
    assert stats["s"]["max_length"] == (max(map(len, strings)) if strings else None)

    times = [r[3] for r in rows if r[3] is not None]
    want = (min(times).isoformat() + "+00:00", max(times).isoformat() + "+00:00") if times else (None, None)
    assert (stats["ts"]["min"], stats["ts"]["max"]) == want
    assert stats["b"]["count"] == sum(r[4] is not None for r in rows)
    assert set(stats["b"]) == {"type", "count", "nulls", "distinct"}


def test_non_finite_results_become_none_and_decimals_floats() -> None:
    con = connect()
    con.execute('CREATE TABLE "t" ("x" DOUBLE, "d" DECIMAL(10, 2), "dt" DATE)')
    con.executemany(
        'INSERT INTO "t" VALUES (?, ?, ?)',
        [(math.inf, "1.25", "2024-02-29"), (1.0, "2.50", None), (math.nan, None, "2023-01-01")],
    )
    stats = compute_stats(con, '"t"')
    assert stats["x"]["mean"] is None and stats["x"]["max"] is None  # inf -> None
    assert stats["x"]["min"] == 1.0 and stats["x"]["count"] == 2 and stats["x"]["nans"] == 1
    assert stats["d"]["min"] == 1.25 and isinstance(stats["d"]["min"], float)
    assert stats["dt"] == {"type": "DATE", "count": 2, "nulls": 1, "distinct": 2,
                           "min": "2023-01-01", "max": "2024-02-29"}  # fmt: skip
    json.dumps(stats, allow_nan=False)


def test_hostile_column_names_are_quoted() -> None:
    con = connect()
    con.execute('CREATE TABLE "t" ("a""b; DROP TABLE t" INTEGER)')
    con.execute('INSERT INTO "t" VALUES (1), (3)')
    stats = compute_stats(con, '"t"')
    assert stats['a"b; DROP TABLE t']["mean"] == 2.0
    assert con.execute('SELECT count(*) FROM "t"').fetchone() == (2,)


def test_empty_table_counts_are_zero() -> None:
    con = connect()
    con.execute('CREATE TABLE "t" ("x" DOUBLE, "s" VARCHAR)')
    stats = compute_stats(con, '"t"')
    assert stats["x"]["count"] == 0 and stats["x"]["nulls"] == 0 and stats["x"]["mean"] is None
    assert stats["s"] == {"type": "VARCHAR", "count": 0, "nulls": 0, "distinct": 0,
                          "min_length": None, "max_length": None}  # fmt: skip
