"""Backend contract, part 2: the feature-store operations of ``engine.sql.ops`` against oracles.

Each op is compiled by the backend under test and compared with a brute-force reading of its
docstring (STYLE habit 10): the point-in-time join with the oracle of tests/pit (RELIABILITY F3),
windowed aggregations with a literal (t - w, t] loop, latest-per-key with pandas, dedupe, binning
and the spine filters of ``Scan``. Asserted through the ``Backend`` protocol only.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import DataError, EngineError
from engine.model.objects import AggFunction, Aggregation, Binning
from engine.sql.ops import (
    Bin,
    DedupeLatest,
    JoinSpec,
    LatestPerKey,
    NotIn,
    PointInTimeJoin,
    Scan,
    TimeRange,
    WindowAggregation,
)
from tests.contract.conftest import arrow, put, rows, staging, ts, user_filter
from tests.pit.test_point_in_time import SECOND, Table, brute_force_point_in_time, scenarios, to_arrow, to_micros

HYPOTHESIS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _pit(backend, spine: Table, spine_time: str | None, joins, filters=()) -> tuple[PointInTimeJoin, list]:
    """Write the spine and feature tables, return the op (relations rebound) and its joins."""
    put(backend, staging("spine"), to_arrow(spine), mode="replace")
    bound = []
    for number, (step, table) in enumerate(joins, start=1):
        relation = staging(f"g{number}")
        put(backend, relation, to_arrow(table), mode="replace")
        bound.append((dataclasses.replace(step, relation=relation), table))
    op = PointInTimeJoin(staging("spine"), spine_time, spine.columns, tuple(s for s, _ in bound), filters)
    return op, bound


def _micros(backend, op) -> list[tuple]:
    return [tuple(to_micros(v) for v in row.values()) for row in rows(backend, op)]


# --- point-in-time join (F3) --------------------------------------------------------------------------


@HYPOTHESIS
@given(scenario=scenarios())
def test_F3_point_in_time_join_equals_brute_force_oracle_in_spine_order(backend, scenario) -> None:
    """F3: ties, ttl boundaries, NULL keys and times, duplicate spine rows, keys-only groups, 1-3
    groups: the backend's rows equal the oracle's, one per spine row, in spine order."""
    spine, joins = scenario
    op, bound = _pit(backend, spine, "t", joins)
    got = _micros(backend, op)
    assert got == brute_force_point_in_time(spine, "t", spine.columns, bound)
    assert backend.count(op) == len(spine.rows)
    # Pruning the groups to the spine's keys (an incremental view's new rows) changes nothing.
    assert _micros(backend, dataclasses.replace(op, prune=True)) == got
    # Unordered (a write to storage that keeps no order): the same rows as a multiset.
    assert sorted(_micros(backend, dataclasses.replace(op, ordered=False)), key=repr) == sorted(got, key=repr)


def test_F3_keys_only_join_without_a_spine_time(backend) -> None:
    """A spine without event time joins keys-only groups; a missing or NULL key gets NULLs."""
    spine = Table(("id", "t"), ("int", "time"), ((1, None), (3, None), (None, None), (1, None)))
    fg = Table(("fid", "v"), ("int", "int"), ((1, 5), (2, 6)))
    step = JoinSpec(staging("x"), ("id",), ("fid",), None, (("v", "v"),))
    op, bound = _pit(backend, spine, None, [(step, fg)])
    assert _micros(backend, op) == brute_force_point_in_time(spine, None, spine.columns, bound)
    assert [r[2] for r in _micros(backend, op)] == [5, None, None, 5]
    assert _micros(backend, dataclasses.replace(op, prune=True)) == _micros(backend, op)


def test_F3_ttl_keeps_a_row_exactly_ttl_old_and_nulls_one_microsecond_older(backend) -> None:
    t = 1_704_067_200_000_000 + 100 * SECOND
    spine = Table(("id", "t"), ("int", "time"), ((1, t), (2, t), (3, t)))
    fg = Table(("fid", "ts", "v"), ("int", "time", "int"), ((1, t - 60 * SECOND, 1), (2, t - 60 * SECOND - 1, 2), (3, t + 1, 3)))
    step = JoinSpec(staging("x"), ("id",), ("fid",), "ts", (("v", "v"),), ttl_seconds=60)
    op, _ = _pit(backend, spine, "t", [(step, fg)])
    assert _micros(backend, op) == [(1, t, 1), (2, t, None), (3, t, None)]


def test_point_in_time_join_applies_spine_filters_before_joining(backend) -> None:
    """``filters`` keep spine rows (TimeRange: start <= t < end); the rest is the unfiltered contract."""
    base = 1_704_067_200_000_000
    spine = Table(("id", "t"), ("int", "time"), tuple((i % 2, base + i * SECOND) for i in range(6)))
    fg = Table(("fid", "ts", "v"), ("int", "time", "int"), ((0, base, 10), (1, base + SECOND, 11), (0, base + 3 * SECOND, 12)))
    step = JoinSpec(staging("x"), ("id",), ("fid",), "ts", (("v", "v"),))
    window = TimeRange("t", ts(1), ts(4))
    op, bound = _pit(backend, spine, "t", [(step, fg)], filters=(window,))
    kept = Table(spine.columns, spine.kinds, spine.rows[1:4])
    assert _micros(backend, op) == brute_force_point_in_time(kept, "t", spine.columns, bound)


# --- windowed aggregations --------------------------------------------------------------------------

BASE = ts(0)


def _window_oracle(data: list[tuple], aggs: list[Aggregation]) -> list[tuple]:
    """One row per distinct (k, t); each aggregate over the rows of k with time in (t - w, t]."""
    out = []
    for k, t in sorted({(r[0], r[1]) for r in data}):
        values = []
        for agg in aggs:
            lo = t - timedelta(seconds=agg.window_seconds)
            window = [r[2 if agg.column == "x" else 3] for r in data if r[0] == k and lo < r[1] <= t]
            present = [v for v in window if v is not None]
            match agg.function:
                case AggFunction.COUNT:
                    values.append(len(present))
                case _ if not present:
                    values.append(None)
                case AggFunction.SUM:
                    values.append(sum(present))
                case AggFunction.MEAN:
                    values.append(sum(present) / len(present))
                case AggFunction.MIN:
                    values.append(min(present))
                case AggFunction.MAX:
                    values.append(max(present))
                case AggFunction.STD:
                    values.append(statistics.stdev(present) if len(present) >= 2 else None)
        out.append((k, t, *values))
    return out


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-6)


window_rows = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),
        st.integers(0, 12).map(lambda m: BASE + timedelta(minutes=10 * m)),
        st.one_of(st.none(), st.integers(-5, 5).map(float), st.floats(-1000, 1000, allow_nan=False)),
        st.one_of(st.none(), st.integers(-1000, 1000)),
    ),
    max_size=25,
)
window_aggs = st.lists(
    st.builds(
        lambda column, function, seconds: Aggregation(column, function, f"{seconds}s", seconds, f"{column}_{function.value}_{seconds}"),
        st.sampled_from(["x", "n"]),
        st.sampled_from(list(AggFunction)),
        st.sampled_from([1, 600, 1200, 3600, 86400]),
    ),
    min_size=1,
    max_size=4,
    unique_by=lambda a: a.name,
)


@HYPOTHESIS
@given(data=window_rows, aggs=window_aggs)
def test_window_aggregation_equals_the_half_open_window_oracle(backend, data, aggs) -> None:
    """Per key and distinct event time t: each aggregate over (t - w, t], NULLs ignored, peers included."""
    source = staging("events")
    put(backend, 
        source,
        arrow({"k": [r[0] for r in data], "t": [r[1] for r in data], "x": [r[2] for r in data], "n": [r[3] for r in data]},
              {"k": "str", "t": "time", "x": "float", "n": "int"}),
        mode="replace",
    )
    op = WindowAggregation(source, ("k",), "t", tuple(aggs))
    got = sorted((tuple(r.values()) for r in rows(backend, op)), key=lambda r: (r[0], r[1]))
    want = _window_oracle(data, aggs)
    assert [g[:2] for g in got] == [w[:2] for w in want]
    for g, w in zip(got, want):
        for agg, gv, wv in zip(aggs, g[2:], w[2:]):
            if agg.function in (AggFunction.COUNT, AggFunction.MIN, AggFunction.MAX):
                assert gv == wv, (agg.name, g, w)
            else:
                assert _same(gv, wv), (agg.name, g, w)


def _same_ieee(a, b) -> bool:
    if a is not None and b is not None and (math.isnan(float(a)) or math.isinf(float(a))):
        return math.isnan(float(b)) if math.isnan(float(a)) else float(a) == float(b)
    return _same(a, b)


@HYPOTHESIS
@given(
    data=st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.integers(0, 12).map(lambda m: BASE + timedelta(minutes=10 * m)),
            st.one_of(st.none(), st.sampled_from([math.nan, math.inf, -math.inf]), st.floats(-1000, 1000, allow_nan=False)),
        ),
        max_size=25,
    ),
    aggs=st.lists(
        st.builds(
            lambda function, seconds: Aggregation("x", function, f"{seconds}s", seconds, f"x_{function.value}_{seconds}"),
            st.sampled_from([AggFunction.COUNT, AggFunction.SUM, AggFunction.MEAN]),
            st.sampled_from([600, 1200, 3600]),
        ),
        min_size=1,
        max_size=3,
        unique_by=lambda a: a.name,
    ),
)
def test_window_sums_and_means_hold_nan_and_infinities_exactly_while_they_are_in_the_window(backend, data, aggs) -> None:
    """NaN and ±inf in a window make its sum and mean NaN or ±inf as IEEE arithmetic does (inf and
    -inf together: NaN), and only while they are inside it; count counts them as values (Spark
    counts with running totals, which must not let a NaN leak into later windows)."""
    source = staging("events")
    put(backend, source, arrow({"k": [r[0] for r in data], "t": [r[1] for r in data], "x": [r[2] for r in data]}, {"k": "str", "t": "time", "x": "float"}), mode="replace")
    op = WindowAggregation(source, ("k",), "t", tuple(aggs))
    got = sorted((tuple(r.values()) for r in rows(backend, op)), key=lambda r: (r[0], r[1]))
    want = _window_oracle([(k, t, x, None) for k, t, x in data], aggs)
    assert [g[:2] for g in got] == [w[:2] for w in want]
    for g, w in zip(got, want):
        for agg, gv, wv in zip(aggs, g[2:], w[2:]):
            assert _same_ieee(wv, gv), (agg.name, g, w)


# --- latest per key, dedupe ---------------------------------------------------------------------------

latest_rows = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 20), st.one_of(st.none(), st.integers(-9, 9))),
    max_size=30,
    unique_by=lambda r: (r[0], r[1]),
)


@HYPOTHESIS
@given(data=latest_rows)
def test_latest_per_key_equals_pandas_last_row_by_event_time(backend, data) -> None:
    """The row with the largest event time per key. The oracle is pandas' sort + groupby().tail(1):
    row-wise ``last`` (``groupby().last()`` would skip NULLs per column, a different row)."""
    source = staging("history")
    put(backend, source, arrow({"k": [r[0] for r in data], "t": [ts(r[1]) for r in data], "v": [r[2] for r in data]},
                                {"k": "int", "t": "time", "v": "int"}), mode="replace")
    frame = pd.DataFrame(data, columns=["k", "t", "v"]).astype({"v": "object"})
    want = frame.sort_values("t", kind="stable").groupby("k").tail(1)
    expected = sorted((int(k), ts(t), None if v is None or v != v else int(v)) for k, t, v in want.itertuples(index=False))
    got = sorted(tuple(r.values()) for r in rows(backend, LatestPerKey(source, ("k",), "t")))
    assert got == expected
    if all(r[2] is not None for r in data):  # without NULLs the two pandas readings agree
        last = frame.sort_values("t").groupby("k").last().reset_index()
        assert sorted(got) == sorted((int(k), ts(t), int(v)) for k, t, v in last.itertuples(index=False))


def test_latest_per_key_takes_the_latest_row_even_where_its_value_is_null(backend) -> None:
    source = staging("history")
    put(backend, source, arrow({"k": [1, 1], "t": [ts(0), ts(1)], "v": [7, None]}, {"v": "int"}))
    assert rows(backend, LatestPerKey(source, ("k",), "t")) == [{"k": 1, "t": ts(1), "v": None}]


def test_latest_per_key_breaks_event_time_ties_by_the_last_written_row(backend) -> None:
    """The op's documented tie-break (two rows of a key at the same event time: the last written)."""
    source = staging("history")
    put(backend, source, arrow({"k": [1, 1, 1], "t": [ts(5)] * 3, "v": [0, 1, 2]}, {"v": "int"}))
    assert rows(backend, LatestPerKey(source, ("k",), "t")) == [{"k": 1, "t": ts(5), "v": 2}]


