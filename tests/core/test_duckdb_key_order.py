"""DuckDB: a large SQL group's commit is one Parquet file sorted by its key, and the key check
tries its one-pass proof (no hash aggregate) only while the table's committed version is that very
file. The counts themselves are asserted on every backend in tests/contract/test_backend.py and
against an oracle in tests/builtins/test_expectations.py; here, which way the check went after a
later commit, an append or a rollback."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.backends.catalog import SqliteCatalog
from engine.backends.duckdb.backend import DuckDBBackend
from engine.backends.lake import Lake
from engine.sql.ops import Relation
from tests.support import RecordingConnection

KEY = ("k", "t")
SOURCE = Relation("staging", "events_in")
TARGET = Relation("offline", "events__v1")


@pytest.fixture
def backend(tmp_path: Path, monkeypatch):
    from engine.backends.duckdb import backend as module

    monkeypatch.setattr(module, "ORDERED_MIN_ROWS", 0)  # order these 3,000 rows too
    catalog = SqliteCatalog.open(tmp_path / "catalog.sqlite")
    backend = DuckDBBackend.open(catalog, Lake(tmp_path / "tables", catalog))
    # 3,000 rows in reverse key order, keys unique; t naive (the engine casts it to UTC later)
    backend.con.execute(
        f"CREATE TABLE {SOURCE} AS SELECT 2999 - i AS k, TIMESTAMP '2024-01-01' + to_seconds(i % 7) AS t, i * 0.5 AS x FROM range(3000) r(i)"
    )
    yield backend
    backend.close()


def _statements(backend, monkeypatch) -> list[str]:
    """The SQL the backend's connection runs from now on."""
    recording = RecordingConnection(backend.con)
    monkeypatch.setattr(DuckDBBackend, "con", property(lambda self: recording))
    return recording.statements


def _hashed(statements: list[str]) -> bool:
    return any("DISTINCT" in s for s in statements)


def test_a_sql_group_is_stored_as_one_file_in_key_order_and_checked_without_hashing(backend, monkeypatch) -> None:
    with backend.transaction():
        assert backend.run_select(TARGET, "SELECT * FROM events", {"events": SOURCE}, timeout_s=30, order_by=KEY) == 3000
    files = backend.lake.files(TARGET)
    assert len(files) == 1
    stored = pq.read_table(files[0])
    keys = list(zip(stored["k"].to_pylist(), stored["t"].to_pylist(), strict=True))
    assert keys == sorted(keys) and len(set(keys)) == 3000
    backend.cast_column(TARGET, "t", "TIMESTAMPTZ")  # a naive event time read as UTC keeps the order
    seen = _statements(backend, monkeypatch)
    report = backend.key_report(TARGET, KEY)
    assert (report.null_rows, report.duplicate_rows) == (0, 0) and not _hashed(seen)


def test_any_other_commit_of_the_table_falls_back_to_the_hash_check(backend, monkeypatch) -> None:
    backend.run_select(TARGET, "SELECT * FROM events", {"events": SOURCE}, timeout_s=30, order_by=KEY)
    ordered_file = backend.lake.files(TARGET)
    # a rolled-back rewrite: the committed version is the ordered file again
    with pytest.raises(RuntimeError), backend.transaction():
        backend.run_select(TARGET, "SELECT * FROM events", {"events": SOURCE}, timeout_s=30)
        raise RuntimeError("rolled back")
    assert backend.lake.files(TARGET) == ordered_file
    seen = _statements(backend, monkeypatch)
    assert backend.key_report(TARGET, KEY).duplicate_rows == 0 and not _hashed(seen)
    # an append of a key the table holds: two files now, the hash check counts the duplicate
    backend.write(TARGET, pa.table({"k": [0], "t": pa.array([backend.fetch(TARGET)["t"][0].as_py()]), "x": [1.0]}), mode="append")
    assert backend.key_report(TARGET, KEY).duplicate_rows == 2 and _hashed(seen)
    seen.clear()
    # a rewrite without an order: the hash check again
    backend.run_select(TARGET, "SELECT * FROM events", {"events": SOURCE}, timeout_s=30)
    assert backend.key_report(TARGET, KEY).duplicate_rows == 0 and _hashed(seen)
    seen.clear()
    # ordered by another key than the one checked: the hash check
    backend.run_select(TARGET, "SELECT * FROM events", {"events": SOURCE}, timeout_s=30, order_by=("x",))
    assert backend.key_report(TARGET, KEY).duplicate_rows == 0 and _hashed(seen)


def test_a_small_group_is_not_sorted(backend, monkeypatch) -> None:
    """Below ``ORDERED_MIN_ROWS`` input rows the sort costs more than it saves (time and memory):
    the group is written unordered, one file per thread, and checked by hashing."""
    from engine.backends.duckdb import backend as module

    monkeypatch.setattr(module, "ORDERED_MIN_ROWS", 3001)
    backend.run_select(TARGET, "SELECT * FROM events", {"events": SOURCE}, timeout_s=30, order_by=KEY)
    seen = _statements(backend, monkeypatch)
    assert backend.key_report(TARGET, KEY).duplicate_rows == 0 and _hashed(seen)
    monkeypatch.setattr(module, "ORDERED_MIN_ROWS", 3000)
    backend.run_select(TARGET, "SELECT * FROM events", {"events": SOURCE}, timeout_s=30, order_by=KEY)
    seen.clear()
    assert backend.key_report(TARGET, KEY).duplicate_rows == 0 and not _hashed(seen)
