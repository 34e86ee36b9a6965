"""F6: a CSV that cannot be read stops the run with exit 4 naming the file, the line and the column,
whatever DuckDB's own message says (issue 13, item 7: the column was missing, and a field too
long for the reader was reported on "Line: 1")."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import api
from engine.errors import DataError
from tests.conftest import run_engine, write

HEADER = "order_id,user_id,amount,ordered_at\n"


def _rows(start: int, stop: int) -> str:
    return "".join(f"{i},10,1.0,2024-01-01 09:00:00\n" for i in range(start, stop))


def test_a_conversion_error_names_file_line_and_column(tiny_project: Path):
    (tiny_project / "data/orders.csv").write_text(HEADER + _rows(1, 30_002) + "30002,abc,1.0,2024-01-01 09:00:00\n")
    rc, _, err = run_engine("apply", str(tiny_project), "--select", "orders")
    assert rc == 4, err
    assert "source:orders_raw: reading 'data/orders.csv' failed: orders.csv line 30003 column user_id: cannot convert 'abc' to BIGINT" in err


def test_a_bad_value_in_a_declared_column_inside_the_sample(tiny_project: Path):
    spec = tiny_project / "specs/shop.yaml"
    spec.write_text(spec.read_text().replace("timezone: America/New_York}", "timezone: America/New_York, columns: {amount: DOUBLE}}"))
    (tiny_project / "data/orders.csv").write_text(HEADER + _rows(1, 4) + "4,10,1.0.0,2024-01-01 09:00:00\n")
    with pytest.raises(DataError, match=r"orders.csv line 5 column amount: cannot convert '1.0.0' to DOUBLE"):
        api.apply(tiny_project, select=("orders",))


def test_the_error_names_the_file_of_a_multi_file_source(tmp_path: Path):
    root = tmp_path / "p"
    write(root, "specs/s.yaml", """
        spec_version: 1
        project: p
        sources:
          events_raw: {format: csv, path: "data/events_*.csv", columns: {a: INTEGER}}
        feature_groups:
          events: {primary_key: [id], sql: SELECT * FROM events_raw}
        """)
    write(root, "data/events_1.csv", "id,a\n1,2\n")
    write(root, "data/events_2.csv", "id,a\n2,3\n3,x\n")
    with pytest.raises(DataError, match=r"events_2.csv line 3 column a: cannot convert 'x' to INTEGER"):
        api.apply(root)


def test_a_wrong_number_of_fields_names_the_line(tiny_project: Path):
    (tiny_project / "data/orders.csv").write_text(HEADER + _rows(1, 30_002) + "30002,10,1.0,2024-01-01 09:00:00,extra\n")
    with pytest.raises(DataError, match=r"orders.csv line 30003: 5 fields where the header has 4"):
        api.apply(tiny_project, select=("orders",))


def test_invalid_utf8_names_line_and_column(tiny_project: Path):
    body = (HEADER + _rows(1, 30_002)).encode() + b"30002,10,1.0,2024-01-01 09:00:00\xff\n"
    (tiny_project / "data/orders.csv").write_bytes(body)
    with pytest.raises(DataError, match=r"orders.csv line 30003 column ordered_at: .*not utf-8"):
        api.apply(tiny_project, select=("orders",))


@pytest.mark.parametrize("line", [4, 30_003], ids=["inside-the-sniff-sample", "after-it"])
def test_an_oversized_field_names_its_line_and_column_and_the_limit_to_raise(tiny_project: Path, line: int):
    """An 8 MiB field: DuckDB reports "Line: 1" when it meets it while sniffing."""
    big = "x" * (8 << 20)
    rows = "".join(f"{i},10,1.0,2024-01-01 09:00:00,n\n" for i in range(1, line - 1))
    (tiny_project / "data/orders.csv").write_text(HEADER.replace("\n", ",note\n") + rows + f"{line - 1},10,1.0,2024-01-01 09:00:00,{big}\n{line},10,1.0,2024-01-01 09:00:00,n\n")
    rc, _, err = run_engine("apply", str(tiny_project), "--select", "orders")
    assert rc == 4, err
    assert f"orders.csv line {line} column note: a field of 8388608 bytes makes the line longer than the CSV reader's max_line_size (2000000 bytes)" in err
    assert "csv: {max_line_size: 9437184}" in err
    assert len(err) < 2000  # never the 8 MiB value itself
    spec = tiny_project / "specs/shop.yaml"
    spec.write_text(spec.read_text().replace("timezone: America/New_York}", "timezone: America/New_York, csv: {max_line_size: 9437184}}"))
    api.apply(tiny_project, select=("orders",))
    assert len(api.read_feature_group(tiny_project, "orders")) == line