def test_latest_per_key_without_event_time_keeps_the_one_row_per_key(backend) -> None:
    source = staging("dim")
    put(backend, source, arrow({"k": [2, 1], "v": ["b", "a"]}))
    assert sorted(tuple(r.values()) for r in rows(backend, LatestPerKey(source, ("k",), None))) == [(1, "a"), (2, "b")]


@HYPOTHESIS
@given(data=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(-9, 9)), max_size=30))
def test_F2_dedupe_latest_keeps_the_last_written_row_per_key(backend, data) -> None:
    """F2 ``dedupe: latest``: one row per (key, event time), the one written last."""
    source = staging("dupes")
    put(backend, source, arrow({"k": [r[0] for r in data], "t": [ts(r[1]) for r in data], "v": [r[2] for r in data]},
                                {"k": "int", "t": "time", "v": "int"}), mode="replace")
    last: dict[tuple, int] = {}
    for k, t, v in data:
        last[(k, t)] = v
    got = sorted(tuple(r.values()) for r in rows(backend, DedupeLatest(source, ("k", "t"))))
    assert got == sorted((k, ts(t), v) for (k, t), v in last.items())


@HYPOTHESIS
@given(data=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1), st.one_of(st.none(), st.integers(0, 3)), st.integers(-9, 9)), max_size=30))
def test_F2_dedupe_latest_by_keeps_the_row_with_the_largest_column_then_the_last_written(backend, data) -> None:
    """``dedupe: {latest_by: u}``: per (key, event time) the row with the largest ``u`` (NULL
    lowest); among equal ``u`` the one written last."""
    source = staging("dupes_by")
    put(backend, source, arrow({"k": [r[0] for r in data], "t": [ts(r[1]) for r in data], "u": [r[2] for r in data], "v": [r[3] for r in data]},
                                {"k": "int", "t": "time", "u": "int", "v": "int"}), mode="replace")
    best: dict[tuple, tuple] = {}
    for k, t, u, v in data:  # later rows win ties: >=
        rank = -1 if u is None else u
        if (k, t) not in best or rank >= best[(k, t)][0]:
            best[(k, t)] = (rank, u, v)
    got = sorted(tuple(r.values()) for r in rows(backend, DedupeLatest(source, ("k", "t"), "u")))
    assert got == sorted((k, ts(t), u, v) for (k, t), (_, u, v) in best.items())


