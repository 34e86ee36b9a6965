"""F4 at the source: a timestamp column is one kind throughout (all naive, read in the source's
``timezone``, or all with a UTC offset), whatever DuckDB's sniffer saw in its sample; an explicit
``timestamp_format`` pins the kind; epoch numbers in a timestamp column are named as such.

Each case was a silent shift or a bare error before (issue 13, item 2).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from engine import api
from engine.errors import DataError, SpecError
from engine.spec.schema import load_schema
from tests.conftest import run_engine, write

HEADER = "order_id,user_id,amount,ordered_at\n"
SOURCE_LINE = "orders_raw: {format: csv, path: data/orders.csv, timezone: America/New_York}"


def _utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def _times(root: Path) -> dict[int, pd.Timestamp]:
    frame = api.read_feature_group(root, "orders")
    return {int(k): v for k, v in zip(frame["order_id"], frame["ordered_at"])}


def _declare(root: Path, extra: str) -> None:
    """Add keys to the orders source (flow mapping in the tiny spec)."""
    spec = root / "specs/shop.yaml"
    spec.write_text(spec.read_text().replace(SOURCE_LINE, SOURCE_LINE[:-1] + ", " + extra + "}"))


def _orders(root: Path, times: list[str]) -> None:
    rows = "".join(f"{i},10,1.0,{t}\n" for i, t in enumerate(times, start=1))
    (root / "data/orders.csv").write_text(HEADER + rows)


def test_one_value_with_an_offset_among_naive_values_is_exit_4_not_a_silent_shift(tiny_project: Path):
    """The reported case: DuckDB typed the whole column TIMESTAMPTZ and stored every naive New York
    time as if it were UTC (12:00Z instead of 17:00Z), exit 0."""
    _orders(tiny_project, ["2024-01-01 12:00:00"] * 5 + ["2024-01-01T12:00:00+00:00"])
    rc, _, err = run_engine("apply", str(tiny_project), "--select", "orders")
    if rc == 0:
        stored = _times(tiny_project)[1]
        pytest.fail(f"apply succeeded and stored the naive New York noon as {stored} (17:00Z is the instant); stderr: {err}")
    assert rc == 4, err
    assert (
        "source:orders_raw: orders.csv line 7 column ordered_at: '2024-01-01T12:00:00+00:00' has a UTC offset "
        "but the column's other values are naive (5 naive, 1 with an offset)"
    ) in err
    assert "timezone: America/New_York" in err and "timestamp_format" in err


def test_appending_a_row_with_an_offset_keeps_the_published_history(tiny_project: Path):
    """Appending such a row used to re-read every naive time as UTC: every key's history twice."""
    api.apply(tiny_project)
    before = {name: api.read_feature_group(tiny_project, name) for name in ("orders", "user_spend")}
    with open(tiny_project / "data/orders.csv", "a") as fh:
        fh.write("6,10,2.0,2024-01-07T12:00:00+00:00\n")
    rc, _, err = run_engine("apply", str(tiny_project))
    assert rc == 4, err
    assert "orders.csv line 7 column ordered_at: '2024-01-07T12:00:00+00:00' has a UTC offset" in err
    for name, frame in before.items():
        pd.testing.assert_frame_equal(api.read_feature_group(tiny_project, name), frame)


def test_an_offset_after_the_sniff_sample_is_caught_too(tiny_project: Path):
    """Past DuckDB's sample the column is TIMESTAMP and the offset was dropped without a word."""
    _orders(tiny_project, ["2024-01-01 12:00:00"] * 30_000 + ["2024-01-01 12:00:00-05:00"])
    with pytest.raises(DataError, match=r"orders.csv line 30002 column ordered_at: '2024-01-01 12:00:00-05:00' has a UTC offset but the column's other values are naive \(30000 naive, 1 with an offset\)"):
        api.apply(tiny_project, select=("orders",))


def test_a_naive_value_among_values_with_offsets_names_the_naive_one(tiny_project: Path):
    _orders(tiny_project, ["2024-01-01T12:00:00+01:00", "2024-01-02T12:00:00Z", "2024-01-03 12:00:00", "2024-01-04T12:00:00-05:00"])
    with pytest.raises(DataError, match=r"orders.csv line 4 column ordered_at: '2024-01-03 12:00:00' has no UTC offset but the column's other values have one \(1 naive, 3 with an offset\)"):
        api.apply(tiny_project, select=("orders",))


@pytest.mark.parametrize(
    ("declared", "values", "expected"),
    [
        pytest.param("", ["2024-01-01 12:00:00", "2024-07-01 12:00:00"], ["2024-01-01 17:00", "2024-07-01 16:00"], id="naive-in-timezone"),
        pytest.param("", ["2024-01-01 12:00:00 UTC", "2024-07-01 12:00:00 UTC"], ["2024-01-01 12:00", "2024-07-01 12:00"], id="zone-name-UTC"),
        pytest.param("columns: {ordered_at: TIMESTAMP}", ["2024-01-01T12:00:00+05:00", "2024-01-01T12:00:00-05:00"], ["2024-01-01 07:00", "2024-01-01 17:00"], id="declared-TIMESTAMP-with-offsets"),
        pytest.param("columns: {ordered_at: TIMESTAMPTZ}", ["2024-01-01 12:00:00", "2024-07-01 12:00:00"], ["2024-01-01 17:00", "2024-07-01 16:00"], id="declared-TIMESTAMPTZ-naive-values"),
        pytest.param("timestamp_format: '%d/%m/%Y %H:%M'", ["01/02/2024 12:00", "02/01/2024 12:00"], ["2024-02-01 17:00", "2024-01-02 17:00"], id="format-naive"),
        pytest.param("timestamp_format: '%Y-%m-%d %H:%M:%S%z'", ["2024-01-01 12:00:00+05:00", "2024-01-01 12:00:00-05:00"], ["2024-01-01 07:00", "2024-01-01 17:00"], id="format-with-offset"),
    ],
)
def test_every_consistent_column_is_stored_as_the_right_instant(tiny_project: Path, declared: str, values: list[str], expected: list[str]):
    """Naive values are local times in the source's timezone (America/New_York, DST included);
    values with an offset or a zone name are instants, whatever type the column was declared."""
    if declared:
        _declare(tiny_project, declared)
    _orders(tiny_project, values)
    api.apply(tiny_project, select=("orders",))
    assert _times(tiny_project) == {i: _utc(t) for i, t in enumerate(expected, start=1)}


