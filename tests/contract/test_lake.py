"""The lake (engine.backends.lake) under the DuckDB backend: what the table format adds to the
Backend contract. Types a Delta table cannot hold are stored widened (never a changed value) or
refused with a message (nanoseconds round to the microsecond Delta keeps); a version is its file list; unrecorded commits are invisible and rewound;
vacuum honours the retention; a damaged or foreign folder is never written over (exit 74)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from engine.errors import ExecutionError, StorageIOError
from engine.sql.ops import Relation
from tests.contract.conftest import _duckdb_open, arrow, put, rows


@pytest.fixture
def lake_backend(tmp_path: Path):
    backend = _duckdb_open(tmp_path / "ws")
    try:
        yield backend
    finally:
        backend.close()


def _stored(backend, select: str) -> dict[str, str]:
    target = Relation("offline", "typed")
    backend.con.execute(f"CREATE OR REPLACE TABLE staging.typed AS {select}")
    backend.create(target, Relation("staging", "typed"), replace=True)
    return backend.columns(target)


def test_types_delta_cannot_hold_are_widened(lake_backend) -> None:
    select = (
        "SELECT 255::UTINYINT AS u8, 65535::USMALLINT AS u16, 4294967295::UINTEGER AS u32, "
        "18446744073709551615::UBIGINT AS u64, 99999999999999999999999999999999999999::HUGEINT AS i128, "
        "TIMESTAMP_NS '2024-01-01 10:00:00.123456789' AS ns, 'a'::ENUM('a', 'b') AS e, "
        "'00000000-0000-0000-0000-000000000001'::UUID AS id, NULL AS nothing"
    )
    columns = _stored(lake_backend, select)
    assert columns == {
        "u8": "SMALLINT", "u16": "INTEGER", "u32": "BIGINT", "u64": "DECIMAL(20,0)", "i128": "DECIMAL(38,0)",
        "ns": "TIMESTAMP", "e": "VARCHAR", "id": "VARCHAR", "nothing": "INTEGER",
    }  # fmt: skip
    (row,) = rows(lake_backend, Relation("offline", "typed"))
    assert (row["u8"], row["u16"], row["u32"], int(row["u64"])) == (255, 65535, 4294967295, 18446744073709551615)
    assert int(row["i128"]) == 99999999999999999999999999999999999999  # 38 digits: HUGEINT beyond 10^38 does not fit
    assert row["ns"].isoformat() == "2024-01-01T10:00:00.123457"  # Delta keeps microseconds: rounded and row["e"] == "a" and row["id"].endswith("0001")


@pytest.mark.parametrize("select", ["SELECT INTERVAL 1 DAY AS gap", "SELECT TIME '10:00' AS at"])
def test_a_type_delta_cannot_hold_is_refused_with_how_to_cast_it(lake_backend, select) -> None:
    with pytest.raises(ExecutionError, match="cannot hold; cast it in the SQL"):
        _stored(lake_backend, select)
    assert not lake_backend.exists(Relation("offline", "typed"))


def test_a_version_is_its_file_list_and_each_commit_its_own_folder(lake_backend) -> None:
    target = Relation("offline", "t")
    put(lake_backend, target, arrow({"k": [1, 2]}, {"k": "int"}))
    put(lake_backend, target, arrow({"k": [3]}, {"k": "int"}), mode="append")
    lake = lake_backend.lake
    files = lake.files(target)
    assert len({Path(f).parent for f in files}) == 2 and all(Path(f).parent.name.startswith("part-") for f in files)
    assert sorted(r["k"] for r in rows(lake_backend, target)) == [1, 2, 3]
    first = lake.commits(target)[0].version
    assert sorted(r["k"] for r in rows(lake_backend, lake_backend.at_version(target, first))) == [1, 2]


def test_an_empty_commit_reads_back_empty_with_its_columns(lake_backend) -> None:
    target = Relation("offline", "empty")
    lake_backend.con.execute("CREATE TABLE staging.none AS SELECT 1::BIGINT AS k, 'x' AS v WHERE false")
    assert lake_backend.create(target, Relation("staging", "none")) == 0
    assert lake_backend.columns(target) == {"k": "BIGINT", "v": "VARCHAR"} and lake_backend.count(target) == 0


def test_unrecorded_commits_are_invisible_then_rewound(lake_backend) -> None:
    """G1 at the lake level: a Delta commit the catalog never recorded (the process died before
    the catalog transaction) is not what readers see, and `rewind` restores the recorded rows."""
    target = Relation("offline", "t")
    put(lake_backend, target, arrow({"k": [1]}, {"k": "int"}))
    lake = lake_backend.lake
    recorded = lake.version(target)
    with pytest.raises(RuntimeError):
        with lake_backend.transaction():
            put(lake_backend, target, arrow({"k": [9]}, {"k": "int"}))
            raise RuntimeError("killed")
    from deltalake import DeltaTable

    assert DeltaTable(str(lake.path(target))).version() > recorded  # the commit is on disk …
    assert [r["k"] for r in rows(lake_backend, target)] == [1]  # … and invisible
    assert lake.rewind() == [target]
    assert lake.rewind() == []  # consistent now
    assert [r["k"] for r in rows(lake_backend, target)] == [1]


def test_vacuum_keeps_what_the_retention_protects_and_forgets_older_commits(lake_backend) -> None:
    target = Relation("offline", "t")
    put(lake_backend, target, arrow({"k": [1]}, {"k": "int"}))
    put(lake_backend, target, arrow({"k": [2]}, {"k": "int"}))
    lake = lake_backend.lake
    assert lake.vacuum(timedelta(days=7)) == [] and len(lake.commits(target)) == 2
    removed = lake.vacuum(timedelta(0))
    assert removed and all(str(p).startswith(str(lake.path(target))) for p in removed)
    assert [c.version for c in lake.commits(target)] == [lake.version(target)]
    assert [r["k"] for r in rows(lake_backend, target)] == [2]


def test_a_foreign_folder_is_never_written_over(lake_backend) -> None:
    target = Relation("offline", "t")
    folder = lake_backend.lake.path(target)
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("someone else's")
    with pytest.raises(StorageIOError, match="not a Delta table"):
        put(lake_backend, target, arrow({"k": [1]}, {"k": "int"}))
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_I1_data_files_of_a_first_write_killed_before_its_commit_are_cleared_foreign_files_refused(lake_backend) -> None:
    """A SIGKILL between writing a first commit's files and committing leaves part-* files in a
    table folder with no Delta log and no recorded version: nothing can read them, so the next
    write clears them. Anything else in such a folder is not the engine's: refused (exit 74)."""
    table = Relation("offline", "killed__v1")
    folder = lake_backend.lake.path(table)
    (folder / "part-0123456789abcdef0123456789abcdef").mkdir(parents=True)
    (folder / "part-0123456789abcdef0123456789abcdef" / "part-00000.parquet").write_bytes(b"half-written")
    assert put(lake_backend, table, arrow({"k": [1, 2]}, {"k": "int"})) == 2
    assert rows(lake_backend, table) == [{"k": 1}, {"k": 2}]
    foreign = Relation("offline", "foreign__v1")
    (lake_backend.lake.path(foreign)).mkdir(parents=True)
    (lake_backend.lake.path(foreign) / "notes.txt").write_text("mine")
    with pytest.raises(StorageIOError, match="not a Delta table the engine wrote"):
        put(lake_backend, foreign, arrow({"k": [1]}, {"k": "int"}))
    assert (lake_backend.lake.path(foreign) / "notes.txt").read_text() == "mine"
