"""Catalog contract: the SQLite workspace catalog (``engine.backends.catalog``) and the metadata SQL
that runs on it (``engine.state.metadata``, ``engine.state.model_index``).

DDL is idempotent; nested transactions join and roll back as one; every metadata function
round-trips, with times back as aware UTC ``datetime``s; a reader in one process sees the last
committed state at once while a writer in another holds its transaction open (DESIGN §4,
Workspace); a damaged or foreign file is exit 74 naming the path, a held write lock exit 75.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from engine.backends.base import Catalog
from engine.errors import ExitCode, LockedError, StorageIOError, UsageError
from engine.state import metadata, model_index
from engine.backends.catalog import SqliteCatalog, utc_text
from engine.state.metadata import FeatureGroupVersion

UTC = timezone.utc
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["memory", "file"])
def catalog(request, tmp_path: Path) -> Iterator[SqliteCatalog]:
    """An empty read-write catalog, in memory or in a file."""
    opened = SqliteCatalog.in_memory() if request.param == "memory" else SqliteCatalog.open(tmp_path / "catalog.sqlite")
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def ready(catalog: SqliteCatalog) -> SqliteCatalog:
    """A catalog with every metadata table created."""
    metadata.ensure_schema(catalog)
    model_index.ensure_schema(catalog)
    return catalog


def _aware(value: object) -> bool:
    return isinstance(value, datetime) and value.utcoffset() == timedelta(0)


def _fgv(version: int, rows: int = 10) -> FeatureGroupVersion:
    return FeatureGroupVersion(
        name="orders", version=version, offline_table=f"offline.orders__v{version}", online_table=None,
        primary_key=("order_id",), event_time="ordered_at", columns={"order_id": "BIGINT", "amount": "DOUBLE"},
        fitted={"scaler": {"mean": 1.5}}, stats={"amount": {"min": 0.0}}, row_count=rows, fingerprint=f"fp{version}",
        run_id=f"run-{version}", published_at="",
    )


# --- the connection --------------------------------------------------------------------------------


def test_implements_the_catalog_protocol(catalog: SqliteCatalog) -> None:
    assert isinstance(catalog, Catalog)
    assert not catalog.in_transaction


def test_ddl_is_idempotent(catalog: SqliteCatalog) -> None:
    assert not metadata.has_metadata(catalog) and not model_index.has_index(catalog)
    for _ in range(2):
        metadata.ensure_schema(catalog)
        model_index.ensure_schema(catalog)
    assert metadata.has_metadata(catalog) and model_index.has_index(catalog)
    names = {r[0] for r in catalog.query("SELECT name FROM _engine.sqlite_master WHERE type = 'table'")}
    assert {"steps", "runs", "feature_groups", "model_versions", "model_aliases"} <= names
    assert catalog.has_table("_engine", "steps")
    assert not catalog.has_table("main", "steps") and not catalog.has_table("_engine", "nope")


def test_every_reader_answers_on_an_empty_catalog(catalog: SqliteCatalog) -> None:
    assert metadata.stored_steps(catalog) == {}
    assert metadata.interrupted_runs(catalog) == []
    assert metadata.feature_group_version(catalog, "orders") is None
    assert metadata.all_feature_group_versions(catalog) == [] and metadata.feature_group_versions(catalog) == []
    assert metadata.feature_view_row(catalog, "v") is None
    assert metadata.rejects(catalog) == [] and metadata.run_started_at(catalog, "r") is None
    assert metadata.watermark(catalog, "job") is None
    assert model_index.version_rows(catalog) == [] and model_index.aliases(catalog) == []
    assert model_index.names(catalog) == [] and model_index.highest_version(catalog, "m") == 0


def test_nested_transactions_join_and_roll_back_as_one(ready: SqliteCatalog) -> None:
    with pytest.raises(RuntimeError):
        with ready.transaction():
            metadata.start_run(ready, "outer")
            with ready.transaction():
                assert ready.in_transaction
                metadata.start_run(ready, "inner")
                raise RuntimeError("boom")
    assert not ready.in_transaction
    assert ready.query("SELECT count(*) FROM _engine.runs") == [(0,)]
    with ready.transaction():
        metadata.start_run(ready, "outer")
        with ready.transaction():
            metadata.start_run(ready, "inner")
        assert ready.in_transaction
    assert [r[0] for r in ready.query("SELECT run_id FROM _engine.runs ORDER BY run_id")] == ["inner", "outer"]


def test_now_is_the_transaction_start_and_greatest_ignores_null(catalog: SqliteCatalog) -> None:
    with catalog.transaction():
        first = catalog.query("SELECT now()")[0][0]
        time.sleep(0.002)
        assert catalog.query("SELECT now()")[0][0] == first
    assert first.endswith("+00:00") and len(first) == len("2026-12-03T11:02:21.123456+00:00")
    assert catalog.query("SELECT greatest(NULL, 2), greatest(3, NULL), greatest(NULL, NULL), greatest(1, 5)") == [(2, 3, None, 5)]


def test_execute_counts_changed_rows(ready: SqliteCatalog) -> None:
    metadata.start_run(ready, "a")
    metadata.start_run(ready, "b")
    assert ready.execute("UPDATE _engine.runs SET status = 'x'") == 2
    assert ready.execute("CREATE TABLE IF NOT EXISTS _engine.scratch (x INTEGER)") == 0


def test_interrupt_from_another_thread_stops_a_query(catalog: SqliteCatalog) -> None:
    endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"
    timer = threading.Timer(0.2, catalog.interrupt)
    timer.start()
    with pytest.raises(sqlite3.OperationalError, match="interrupted"):
        catalog.query(endless)
    timer.join()
    assert catalog.query("SELECT 1") == [(1,)]
    catalog.close()
    catalog.close()  # again: nothing


# --- the metadata functions ------------------------------------------------------------------------


def test_steps_round_trip(ready: SqliteCatalog) -> None:
    metadata.record_step(ready, "feature_group:orders", "def1", "fp1", "run-1")
    metadata.record_step(ready, "feature_group:orders", "def2", "fp2", "run-2")
    stored = metadata.stored_steps(ready)
    assert list(stored) == ["feature_group:orders"]
    assert (stored["feature_group:orders"].definition_fingerprint, stored["feature_group:orders"].fingerprint) == ("def2", "fp2")


def test_runs_round_trip(ready: SqliteCatalog) -> None:
    before = datetime.now(UTC)
    metadata.start_run(ready, "run-1")
    metadata.start_run(ready, "run-2")
    assert metadata.interrupted_runs(ready) == ["run-1", "run-2"]
    metadata.close_interrupted(ready, ["run-1"])
    metadata.finish_run(ready, "run-2", "succeeded", {"steps": 3, "at": datetime(2024, 1, 1)})
    assert metadata.interrupted_runs(ready) == []
    started = metadata.run_started_at(ready, "run-2")
    assert _aware(started) and before <= started <= datetime.now(UTC)
    rows = ready.query_dicts("SELECT run_id, status, summary FROM _engine.runs ORDER BY run_id")
    assert [(r["run_id"], r["status"]) for r in rows] == [("run-1", "interrupted"), ("run-2", "succeeded")]
    assert rows[1]["summary"] == '{"steps": 3, "at": "2024-01-01 00:00:00"}'


def test_feature_groups_round_trip(ready: SqliteCatalog) -> None:
    metadata.upsert_feature_group(ready, _fgv(1), rows_written=10)
    metadata.upsert_feature_group(ready, _fgv(2, rows=20), rows_written=5)
    metadata.upsert_feature_group(ready, _fgv(2, rows=25), rows_written=5)  # republished: replaced
    latest = metadata.feature_group_version(ready, "orders")
    assert latest is not None and (latest.version, latest.row_count) == (2, 25)
    assert latest == FeatureGroupVersion(**{**_fgv(2, rows=25).__dict__, "published_at": latest.published_at})
    assert _aware(datetime.fromisoformat(latest.published_at))
    assert metadata.feature_group_version(ready, "orders", 1).offline_table == "offline.orders__v1"
    assert metadata.feature_group_version(ready, "orders", 3) is None
    assert [(v.version, v.row_count) for v in metadata.all_feature_group_versions(ready)] == [(1, 10), (2, 25)]
    listed = metadata.feature_group_versions(ready)
    assert [r[:3] for r in listed] == [("orders", 1, 10), ("orders", 2, 25)]
    assert listed[1][3] == latest.published_at
    assert ready.query("SELECT count(*), sum(rows_written) FROM _engine.feature_group_writes") == [(3, 20)]


def test_feature_views_and_training_datasets_round_trip(ready: SqliteCatalog) -> None:
    metadata.upsert_feature_view(ready, "delays", 1, "views.delays__v1", {"keys": ["id"]}, 7, "fp", "run-1")
    row = metadata.feature_view_row(ready, "delays")
    assert row is not None and row["layout"] == {"keys": ["id"]} and row["table_name"] == "views.delays__v1"
    assert row["row_count"] == 7 and _aware(row["published_at"])
    assert metadata.feature_view_row(ready, "delays", 2) is None
    assert not metadata.has_training_dataset(ready, "td")
    metadata.insert_training_dataset(ready, "td", "m", "delays", 1, "training.td", "fp", {"kind": "random"}, {"train": 5}, "run-1")
    assert metadata.has_training_dataset(ready, "td")
    assert ready.query("SELECT split, rows FROM _engine.training_datasets") == [('{"kind": "random"}', '{"train": 5}')]


def test_rejects_newest_run_first_then_file_and_line(ready: SqliteCatalog) -> None:
    metadata.record_rejects(ready, "run-1", "orders_raw", (("a.csv", 3, "x", "CAST", "1,x", "bad"),))
    time.sleep(0.002)
    metadata.record_rejects(
        ready, "run-2", "orders_raw", (("b.csv", 9, "x", "CAST", "9,x", "bad"), ("a.csv", 7, "y", "CAST", "7,y", "bad"))
    )
    metadata.record_rejects(ready, "run-2", "users_raw", ())
    rows = metadata.rejects(ready, "orders_raw")
    assert [(r["run_id"], r["file"], r["line"]) for r in rows] == [("run-2", "a.csv", 7), ("run-2", "b.csv", 9), ("run-1", "a.csv", 3)]
    assert all(_aware(r["rejected_at"]) for r in rows) and rows[0]["rejected_at"] == rows[1]["rejected_at"]
    assert metadata.rejects(ready, "users_raw") == [] and len(metadata.rejects(ready)) == 3


def test_watermark_keeps_the_greatest_event_time(ready: SqliteCatalog) -> None:
    metadata.advance_watermark(ready, "live", 3, "run-1", None)
    mark = metadata.watermark(ready, "live")
    assert mark is not None and (mark["runs"], mark["rows_scored"], mark["last_event_time"]) == (1, 3, None)
    assert _aware(mark["updated_at"])
    metadata.advance_watermark(ready, "live", 2, "run-2", pd.Timestamp("2024-03-01 10:00:00"))  # naive: UTC
    metadata.advance_watermark(ready, "live", 1, "run-3", datetime(2024, 3, 1, 12, tzinfo=timezone(timedelta(hours=5))))  # 07:00Z
    metadata.advance_watermark(ready, "live", 0, "run-4", None)
    mark = metadata.watermark(ready, "live")
    assert (mark["runs"], mark["rows_scored"], mark["last_run_id"]) == (4, 6, "run-4")
    assert mark["last_event_time"] == datetime(2024, 3, 1, 10, tzinfo=UTC) and _aware(mark["last_event_time"])
    metadata.advance_watermark(ready, "live", 1, "run-5", pd.Timestamp("2024-03-02 00:00:00", tz="Europe/Paris"))
    assert metadata.watermark(ready, "live")["last_event_time"] == datetime(2024, 3, 1, 23, tzinfo=UTC)
    assert metadata.watermark(ready, "other") is None


def test_model_index_round_trips(ready: SqliteCatalog) -> None:
    def row(version: int, fingerprint: str) -> dict:
        values = dict.fromkeys(model_index.COLUMNS, "x")
        return {**values, "name": "delay", "version": version, "fingerprint": fingerprint, "artifact_size": 12, "manifest": '{"a": 1}'}

    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    model_index.insert_version(ready, row(1, "fp1"), created)
    model_index.insert_version(ready, row(2, "fp2"), created)
    with pytest.raises(sqlite3.IntegrityError):
        model_index.insert_version(ready, row(3, "fp1"), created)  # same inputs: one version
    model_index.set_alias(ready, "delay", "prod", 1, created)
    model_index.set_alias(ready, "delay", "prod", 2, created)
    assert model_index.names(ready) == ["delay"] and model_index.highest_version(ready, "delay") == 2
    assert model_index.aliases(ready) == [("delay", "prod", 2)]
    rows = model_index.version_rows(ready, "delay")
    assert [(r["version"], r["fingerprint"], r["artifact_size"], r["manifest"]) for r in rows] == [(1, "fp1", 12, '{"a": 1}'), (2, "fp2", 12, '{"a": 1}')]
    assert ready.query("SELECT DISTINCT created_at FROM _engine.model_versions") == [("2026-01-02T01:04:05.000000+00:00",)]
    assert utc_text(created) == "2026-01-02T01:04:05.000000+00:00"


# --- files and processes ---------------------------------------------------------------------------


def test_a_file_is_read_back_by_a_read_only_catalog(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    with SqliteCatalog.open(path) as writer:
        metadata.ensure_schema(writer)
        metadata.record_step(writer, "t", "def", "fp3", "run-1")
    with SqliteCatalog.open_read_only(path) as reader:
        assert reader.read_only and metadata.stored_steps(reader)["t"].fingerprint == "fp3"
        with reader.transaction():
            assert metadata.has_metadata(reader)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            metadata.start_run(reader, "run-2")


def test_read_only_without_a_workspace_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="run `engine apply` first"):
        SqliteCatalog.open_read_only(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()


@pytest.mark.parametrize("opener", [SqliteCatalog.open, SqliteCatalog.open_read_only])
def test_a_file_that_is_not_sqlite_is_an_io_error_naming_it(tmp_path: Path, opener) -> None:
    path = tmp_path / "catalog.sqlite"
    path.write_bytes(b"this is not a database, just bytes \x00\xff" * 200)
    with pytest.raises(StorageIOError) as caught:
        opener(path)
    assert str(path) in caught.value.message and caught.value.exit_code == ExitCode.IO_ERROR


def test_a_reader_snapshot_does_not_hold_up_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    with SqliteCatalog.open(path, busy_timeout_s=0.2) as writer:
        metadata.ensure_schema(writer)
        metadata.record_step(writer, "t", "def", "fp1", "run-1")
        with SqliteCatalog.open_read_only(path) as reader, reader.transaction():
            assert metadata.stored_steps(reader)["t"].fingerprint == "fp1"
            metadata.record_step(writer, "t", "def", "fp2", "run-2")  # commits at once
            assert metadata.stored_steps(reader)["t"].fingerprint == "fp1"  # its snapshot
        assert metadata.stored_steps(writer)["t"].fingerprint == "fp2"


_CHILD = """
import sys, time
from engine.state import metadata
from engine.backends.catalog import SqliteCatalog