# --- binning ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("labels", [None, ("low", "mid", "high")])
def test_bin_is_closed_left_open_right_and_null_for_missing(backend, labels) -> None:
    """Edges e1 < e2: v < e1 → 0, e1 <= v < e2 → 1, v >= e2 → 2 (numpy searchsorted, side=right);
    NULL and NaN → NULL; ±inf land in the outer bins; labels replace the indexes."""
    values = [-math.inf, -1.0, 0.0, 5.0, 10.0, 11.0, math.inf, None, math.nan]
    source = staging("measures")
    put(backend, source, arrow({"id": list(range(len(values))), "x": values}, {"x": "float"}))
    binning = Binning("x", "x_bin", edges=(0.0, 10.0), labels=labels)
    got = rows(backend, Bin(source, ("id", "x"), ((binning, (0.0, 10.0)),)))
    by_id = {r["id"]: r["x_bin"] for r in got}
    expected = [None if v is None or math.isnan(v) else int(np.searchsorted([0.0, 10.0], v, side="right")) for v in values]
    if labels is not None:
        expected = [None if e is None else labels[e] for e in expected]
    assert [by_id[i] for i in range(len(values))] == expected
    assert set(got[0]) == {"id", "x", "x_bin"}


# --- Scan and spine filters -------------------------------------------------------------------------


