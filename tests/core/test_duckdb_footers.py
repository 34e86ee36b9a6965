"""DuckDB: the F5 non-finite check reads Parquet footers where they answer for a column, and scans
only the columns they cannot clear. The counts themselves are asserted on every backend in
tests/contract/test_backend.py; here, which columns were scanned."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.backends.catalog import SqliteCatalog
from engine.backends.duckdb.backend import DuckDBBackend
from engine.backends.duckdb.quality import non_finite_counts
from engine.backends.lake import Lake
from engine.sql.ops import Relation
from tests.support import RecordingConnection, utc_connection

TARGET = Relation("offline", "floats__v1")


@pytest.fixture
def backend(tmp_path: Path):
    catalog = SqliteCatalog.open(tmp_path / "catalog.sqlite")
    backend = DuckDBBackend.open(catalog, Lake(tmp_path / "tables", catalog))
    yield backend
    backend.close()


def _scanned(statements: list[str]) -> list[str]:
    return [s for s in statements if "isfinite(" in s and "parquet_metadata" not in s]


def test_F5_columns_the_footers_clear_are_not_scanned(backend, monkeypatch) -> None:
    backend.con.execute(
        "CREATE TABLE staging.src AS SELECT i AS k, i * 0.5 AS fine, CASE WHEN i = 7 THEN 'inf'::DOUBLE ELSE i END AS bad, "
        "NULL::DOUBLE AS empty FROM range(3000) r(i)"
    )
    with backend.transaction():
        backend.run_select(TARGET, "SELECT * FROM src", {"src": Relation("staging", "src")}, timeout_s=30)
    recording = RecordingConnection(backend.con)
    monkeypatch.setattr(DuckDBBackend, "con", property(lambda self: recording))
    assert backend.non_finite_counts(TARGET) == {"bad": 1}
    scans = _scanned(recording.statements)
    assert len(scans) == 1 and '"bad"' in scans[0] and '"fine"' not in scans[0] and '"empty"' not in scans[0]


def test_F5_a_file_whose_footer_counts_no_nan_is_scanned(tmp_path: Path) -> None:
    """pyarrow writes no NaN count: its footers prove nothing, and every float column is scanned."""
    path = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"x": [1.0, math.nan, 2.0], "y": [1.0, 2.0, 3.0]}), path)
    con = utc_connection()
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{path}')")
    recording = RecordingConnection(con)
    assert non_finite_counts(recording, "t", [str(path)]) == {"x": 1}
    scans = _scanned(recording.statements)
    assert len(scans) == 1 and '"x"' in scans[0] and '"y"' in scans[0]