catalog = SqliteCatalog.open(sys.argv[1])
with catalog.transaction():
    metadata.record_step(catalog, "t", "def", "fp2", "child")
    print("holding", flush=True)
    sys.stdin.readline()  # the parent says when to commit (or closes the pipe)
print("committed", flush=True)
"""


def test_a_reader_is_never_blocked_by_a_writer_in_another_process(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    with SqliteCatalog.open(path) as setup:
        metadata.ensure_schema(setup)
        metadata.record_step(setup, "t", "def", "fp1", "parent")
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "holding", child.stderr.read()
        started = time.monotonic()
        reader = SqliteCatalog.open_read_only(path)
        assert metadata.stored_steps(reader)["t"].fingerprint == "fp1"  # the last commit, not the open one
        assert reader.query("SELECT run_id FROM _engine.steps WHERE step_id = 't'") == [("parent",)]
        assert time.monotonic() - started < 1.0
        with SqliteCatalog.open(path, busy_timeout_s=0.2) as other_writer:  # a second writer waits, then says so
            with pytest.raises(LockedError) as caught:
                with other_writer.transaction():
                    pass
            assert caught.value.exit_code == ExitCode.LOCKED and str(path) in caught.value.message
        child.stdin.write("commit\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "committed"
        assert child.wait(timeout=10) == 0, child.stderr.read()
        assert metadata.stored_steps(reader)["t"].fingerprint == "fp2"  # the open reader's next read
        reader.close()
        with SqliteCatalog.open_read_only(path) as fresh:
            assert metadata.stored_steps(fresh)["t"].fingerprint == "fp2"
            assert fresh.query("SELECT run_id FROM _engine.steps WHERE step_id = 't'") == [("child",)]
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        for stream in (child.stdin, child.stdout, child.stderr):
            stream.close()