@pytest.fixture
def events(backend):
    source = staging("scan_events")
    put(backend, source, arrow({"k": [3, 1, 2, 1, 2], "t": [ts(s) for s in (40, 0, 10, 20, 30)], "v": [5, 1, 2, 3, 4]},
                                {"k": "int", "v": "int"}))
    return source


def test_scan_orders_and_projects(backend, events) -> None:
    got = rows(backend, Scan(events, order_by=("k", "t"), columns=("k", "v")))
    assert got == [{"k": 1, "v": 1}, {"k": 1, "v": 3}, {"k": 2, "v": 2}, {"k": 2, "v": 4}, {"k": 3, "v": 5}]


def test_scan_time_range_is_start_inclusive_end_exclusive(backend, events) -> None:
    got = rows(backend, Scan(events, filters=(TimeRange("t", ts(10), ts(30)),), order_by=("t",)))
    assert [r["t"] for r in got] == [ts(10), ts(20)]


def test_scan_time_range_refuses_a_naive_bound(backend, events) -> None:
    with pytest.raises(DataError):
        backend.fetch(Scan(events, filters=(TimeRange("t", datetime(2024, 1, 1), ts(30)),)))


def test_scan_not_in_drops_rows_whose_keys_are_already_there(backend, events) -> None:
    scored = staging("scored")
    put(backend, scored, arrow({"k": [1, 2], "t": [ts(0), ts(30)]}))
    got = rows(backend, Scan(events, filters=(NotIn(scored, ("k", "t")),), order_by=("t",)))
    assert [(r["k"], r["v"]) for r in got] == [(2, 2), (1, 3), (3, 5)]