def test_timestamp_format_with_an_offset_refuses_a_naive_value_naming_line_and_column(tiny_project: Path):
    _declare(tiny_project, "timestamp_format: '%Y-%m-%d %H:%M:%S%z'")
    _orders(tiny_project, ["2024-01-01 12:00:00+00:00", "2024-01-01 12:00:00"])
    rc, _, err = run_engine("apply", str(tiny_project), "--select", "orders")
    assert rc == 4, err
    assert "orders.csv line 3 column ordered_at: cannot convert '2024-01-01 12:00:00' to TIMESTAMP with timestamp_format '%Y-%m-%d %H:%M:%S%z'" in err


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("'%Y-%m-%d %H:%M:%S %Z'", "zone names (%Z) are not read reliably"),
        ("'%Y-%m-%d'", None),
    ],
    ids=["zone-name", "parquet"],
)
def test_timestamp_format_is_checked_at_validate(tiny_project: Path, fmt: str, message: str | None):
    if message is None:  # a Parquet column carries its own type: with or without a time zone, never both
        spec = tiny_project / "specs/shop.yaml"
        spec.write_text(spec.read_text().replace(SOURCE_LINE, f"orders_raw: {{format: parquet, path: data/orders.csv, timestamp_format: {fmt}}}"))
        message = "parquet columns carry their own timestamp type"
    else:
        _declare(tiny_project, f"timestamp_format: {fmt}")
    with pytest.raises(SpecError, match=re.escape(message)):
        api.validate(tiny_project)


def test_timestamp_format_in_the_schema_has_a_description_and_a_length_cap():
    source = load_schema()["$defs"]["source"]["properties"]
    assert source["timestamp_format"]["maxLength"] <= 100 and "%z" in source["timestamp_format"]["description"]
    assert source["csv"]["properties"]["max_line_size"]["maximum"] >= 1 << 26


def test_jsonl_naive_value_after_a_sample_with_offsets_is_caught(tmp_path: Path):
    """JSON-lines: DuckDB types the column TIMESTAMPTZ from its sample and read later naive
    values as UTC."""
    root = tmp_path / "p"
    write(root, "specs/s.yaml", """
        spec_version: 1
        project: p
        sources:
          events_raw: {format: jsonl, path: data/events.jsonl, timezone: Europe/Paris}
        feature_groups:
          events: {primary_key: [id], event_time: t, sql: "SELECT id, t FROM events_raw"}
        """)
    lines = [{"id": i, "t": "2024-01-01T12:00:00+01:00"} for i in range(25_000)] + [{"id": 25_000, "t": "2024-01-02 12:00:00"}]
    write(root, "data/events.jsonl", "")
    (root / "data/events.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(DataError, match=r"events.jsonl line 25001 column t: '2024-01-02 12:00:00' has no UTC offset but the column's other values have one"):
        api.apply(root)


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("1704067200000", r"looks like epoch milliseconds \(read as seconds it would be in the year 55969\): declare the column BIGINT and convert it in SQL with epoch_ms\(ordered_at\)"),
        ("1704067200", r"looks like epoch seconds: declare the column BIGINT and convert it in SQL with to_timestamp\(ordered_at\)"),
    ],
    ids=["milliseconds", "seconds"],
)
def test_epoch_numbers_in_a_declared_timestamp_column_are_named_as_such(tiny_project: Path, value: str, hint: str):
    """F4 ms-vs-s: the only place today's engine meets epoch numbers as times is a source column
    declared TIMESTAMP; values > 1e11 as seconds would be past the year 5138."""
    _declare(tiny_project, "columns: {ordered_at: TIMESTAMP}")
    (tiny_project / "data/orders.csv").write_text(HEADER + f"1,10,1.0,{value}\n")
    with pytest.raises(DataError, match=rf"orders.csv line 2 column ordered_at: cannot convert '{value}' to TIMESTAMP; it {hint}"):
        api.apply(tiny_project, select=("orders",))


def test_a_layout_only_duckdbs_sniffer_knows_is_read_by_duckdb_and_a_bad_value_is_named(tiny_project: Path):
    """'01-02-2024 12:00:00' (day first) is no ISO 8601: DuckDB reads such a column itself (a second
    read), so a bad value past its sample still fails naming the line and the column."""
    _orders(tiny_project, ["01-02-2024 12:00:00"] * 30_000 + ["31-02-2024 12:00:00"])
    with pytest.raises(DataError, match=r"orders.csv line 30002 column ordered_at: cannot convert '31-02-2024 12:00:00' to TIMESTAMP$"):
        api.apply(tiny_project, select=("orders",))
    _orders(tiny_project, ["01-02-2024 12:00:00", "01-07-2024 12:00:00"])
    api.apply(tiny_project, select=("orders",))
    assert _times(tiny_project) == {1: _utc("2024-02-01 17:00"), 2: _utc("2024-07-01 16:00")}
