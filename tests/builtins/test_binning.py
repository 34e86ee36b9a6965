"""Binning: bin columns against numpy.searchsorted(side='right'); quantile edges against numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import DataError
from engine.model.objects import Binning
from engine.backends.duckdb import DuckDBBackend
from engine.backends.duckdb.binning import binning_sql, quantile_edges_sql
from engine.sql.ops import Relation
from engine.transforms.binning import resolve_edges as _resolve_edges


def resolve_edges(con, relation: str, binning):
    """The engine's edge fitting on a test connection (``relation`` is a table of the main schema).

    ``con`` None: no backend at all (``None`` is passed), which proves no query is run."""
    target = Relation("main", relation.strip('"'))
    if con is None:
        return _resolve_edges(None, target, binning)
    backend = DuckDBBackend(con)  # a backend over the test's connection, with an in-memory catalog
    try:
        return _resolve_edges(backend, target, binning)
    finally:
        backend.catalog.close()  # the connection stays the test's

from . import check_golden, connect

finite = st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False)


def _table(con, values, sql_type: str = "DOUBLE") -> None:
    con.execute(f'CREATE TABLE "src" ("id" INTEGER, "v" {sql_type})')
    if values:
        con.executemany('INSERT INTO "src" VALUES (?, ?)', list(enumerate(values)))


def _expected(values, edges):
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        else:
            out.append(int(np.searchsorted(np.array(edges, dtype=float), v, side="right")))
    return out


@settings(max_examples=60, deadline=None)
@given(
    edges=st.lists(finite, min_size=0, max_size=6, unique=True).map(sorted),
    data=st.data(),
)
def test_bin_index_matches_searchsorted(edges, data) -> None:
    """Edge convention: v < e1 -> 0, e_i <= v < e_i+1 -> i, v >= e_n -> n; NULL/NaN -> NULL."""
    pool = st.one_of(
        finite,
        st.sampled_from([None, math.nan, math.inf, -math.inf]),
        st.sampled_from(edges) if edges else finite,  # values exactly on an edge
    )
    values = data.draw(st.lists(pool, max_size=30))
    con = connect()
    _table(con, values)
    b = Binning("v", "v_bin", edges=tuple(edges))
    rows = con.execute(binning_sql('"src"', ["id", "v"], [(b, tuple(edges))]) + ' ORDER BY "id"').fetchall()
    assert [r[2] for r in rows] == _expected(values, edges)
    # every input column is kept, unchanged
    assert [r[0] for r in rows] == list(range(len(values)))


@settings(max_examples=30, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.integers(-100, 100)), max_size=30))
def test_integer_columns_bin_like_floats(values) -> None:
    edges = (-10.0, 0.0, 2.5, 50.0)
    con = connect()
    _table(con, values, "BIGINT")
    b = Binning("v", "v_bin", edges=edges)
    rows = con.execute(binning_sql('"src"', ["id", "v"], [(b, edges)]) + ' ORDER BY "id"').fetchall()
    assert [r[2] for r in rows] == _expected(values, edges)


def test_labels_replace_the_index_and_survive_hostile_text() -> None:
    """Labels never reach SQL as spliced text (hex-decoded), so quotes and unicode round-trip."""
    labels = ("low", "it's", "'); DROP TABLE src; --", "höch ☃")
    edges = (0.0, 1.0, 2.0)
    con = connect()
    _table(con, [-1.0, 0.0, 1.5, 2.0, None, math.nan])
    b = Binning("v", "v_label", edges=edges, labels=labels)
    rows = con.execute(binning_sql('"src"', ["id"], [(b, edges)]) + ' ORDER BY "id"').fetchall()
    assert [r[1] for r in rows] == ["low", "it's", "'); DROP TABLE src; --", "höch ☃", None, None]
    assert con.execute('SELECT count(*) FROM "src"').fetchone() == (6,)


def test_several_bin_columns_and_golden_sql() -> None:
    bins = [
        (Binning("visib", "visib_bin", edges=(2.0, 5.0, 10.0)), (2.0, 5.0, 10.0)),
        (Binning("temp", "temp_band", quantiles=3, labels=("cold", "mild", "warm")), (40.5, 70.25)),
    ]
    sql = binning_sql('"staging"."in_1"', ["origin", "time_hour", "visib", "temp"], bins)
    check_golden("binning_sql", sql)


@pytest.mark.parametrize(
    "edges, labels",
    [((1.0, 1.0), None), ((2.0, 1.0), None), ((math.nan,), None), ((math.inf,), None), ((1.0,), ("a",))],
)
def test_invalid_edges_or_label_count_are_refused(edges, labels) -> None:
    b = Binning("v", "v_bin", edges=edges, labels=labels)
    with pytest.raises(ValueError):
        binning_sql('"src"', ["v"], [(b, edges)])


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.integers(-20, 20).map(float), finite), min_size=0, max_size=40),
    n=st.integers(2, 6),
)
def test_quantile_edges_match_numpy_linear_quantiles(values, n) -> None:
    con = connect()
    _table(con, values + [math.nan, math.inf])  # non-finite values never move an edge
    edges = resolve_edges(con, '"src"', Binning("v", "v_bin", quantiles=n))
    clean = [v for v in values if v is not None]
    if not clean:
        assert edges == ()
        return
    want = sorted(set(np.quantile(np.array(clean), [i / n for i in range(1, n)], method="linear").tolist()))
    assert len(edges) == len(want)
    assert all(math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9) for a, b in zip(edges, want))
    assert list(edges) == sorted(set(edges))


def test_quantile_edges_dedupe_on_skewed_data_and_labels_then_mismatch() -> None:
    con = connect()
    _table(con, [1.0] * 9 + [5.0])
    assert resolve_edges(con, '"src"', Binning("v", "v_bin", quantiles=4)) == (1.0,)
    with pytest.raises(DataError, match="found only 2 distinct bins"):
        resolve_edges(con, '"src"', Binning("v", "v_bin", quantiles=4, labels=("a", "b", "c", "d")))


def test_fixed_edges_are_returned_without_a_query() -> None:
    assert resolve_edges(None, '"src"', Binning("v", "v_bin", edges=(1, 2.5))) == (1.0, 2.5)


def test_quantile_sql_rejects_bad_counts() -> None:
    for bad in (1, 0, True, 2.0):
        with pytest.raises(ValueError):
            quantile_edges_sql('"src"', "v", bad)
