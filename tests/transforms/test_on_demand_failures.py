"""On-demand functions that fail: the first failing input row is found by bisection, whatever the
backend (DuckDB calls the functions in-process, Spark per batch on its executors), and the message
names the view, the function and that row."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ExecutionError
from engine.model.objects import Function
from engine.transforms.on_demand import OnDemandFrames, first_failing_row


def _strict(bad: set[int]):
    def fn(x: pd.Series) -> pd.Series:
        if x.isin(bad).any():
            raise ValueError("bad value")
        return x

    return fn


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.integers(0, 30), min_size=0, max_size=120), bad=st.sets(st.integers(0, 30), max_size=3))
def test_first_failing_row_is_the_first_row_that_fails_alone(values, bad) -> None:
    """Oracle: a row-wise function fails on a slice iff the slice holds a bad row, so the answer is
    the first bad row in order (None when there is none)."""
    frame = pd.DataFrame({"x": values})
    expected = next(({"x": v} for v in values if v in bad), None)
    assert first_failing_row(_strict(bad), frame) == expected


def test_a_failure_that_needs_several_rows_names_no_row() -> None:
    def needs_two(x: pd.Series) -> pd.Series:
        if len(x) > 1 and x.sum() > 10:
            raise ValueError("too much together")
        return x

    assert first_failing_row(needs_two, pd.DataFrame({"x": [6, 6, 6]})) is None


def test_the_message_names_view_function_row_and_user_frame(tmp_path: Path) -> None:
    (tmp_path / "odf_pkg").mkdir()
    (tmp_path / "odf_pkg" / "__init__.py").write_text("")
    (tmp_path / "odf_pkg" / "fns.py").write_text(
        "def ratio(a, b):\n    if (b == 0).any():\n        raise ZeroDivisionError('b is 0')\n    return a / b\n"
    )
    fn = OnDemandFrames([Function("ratio", "odf_pkg.fns", "ratio", ("a", "b"), "float64")], tmp_path, "feature_view:v@2")
    assert fn.added() == {"ratio": "DOUBLE"}
    with pytest.raises(ExecutionError) as caught:
        fn(pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1.0, 0.0, 0.0]}))
    assert str(caught.value) == (
        "feature_view:v@2: function:ratio: odf_pkg.fns:ratio raised ZeroDivisionError: b is 0 (odf_pkg/fns.py:3); "
        "first failing input row: {a: 2.0, b: 0.0}"
    )
