"""The multiset comparison the cross-backend tests rely on (tests/support_spark.py
``assert_same_tables``): equal tables in any row order pass, representation-only differences
(string vs large_string, a UTC zone's name, NULL vs NaN floats, float noise within 1e-9) pass, and a
changed value in any column fails naming the column."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from tests.support_spark import assert_same_tables

UTC = dt.UTC
LEFT = pa.table({
    "k": pa.array(["x", "y", None], pa.string()),
    "v": [1.0, None, float("nan")],
    "t": pa.array([dt.datetime(2024, 1, 1, tzinfo=UTC)] * 3, pa.timestamp("us", "UTC")),
    "i": [1, 2, 3],
})
RIGHT = pa.table({
    "k": pa.array([None, "y", "x"], pa.large_string()),
    "v": [None, float("nan"), 1.0 + 1e-12],
    "t": pa.array([dt.datetime(2024, 1, 1, tzinfo=UTC)] * 3, pa.timestamp("us", "Etc/UTC")),
    "i": [3, 2, 1],
})


def test_the_same_rows_in_another_order_and_representation_are_the_same_table() -> None:
    assert LEFT.column("i").to_pylist() != RIGHT.column("i").to_pylist() and LEFT.schema != RIGHT.schema
    assert_same_tables(LEFT, RIGHT, "t")  # raises AssertionError on any difference


@pytest.mark.parametrize(
    ("column", "values", "named"),
    [
        ("i", pa.array([3, 2, 5]), "t.i"),
        ("k", pa.array([None, "y", "z"], pa.large_string()), "t.k"),
        ("v", pa.array([None, float("nan"), 1.1]), "t.v"),
        ("t", pa.array([dt.datetime(2024, 1, 1, tzinfo=UTC)] * 2 + [dt.datetime(2024, 1, 2, tzinfo=UTC)], pa.timestamp("us", "UTC")), "t.t"),
    ],
)
def test_a_changed_value_in_any_column_fails_naming_it(column, values, named) -> None:
    changed = RIGHT.set_column(RIGHT.column_names.index(column), column, values)
    with pytest.raises(AssertionError, match=rf"^{named}: "):
        assert_same_tables(LEFT, changed, "t")


def test_a_missing_row_fails() -> None:
    with pytest.raises(AssertionError, match="3 rows vs 2"):
        assert_same_tables(LEFT, RIGHT.slice(0, 2), "t")


def test_floats_a_few_ulps_apart_sort_alike_whatever_the_next_column() -> None:
    """The flights example's windowed sums differ between backends in their last bits (0.81 against
    0.8100000000000001); the rounded sort key must be the same for both, or the rows misalign."""
    left = pa.table({"a": [0.81, 0.81, 34.715], "b": [2.0, 1.0, 3.0]})
    right = pa.table({"a": [0.8100000000000001, 0.8099999999999999, 34.714999999999996], "b": [1.0, 2.0, 3.0]})
    assert left.column("a").to_pylist() != right.column("a").to_pylist()  # not bit-equal
    assert_same_tables(left, right, "t")  # raises AssertionError when the rows misalign
