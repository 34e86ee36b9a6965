"""Descriptive statistics against pandas ``describe()`` on random tables; JSON-safe output.

Count, nulls, mean, std, min and max are exact and compared as such. p25/p50/p75 come from DuckDB's
``approx_quantile`` (a t-digest sketch) and are marked ``"quantiles": "approximate"``: they are held
to a t-digest's accuracy (``_approximates``: rank error at most 1%, or within 1% of the range), not
to pandas' interpolated values.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
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


QUANTILES = (("p25", 0.25), ("p50", 0.5), ("p75", 0.75))
TOLERANCE = 0.01  # what the t-digest behind approx_quantile is held to: 1% of the ranks or of the range


def _close(a, b) -> bool:
    if a is None or b is None or (isinstance(b, float) and math.isnan(b)):
        return a is None and (b is None or math.isnan(b))
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


def _interpolated(ordered: list[float], position: float) -> float:
    """The sorted values at a fractional 0-based ``position``, linearly interpolated (pandas' rule)."""
    position = min(max(position, 0.0), len(ordered) - 1.0)
    i, j = math.floor(position), math.ceil(position)
    return ordered[i] + (position - i) * (ordered[j] - ordered[i])


def _approximates(value: float, values, q: float, tolerance: float = TOLERANCE) -> bool:
    """``value`` is an acceptable t-digest estimate of the ``q`` quantile of ``values``: its rank
    error is at most ``tolerance``, or it is within ``tolerance`` of the range from the exact
    (linear, pandas') quantile.

    Rank error: ``value`` lies where the sorted values, interpolated, reach a position within
    ``tolerance``·(n - 1) of the exact q·(n - 1), widened by |q - 1/2| of one position: the distance
    to the midpoint convention q·n - 1/2 a t-digest follows while it still holds every value (so
    on a few values the check is nearly exact). The range bound covers data with many ties, where
    a t-digest interpolates between centroid means: close in value, far in rank."""
    ordered = sorted(values)
    n = len(ordered)
    exact = _interpolated(ordered, q * (n - 1))
    reach = abs(q - 0.5) + tolerance * (n - 1)
    lo, hi = _interpolated(ordered, q * (n - 1) - reach), _interpolated(ordered, q * (n - 1) + reach)
    slack = 1e-9 * max(1.0, abs(lo), abs(hi))  # the interpolation's last-bit rounding
    in_rank = lo - slack <= value <= hi + slack
    in_range = abs(value - exact) <= tolerance * (ordered[-1] - ordered[0]) + slack
    return in_rank or in_range


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
        assert got["quantiles"] == "approximate"
        assert got["count"] == int(col.count())
        assert got["nulls"] + got.get("nans", 0) == int(col.isna().sum())
        if col.count() == 0:
            assert all(got[k] is None for k in ("mean", "std", "min", "max", "p25", "p50", "p75"))
            continue
        d = col.describe()
        for ours, theirs in [("mean", "mean"), ("std", "std"), ("min", "min"), ("max", "max")]:
            assert _close(got[ours], float(d[theirs])), (name, ours, got[ours], d[theirs])
        present = col.dropna().tolist()
        for ours, q in QUANTILES:
            assert _approximates(got[ours], present, q), (name, ours, got[ours], d[f"{q:.0%}"], sorted(present))
        assert got["min"] <= got["p25"] <= got["p50"] <= got["p75"] <= got["max"], (name, got)
        assert abs(got["distinct"] - col.nunique()) <= max(1, 0.05 * col.nunique())
    if any(r[0] is not None for r in rows):
        assert isinstance(stats["i"]["min"], int)
    assert stats["x"]["nans"] == sum(isinstance(r[1], float) and math.isnan(r[1]) for r in rows)

    strings = [r[2] for r in rows if r[2] is not None]
    assert all("quantiles" not in stats[name] for name in ("s", "ts", "b"))  # only numeric columns
    assert stats["s"]["count"] == len(strings)
    assert stats["s"]["min_length"] == (min(map(len, strings)) if strings else None)
    assert stats["s"]["max_length"] == (max(map(len, strings)) if strings else None)

    times = [r[3] for r in rows if r[3] is not None]
    want = (min(times).isoformat() + "+00:00", max(times).isoformat() + "+00:00") if times else (None, None)
    assert (stats["ts"]["min"], stats["ts"]["max"]) == want
    assert stats["b"]["count"] == sum(r[4] is not None for r in rows)
    assert set(stats["b"]) == {"type", "count", "nulls", "distinct"}


def _large_samples() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20240101)
    n = 20_000
    return {
        "normal": rng.normal(size=n),
        "lognormal": rng.lognormal(0.0, 2.0, size=n),  # long right tail
        "few_integers": rng.integers(0, 20, size=n).astype(float),  # ties everywhere
        "bimodal": np.concatenate([rng.normal(-100.0, 1.0, n // 2), rng.normal(100.0, 1.0, n // 2)]),  # a gap at the median
        "ascending": np.arange(float(n)),  # arrives sorted
        "wide_uniform": rng.uniform(-1e6, 1e6, size=n),
    }


@pytest.mark.parametrize("case", sorted(_large_samples()))
def test_quantiles_of_a_large_column_are_approximate_within_one_percent(case: str) -> None:
    """On enough rows for the t-digest to compress, its quantiles stay within 1% (of the ranks or of
    the range) of the exact ones, and the exact statistics stay exact, with NULLs and NaNs left out
    as pandas leaves them out."""
    values = _large_samples()[case]
    column = [*values.tolist(), None, None, math.nan]
    rounded = [None if v is None or math.isnan(v) else int(round(v)) for v in column]
    con = connect()
    con.execute('CREATE TABLE "t" ("x" DOUBLE, "i" BIGINT)')
    # Arrow keeps NaN (a value) apart from None (NULL); pandas would turn both into NULL
    frame = pa.table({"x": pa.array(column, type=pa.float64()), "i": pa.array(rounded, type=pa.int64())})
    con.register("frame", frame)
    con.execute('INSERT INTO "t" SELECT "x", "i" FROM "frame"')
    con.unregister("frame")
    assert con.execute('SELECT count(*) FILTER (WHERE "x" IS NULL), count(*) FILTER (WHERE isnan("x")) FROM "t"').fetchone() == (2, 1)
    stats = compute_stats(con, '"t"')
    json.dumps(stats, allow_nan=False)
    for name, present in (("x", values.tolist()), ("i", [v for v in rounded if v is not None])):
        got = stats[name]
        d = pd.Series(present, dtype="float64").describe()
        assert got["quantiles"] == "approximate"
        assert got["count"] == len(present) == int(d["count"])
        assert got["nulls"] + got.get("nans", 0) == 3
        for stat in ("mean", "std", "min", "max"):
            assert _close(got[stat], float(d[stat])), (case, name, stat, got[stat], d[stat])
        for stat, q in QUANTILES:
            assert _approximates(got[stat], present, q), (case, name, stat, got[stat], d[f"{q:.0%}"])
    assert isinstance(stats["i"]["min"], int) and isinstance(stats["i"]["p50"], float)


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
    assert stats["x"]["p50"] is None and stats["x"]["quantiles"] == "approximate"
    assert stats["s"] == {"type": "VARCHAR", "count": 0, "nulls": 0, "distinct": 0,
                          "min_length": None, "max_length": None}  # fmt: skip


@pytest.mark.parametrize("kind", ["normal", "few_integers"])
def test_quantiles_past_the_sample_size_come_from_a_deterministic_sample(kind: str) -> None:
    """Above ``SAMPLE_ROWS`` rows the quantiles come from a sample drawn by a hash of each row, in
    the statistics' own scan: within 1% of the ranks (or the range) of the exact quantiles, the
    other statistics exact, and the same quantiles for the same rows inserted in another order."""
    from engine.backends.duckdb import stats as stats_module

    rng = np.random.default_rng(7)
    n = 3 * stats_module.SAMPLE_ROWS + 17  # a sample of about a third of the rows
    values = rng.normal(size=n) if kind == "normal" else rng.integers(0, 20, size=n).astype(float)
    keys = np.arange(n)
    results = []
    for order in (keys, rng.permutation(keys)):
        con = connect()
        con.register("frame", pa.table({"k": keys[order], "x": values[order]}))
        con.execute('CREATE TABLE "t" AS SELECT * FROM "frame"')
        con.unregister("frame")
        results.append(compute_stats(con, '"t"'))
    for column in ("k", "x"):  # the sample is the same rows (sums may differ in the last bits)
        first, second = results[0][column], results[1][column]
        assert {k: first[k] for k in first if k not in ("mean", "std")} == {k: second[k] for k in second if k not in ("mean", "std")}
        assert _close(first["mean"], second["mean"]) and _close(first["std"], second["std"])
    got = results[0]["x"]
    d = pd.Series(values).describe()
    assert got["count"] == n and _close(got["mean"], float(d["mean"])) and _close(got["std"], float(d["std"]))
    assert got["min"] == float(d["min"]) and got["max"] == float(d["max"])
    for stat, q in QUANTILES:
        assert _approximates(got[stat], values, q), (kind, stat, got[stat], d[f"{q:.0%}"])
    # not every row: the exact median of the keys is (n - 1) / 2; a third of them rarely lands on it
    assert results[0]["k"]["p50"] != (n - 1) / 2 or results[0]["k"]["p25"] != (n - 1) / 4


def _exact_mean_std(values) -> tuple[float, float]:
    """Mean and sample std computed in exact rational arithmetic, rounded once."""
    from fractions import Fraction

    xs = [Fraction(v) for v in values]
    n = len(xs)
    mean = sum(xs) / n
    var = sum((x - mean) ** 2 for x in xs) / (n - 1)
    return float(mean), math.sqrt(var)


def _recorded_stats(frame: pa.Table) -> tuple[dict, list[str]]:
    from tests.support import RecordingConnection

    con = connect()
    con.register("frame", frame)
    con.execute('CREATE TABLE "t" AS SELECT * FROM "frame"')
    con.unregister("frame")
    recording = RecordingConnection(con)
    return compute_stats(recording, '"t"'), recording.statements


def test_mean_and_std_come_from_sums_exact_for_integers_past_double_precision() -> None:
    """Integer columns: mean and std from HUGEINT sums of the values and their squares, exact (a
    DOUBLE running update would lose the low digits of values near 2^55); no stddev_samp pass."""
    rng = np.random.default_rng(3)
    values = (2**55 + rng.integers(-1000, 1000, size=5_000)).tolist()
    stats, statements = _recorded_stats(pa.table({"i": pa.array(values, type=pa.int64())}))
    mean, std = _exact_mean_std(values)
    assert stats["i"]["mean"] == mean and math.isclose(stats["i"]["std"], std, rel_tol=1e-12)
    assert not any("stddev_samp" in s for s in statements)


@pytest.mark.parametrize("edge, squares_in", [(3_037_000_499, "BIGINT"), (3_037_000_500, "HUGEINT")])
def test_integer_squares_are_summed_in_bigint_only_when_every_value_allows(edge: int, squares_in: str) -> None:
    """A square fits a BIGINT up to |x| = 3,037,000,499: the column's bounds decide which type the
    squares are summed in, and the figures are exact either way."""
    rng = np.random.default_rng(5)
    values = [*rng.integers(-edge, edge, size=2_000).tolist(), edge, -edge]
    stats, statements = _recorded_stats(pa.table({"i": pa.array(values, type=pa.int64())}))
    mean, std = _exact_mean_std(values)
    assert stats["i"]["mean"] == mean and math.isclose(stats["i"]["std"], std, rel_tol=1e-12)
    assert any(f'sum(CAST("i" AS {squares_in}) * CAST("i" AS {squares_in}))' in s for s in statements)


def test_integer_sums_past_hugeint_fall_back_to_a_running_update() -> None:
    """Squares of values near 2^63 overflow a HUGEINT sum after a few rows: DuckDB refuses, and the
    statistics are measured again with avg/stddev_samp instead of failing the write."""
    values = [2**63 - 1 - k * 2**20 for k in range(10)]  # spaced wider than a double's last bit there
    stats, statements = _recorded_stats(pa.table({"i": pa.array(values, type=pa.int64())}))
    mean, std = _exact_mean_std(values)
    assert math.isclose(stats["i"]["mean"], mean, rel_tol=1e-12) and math.isclose(stats["i"]["std"], std, rel_tol=1e-3)
    assert stats["i"]["min"] == min(values) and stats["i"]["max"] == max(values)
    assert any("stddev_samp" in s for s in statements)


@pytest.mark.parametrize(
    "case, expect_second_pass",
    [
        ("offset", False),  # far from zero, narrow: the midpoint shift keeps every digit
        ("normal", False),
        ("one_outlier", True),  # the midpoint is far from the mean: measured again
        ("lognormal_tail", True),
    ],
)
def test_float_mean_and_std_from_shifted_sums_or_measured_again(case: str, expect_second_pass: bool) -> None:
    """Float columns: sums of x - shift (the midpoint of the range) and of its square. Where the
    shift is far from the mean (a long tail, an outlier) the subtraction would cancel the spread's
    digits; those columns are measured again with stddev_samp. Either way the figures match the
    exact ones to 1e-9."""
    rng = np.random.default_rng(11)
    n = 50_000
    values = {
        "offset": 1e9 + rng.uniform(0.0, 1.0, size=n),
        "normal": rng.normal(3.0, 2.0, size=n),
        "one_outlier": np.concatenate([rng.uniform(0.0, 1.0, size=n - 1), [1e12]]),
        "lognormal_tail": rng.lognormal(0.0, 3.0, size=n),
    }[case]
    stats, statements = _recorded_stats(pa.table({"x": pa.array(values, type=pa.float64())}))
    mean, std = _exact_mean_std(values.tolist())
    assert math.isclose(stats["x"]["mean"], mean, rel_tol=1e-9, abs_tol=1e-12), (stats["x"]["mean"], mean)
    assert math.isclose(stats["x"]["std"], std, rel_tol=1e-9), (stats["x"]["std"], std)
    assert any("stddev_samp" in s for s in statements) is expect_second_pass


def test_moments_refuse_ill_conditioned_or_non_finite_sums() -> None:
    """``_moments`` itself: a shift far from the mean (Σd² ≫ the spread) or an infinite sum asks
    for a second pass; a constant column has std 0; one row has no sample std."""
    from engine.backends.duckdb.stats import _X1, _X2, _moments

    far = {"count": 2, _X1: 2e6, _X2: 2e12 + 2.0}  # d = 1e6 ± 1: spread 2, Σd² 2e12
    assert _moments(dict(far), "float", 0.0) is False
    assert _moments({"count": 2, _X1: math.inf, _X2: math.inf}, "float", 0.0) is False
    constant = {"count": 3, _X1: 0.0, _X2: 0.0}
    assert _moments(constant, "float", 5.0) and constant["mean"] == 5.0 and constant["std"] == 0.0
    one = {"count": 1, _X1: 7, _X2: 49}
    assert _moments(one, "numeric", 0.0) and one["mean"] == 7.0 and one["std"] is None