def test_scan_user_filter_and_filters_compose(backend, events) -> None:
    only_user = rows(backend, Scan(events, filters=(user_filter("v > 2"),), order_by=("v",)))
    assert [r["v"] for r in only_user] == [3, 4, 5]
    both = rows(backend, Scan(events, filters=(user_filter("v > 2"), TimeRange("t", ts(0), ts(35))), order_by=("v",)))
    assert [r["v"] for r in both] == [3, 4]


# --- create from a relation and from each op ---------------------------------------------------------


def _ops(source, dim):
    agg = Aggregation("v", AggFunction.SUM, "1h", 3600, "v_sum_1h")
    join = JoinSpec(dim, ("k",), ("k",), None, (("name", "name"),))
    return {
        "relation": source,
        "scan": Scan(source, filters=(user_filter("v > 1"),), order_by=("t",)),
        "point_in_time_join": PointInTimeJoin(source, "t", ("k", "t", "v"), (join,)),
        "window_aggregation": WindowAggregation(source, ("k",), "t", (agg,)),
        "bin": Bin(source, ("k", "v"), ((Binning("v", "v_bin", edges=(2.5,)), (2.5,)),)),
        "latest_per_key": LatestPerKey(source, ("k",), "t"),
        "dedupe_latest": DedupeLatest(source, ("k",)),
    }


@pytest.mark.parametrize("kind", list(_ops(None, None)))
def test_create_materialises_exactly_what_fetch_returns(backend, events, kind) -> None:
    dim = staging("dim")
    put(backend, dim, arrow({"k": [1, 2], "name": ["one", "two"]}))
    op = _ops(events, dim)[kind]
    target = staging(f"created_{kind}")
    written = backend.create(target, op)
    expected = rows(backend, op)
    assert written == len(expected) == backend.count(op) == backend.count(target) > 0
    assert backend.columns(target) == backend.columns(op)
    key = lambda r: tuple((v is None, v) for v in r.values())  # noqa: E731
    assert sorted(rows(backend, target), key=key) == sorted(expected, key=key)


def test_create_refuses_an_existing_target_unless_replace(backend, events) -> None:
    target = staging("once")
    backend.create(target, Scan(events, filters=(user_filter("v > 4"),)))
    with pytest.raises(EngineError):
        backend.create(target, events)
    assert backend.count(target) == 1
    assert backend.create(target, events, replace=True) == 5
