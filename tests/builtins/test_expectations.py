"""Data expectations and primary-key checks (F1, F2) against Python oracles; failure text is golden."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.model.objects import Expectation, ExpectationKind
from engine.backends.base import ExpectationResult
from engine.backends.duckdb.quality import check_primary_key, run_expectations
from engine.store.quality import format_failures

from tests.support import RecordingConnection

from . import check_golden, connect

K = ExpectationKind
num = st.one_of(st.none(), st.sampled_from([math.nan, -1.0, 0.0, 10.0, 10.5]), st.floats(-20, 20))
word = st.one_of(st.none(), st.sampled_from(["EWR", "JFK", "LGA", "N123", "n1", "", "JFK "]))


def _load(con, nums, words, ints) -> None:
    con.execute('CREATE TABLE "t" ("x" DOUBLE, "s" VARCHAR, "i" BIGINT)')
    rows = list(zip(nums, words, ints, strict=True))
    if rows:
        con.executemany('INSERT INTO "t" VALUES (?, ?, ?)', rows)


def _isnan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _oracle(e: Expectation, column: list) -> int:
    """Failing-row count by the documented semantics, in plain Python."""
    match e.kind:
        case K.NOT_NULL:
            return sum(v is None or _isnan(v) for v in column)
        case K.UNIQUE:
            counts = Counter("nan" if _isnan(v) else v for v in column if v is not None)
            return sum(c for c in counts.values() if c > 1)
        case K.BETWEEN:
            return sum(
                v is not None
                and (_isnan(v) or (e.low is not None and v < e.low) or (e.high is not None and v > e.high))
                for v in column
            )
        case K.IN_SET:
            return sum(v is not None and v not in e.values for v in column)
        case K.REGEX:
            return sum(v is not None and re.fullmatch(e.pattern, v) is None for v in column)
    raise AssertionError(e)


bounds = st.one_of(st.none(), st.sampled_from([0.0, 10.0, -5.5]))
expectations = st.one_of(
    st.builds(lambda c: Expectation(K.NOT_NULL, column=c), st.sampled_from("xsi")),
    st.builds(lambda c: Expectation(K.UNIQUE, column=c), st.sampled_from("xsi")),
    st.builds(lambda c, lo, hi: Expectation(K.BETWEEN, column=c, low=lo, high=hi), st.sampled_from("xi"), bounds, bounds),
    st.builds(lambda vs: Expectation(K.IN_SET, column="s", values=tuple(vs)), st.lists(st.sampled_from(["EWR", "JFK", "LGA", "x'y"]))),
    st.builds(lambda vs: Expectation(K.IN_SET, column="i", values=tuple(vs)), st.lists(st.integers(-3, 3))),
    st.builds(lambda p: Expectation(K.REGEX, column="s", pattern=p), st.sampled_from(["N[0-9A-Z]+", "[A-Z]{3}", ".*", "J"])),
)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n=st.integers(0, 15),
    exps=st.lists(expectations, min_size=1, max_size=4),
)
def test_failing_rows_match_python_oracle(data, n, exps) -> None:
    nums = data.draw(st.lists(num, min_size=n, max_size=n))
    words = data.draw(st.lists(word, min_size=n, max_size=n))
    ints = data.draw(st.lists(st.one_of(st.none(), st.integers(-3, 3)), min_size=n, max_size=n))
    con = connect()
    _load(con, nums, words, ints)
    results = run_expectations(con, '"t"', exps)
    columns = {"x": nums, "s": words, "i": ints}
    assert [r.expectation for r in results] == exps
    for r in results:
        assert r.total_rows == n
        assert r.failed_rows == _oracle(r.expectation, columns[r.expectation.column]), r
        assert r.passed == (r.failed_rows == 0)
        assert len(r.samples) <= 5 and (not r.passed) == bool(r.samples)
        json.dumps(r.samples, allow_nan=False)  # JSON-safe, strictly


def test_row_count_inclusive_bounds() -> None:
    con = connect()
    _load(con, [1.0] * 3, ["a"] * 3, [1] * 3)
    exps = [
        Expectation(K.ROW_COUNT, low=3, high=3),
        Expectation(K.ROW_COUNT, low=4),
        Expectation(K.ROW_COUNT, high=2),
        Expectation(K.ROW_COUNT, low=None, high=None),
    ]
    assert [(r.failed_rows, r.total_rows) for r in run_expectations(con, '"t"', exps)] == [(0, 3), (1, 3), (1, 3), (0, 3)]


def test_hostile_values_are_parameters_not_sql() -> None:
    """P5: set values and patterns with quotes are bound, never spliced; the table survives."""
    con = connect()
    _load(con, [1.0], ["'); DROP TABLE t; --"], [1])
    exps = [
        Expectation(K.IN_SET, column="s", values=("'); DROP TABLE t; --",)),
        Expectation(K.REGEX, column="s", pattern="'\\); DROP TABLE t; --"),
    ]
    assert [r.failed_rows for r in run_expectations(con, '"t"', exps)] == [0, 0]
    assert con.execute('SELECT count(*) FROM "t"').fetchone() == (1,)


def test_samples_are_distinct_sorted_and_capped() -> None:
    con = connect()
    _load(con, [float(v) for v in range(20, 8, -1)] + [20.0], ["a"] * 13, [1] * 13)
    (r,) = run_expectations(con, '"t"', [Expectation(K.BETWEEN, column="x", low=0.0, high=10.0)])
    assert r.failed_rows == 11
    assert r.samples == tuple({"x": v} for v in (11.0, 12.0, 13.0, 14.0, 15.0))


def test_unknown_column_is_refused() -> None:
    con = connect()
    _load(con, [], [], [])
    with pytest.raises(ValueError, match="not a column"):
        run_expectations(con, '"t"', [Expectation(K.NOT_NULL, column="nope")])


def test_format_failures_golden() -> None:
    con = connect()
    con.execute('CREATE TABLE "w" ("origin" VARCHAR, "visib" DOUBLE, "tailnum" VARCHAR, "ts" TIMESTAMP)')
    con.executemany(
        'INSERT INTO "w" VALUES (?, ?, ?, ?)',
        [
            ("EWR", 10.0, "N123", datetime(2013, 1, 1)),
            ("JFK", 11.0, "n9", datetime(2013, 1, 1)),
            (None, -1.0, "N9X", datetime(2013, 1, 1)),
            ("XYZ", math.nan, None, datetime(2013, 1, 2)),
            ("JFK", None, "N1", datetime(2013, 1, 2)),
        ],
    )
    exps = [
        Expectation(K.BETWEEN, column="visib", low=0, high=10),
        Expectation(K.NOT_NULL, column="origin"),
        Expectation(K.IN_SET, column="origin", values=("EWR", "JFK", "LGA")),
        Expectation(K.REGEX, column="tailnum", pattern="^N[0-9A-Z]+$"),
        Expectation(K.UNIQUE, column="origin"),
        Expectation(K.UNIQUE, column="ts"),
        Expectation(K.ROW_COUNT, low=10, high=None),
        Expectation(K.NOT_NULL, column="ts"),  # passes: not listed
    ]
    results = run_expectations(con, '"w"', exps)
    assert results[-1].passed
    check_golden("expectation_failures", "\n".join(format_failures("feature_group:weather@1", results)))


def _pk_oracle(rows):
    nulls = [r for r in rows if None in r]
    counts = Counter(r for r in rows if None not in r)
    return len(nulls), sum(c for c in counts.values() if c > 1)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.one_of(st.none(), st.sampled_from(["a", "b"])),
            st.one_of(st.none(), st.integers(0, 2)),
            st.one_of(st.none(), st.sampled_from([datetime(2024, 1, d) for d in (1, 2)])),
        ),
        max_size=20,
    )
)
def test_primary_key_check_matches_oracle(rows) -> None:
    """F1 (NULL keys) and F2 (duplicate (pk, event_time)) counts; samples name offending keys."""
    con = connect()
    con.execute('CREATE TABLE "t" ("k" VARCHAR, "k2" INTEGER, "et" TIMESTAMP)')
    if rows:
        con.executemany('INSERT INTO "t" VALUES (?, ?, ?)', rows)
    null_rows, dup_rows, samples = check_primary_key(con, '"t"', ["k", "k2"], "et")
    assert (null_rows, dup_rows) == _pk_oracle(rows)
    assert len(samples) <= 5 and bool(samples) == bool(null_rows or dup_rows)
    for s in samples:
        assert list(s) == ["k", "k2", "et"]
        assert s["et"] is None or isinstance(s["et"], str)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["a", "b", "é", ""]), st.integers(-2, 2), st.sampled_from([datetime(2024, 1, d) for d in (1, 2, 3)])),
        max_size=25,
    ),
    null_row=st.one_of(st.none(), st.sampled_from([(None, 1, datetime(2024, 1, 1)), ("a", 1, None)])),
    stored_sorted=st.booleans(),
)
def test_primary_key_check_of_rows_said_to_be_in_key_order_matches_oracle_and_the_hash_check(rows, null_row, stored_sorted) -> None:
    """F1/F2 with ``ordered`` (the table was stored sorted by its key): one streamed pass over
    neighbours proves uniqueness. The result equals the oracle's and the hash check's whether or
    not the rows really are in order: the pass proves, it does not trust the caller."""
    rows = rows + ([null_row] if null_row else [])
    con = connect()
    con.execute('CREATE TABLE "u" ("k" VARCHAR, "k2" INTEGER, "et" TIMESTAMP)')
    if rows:
        con.executemany('INSERT INTO "u" VALUES (?, ?, ?)', rows)
    order = ' ORDER BY "k", "k2", "et"' if stored_sorted else ""
    con.execute(f'CREATE TABLE "t" AS SELECT * FROM "u"{order}')
    ordered = check_primary_key(con, '"t"', ["k", "k2"], "et", ordered=True)
    assert ordered[:2] == _pk_oracle(rows)
    assert ordered == check_primary_key(con, '"u"', ["k", "k2"], "et")


def test_primary_key_check_of_ordered_unique_keys_reads_them_once_without_a_hash_aggregate() -> None:
    con = connect()
    con.execute('CREATE TABLE "t" AS SELECT i // 3 AS "k", TIMESTAMP \'2024-01-01\' + to_seconds(i % 3) AS "et" FROM range(10000) r(i) ORDER BY 1, 2')
    recording = RecordingConnection(con)
    assert check_primary_key(recording, '"t"', ["k"], "et", ordered=True) == (0, 0, ())
    assert not [s for s in recording.statements if "DISTINCT" in s or "GROUP BY" in s]
    con.execute('CREATE TABLE "d" AS SELECT * FROM "t" UNION ALL SELECT 7, TIMESTAMP \'2024-01-01\' ORDER BY 1, 2')
    recording = RecordingConnection(con)
    assert check_primary_key(recording, '"d"', ["k"], "et", ordered=True) == (0, 2, ({"k": 7, "et": "2024-01-01T00:00:00"},))
    assert any("DISTINCT" in s for s in recording.statements)  # a repeat found: counted exactly as before
    # the same unique keys in another order: the pass fails, the hash check proves them
    con.execute('CREATE TABLE "r" AS SELECT * FROM "t" ORDER BY "et", "k" DESC')
    recording = RecordingConnection(con)
    assert check_primary_key(recording, '"r"', ["k"], "et", ordered=True) == (0, 0, ())
    assert any("DISTINCT" in s for s in recording.statements)
    # float keys (NaN, -0.0) are not tried: the hash check decides
    con.execute('CREATE TABLE "f" AS SELECT * FROM (VALUES (\'NaN\'::DOUBLE), (\'NaN\'::DOUBLE), (0.0), (-0.0)) v(x) ORDER BY 1')
    recording = RecordingConnection(con)
    assert check_primary_key(recording, '"f"', ["x"], None, ordered=True)[1] == check_primary_key(con, '"f"', ["x"], None)[1]
    assert any("DISTINCT" in s for s in recording.statements)


def test_primary_key_without_event_time() -> None:
    con = connect()
    con.execute('CREATE TABLE "t" ("k" INTEGER)')
    con.executemany('INSERT INTO "t" VALUES (?)', [(1,), (1,), (2,), (None,)])
    assert check_primary_key(con, '"t"', ["k"], None) == (1, 2, ({"k": None}, {"k": 1}))


def test_result_passed_property() -> None:
    e = Expectation(K.NOT_NULL, column="x")
    assert ExpectationResult(e, 0, 5, ()).passed
    assert not ExpectationResult(e, 1, 5, ({"x": None},)).passed
