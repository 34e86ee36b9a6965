"""Parquet sources committed in place (issue 8, "no needless copies"): files that already hold what
the table stores are hard-linked into the source's lake table, never read and rewritten; files that
need converting (naive times, types a Delta table cannot hold, drifting columns) are read as before.

Each test checks the observable contract: the rows the groups hold, and where the source's rows
live on disk (the same inode as the user's file, or a file the engine wrote).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine import api
from tests.conftest import write

BASE = datetime(2026, 1, 1, tzinfo=UTC)

SPEC = """
spec_version: 1
project: pq
sources:
  events: {{format: parquet, path: data/*.parquet{extra}}}
feature_groups:
  doubled:
    primary_key: [event_id]
    event_time: ts
    incremental: {{kind: append}}
    sql: SELECT event_id, ts, amount * 2 AS amount2 FROM events
"""


def project(root: Path, extra: str = "") -> Path:
    write(root, "specs/p.yaml", SPEC.format(extra=extra))
    (root / "data").mkdir(parents=True, exist_ok=True)
    return root


def part(root: Path, name: str, ids: list[int], *, naive: bool = False, ts_type=None) -> Path:
    times = [BASE + timedelta(minutes=i) for i in ids]
    if naive:
        times = [t.replace(tzinfo=None) for t in times]
    kind = ts_type or pa.timestamp("us", None if naive else "UTC")
    path = root / "data" / name
    pq.write_table(pa.table({"event_id": pa.array(ids, pa.int64()), "ts": pa.array(times, kind), "amount": [float(i) for i in ids]}), path)
    return path


def source_files(ws: Path) -> list[Path]:
    return sorted(p for p in (ws / "tables" / "src" / "events").rglob("*.parquet"))


def inodes(paths) -> set[int]:
    return {os.stat(p).st_ino for p in paths}


def test_utc_parquet_files_are_committed_as_hard_links_not_copies(tmp_path):
    root = project(tmp_path / "p")
    ws = tmp_path / "ws"
    users = [part(root, "a.parquet", [1, 2, 3]), part(root, "b.parquet", [4, 5])]
    api.apply(root, workspace=ws)
    stored = source_files(ws)
    assert inodes(stored) == inodes(users)  # the very files: no bytes written for the source
    got = api.read_feature_group(root, "doubled", workspace=ws)
    assert sorted(got["event_id"]) == [1, 2, 3, 4, 5]
    assert sorted(got["amount2"]) == [2.0, 4.0, 6.0, 8.0, 10.0]

    # A new file is linked in its own commit; the old links stay.
    users.append(part(root, "c.parquet", [6]))
    api.apply(root, workspace=ws)
    assert inodes(source_files(ws)) == inodes(users)
    assert sorted(api.read_feature_group(root, "doubled", workspace=ws)["event_id"]) == [1, 2, 3, 4, 5, 6]


def test_the_stored_rows_survive_the_user_deleting_or_replacing_a_file(tmp_path):
    """Hard links: the table keeps its rows whatever happens to the user's path; the next apply
    sees the change through the source's digest and rebuilds from what the files hold then."""
    root = project(tmp_path / "p")
    ws = tmp_path / "ws"
    part(root, "a.parquet", [1, 2])
    part(root, "b.parquet", [3])
    api.apply(root, workspace=ws)
    (root / "data" / "b.parquet").unlink()
    # Readers still see the committed rows: the link holds the data.
    assert sorted(api.read_feature_group(root, "doubled", workspace=ws)["event_id"]) == [1, 2, 3]
    # Rewritten in place (same path, new content): detected, and the append group refuses (Q: no silent history rewrite).
    part(root, "a.parquet", [1, 2, 7])
    import pytest

    from engine.errors import DataError

    with pytest.raises(DataError, match="changed or disappeared"):
        api.apply(root, workspace=ws)
    api.apply(root, workspace=ws, full_refresh=True)
    assert sorted(api.read_feature_group(root, "doubled", workspace=ws)["event_id"]) == [1, 2, 7]


def test_naive_times_are_converted_in_the_source_timezone_not_linked(tmp_path):
    root = project(tmp_path / "p", extra=", timezone: America/New_York")
    ws = tmp_path / "ws"
    user = part(root, "a.parquet", [0, 60], naive=True)
    api.apply(root, workspace=ws)
    assert not inodes(source_files(ws)) & inodes([user])  # rewritten, as UTC instants
    got = api.read_feature_group(root, "doubled", workspace=ws).sort_values("event_id")
    assert [t.isoformat() for t in got["ts"]] == ["2026-01-01T05:00:00+00:00", "2026-01-01T06:00:00+00:00"]


def test_nanosecond_times_are_rewritten_to_what_the_table_stores(tmp_path):
    root = project(tmp_path / "p")
    ws = tmp_path / "ws"
    user = part(root, "a.parquet", [1, 2], ts_type=pa.timestamp("ns", "UTC"))
    api.apply(root, workspace=ws)
    assert not inodes(source_files(ws)) & inodes([user])
    assert sorted(api.read_feature_group(root, "doubled", workspace=ws)["event_id"]) == [1, 2]


@pytest.mark.parametrize("stored", ["ms", "s", "int96"])
def test_times_stored_in_other_units_are_rewritten_not_linked(tmp_path, stored):
    """DuckDB reads milliseconds (and seconds, stored as milliseconds) and INT96 as microsecond
    timestamps, so only the file's footer shows them: such a file is rewritten, never linked into a
    Delta table whose readers would take its values as microseconds."""
    root = project(tmp_path / "p")
    ws = tmp_path / "ws"
    path = root / "data" / "a.parquet"
    times = [BASE + timedelta(minutes=i) for i in (1, 2)]
    kind = pa.timestamp("ns", "UTC") if stored == "int96" else pa.timestamp(stored, "UTC")
    table = pa.table({"event_id": pa.array([1, 2], pa.int64()), "ts": pa.array(times, kind), "amount": [1.0, 2.0]})
    pq.write_table(table, path, use_deprecated_int96_timestamps=stored == "int96")
    api.apply(root, workspace=ws)
    assert not inodes(source_files(ws)) & inodes([path])
    got = api.read_feature_group(root, "doubled", workspace=ws).sort_values("event_id")
    assert [t.isoformat() for t in got["ts"]] == [t.isoformat() for t in times]
    for stored_file in source_files(ws):
        assert pq.read_schema(stored_file).field("ts").type == pa.timestamp("us", "UTC")


def test_files_with_different_columns_are_refused_as_before_f7(tmp_path):
    """F7: a file whose columns drift is an error naming both files, linked or not."""
    import pytest

    from engine.errors import DataError

    root = project(tmp_path / "p")
    ws = tmp_path / "ws"
    part(root, "a.parquet", [1])
    pq.write_table(pa.table({"event_id": [2], "ts": pa.array([BASE], pa.timestamp("us", "UTC")), "amount": [2.0], "note": ["x"]}), root / "data" / "b.parquet")
    with pytest.raises(DataError, match="'b.parquet' does not match 'a.parquet': extra columns"):
        api.apply(root, workspace=ws)
    assert source_files(ws) == []  # nothing published


def test_gc_never_touches_the_users_files(tmp_path):
    root = project(tmp_path / "p")
    with (root / "specs" / "p.yaml").open("a") as spec:
        spec.write("storage: {retention: 1s}\n")
    ws = tmp_path / "ws"
    user = part(root, "a.parquet", [1, 2])
    api.apply(root, workspace=ws)
    part(root, "b.parquet", [3])
    api.apply(root, workspace=ws, full_refresh=True)  # replaces the src commit: the old links become garbage
    from tests.conftest import run_engine

    old_links = source_files(ws)
    import time

    time.sleep(1.5)  # past the retention
    code, out, err = run_engine("gc", str(root), "--workspace", str(ws))
    assert code == 0, (out, err)
    assert len(source_files(ws)) < len(old_links)  # the replaced commit's links are gone
    assert user.exists() and pq.read_table(user).num_rows == 2  # the user's file is not
    assert sorted(api.read_feature_group(root, "doubled", workspace=ws)["event_id"]) == [1, 2, 3]


def test_validate_reuses_a_parquet_schema_while_the_file_is_unchanged_and_rereads_a_replaced_one(tmp_path, monkeypatch):
    """The schema validation sniffs (from the file's footer) is kept in the workspace's
    stat-keyed digest cache; a file replaced with other columns is read again (E4)."""
    import json

    from engine.errors import SpecError
    from engine.model import parquet_schema

    root = project(tmp_path)
    old = (datetime.now(UTC) - timedelta(hours=1)).timestamp()
    first = part(root, "p1.parquet", [1, 2])
    os.utime(first, (old, old))  # outside the racy window, so the entries are saved
    api.apply(root)
    saved = json.loads((root / ".engine" / "digests.json").read_text())["files"]
    schemas = {k: v for k, v in saved.items() if k.startswith("parquet-columns:")}
    assert list(schemas) == [f"parquet-columns:{first.resolve()}"]
    assert set(json.loads(next(iter(schemas.values()))[1])) == {"event_id", "ts", "amount"}

    reads: list[str] = []
    real = parquet_schema.read_columns
    monkeypatch.setattr(parquet_schema, "read_columns", lambda path: reads.append(str(path)) or real(path))
    api.validate(root)
    assert reads == []  # from the cache

    replacement = root / "data" / "new.tmp"
    pq.write_table(pa.table({"event_id": pa.array([1], pa.int64()), "ts": pa.array([BASE], pa.timestamp("us", "UTC"))}), replacement)
    os.utime(replacement, (old, old))
    os.replace(replacement, first)  # another inode and size: no `amount` any more
    try:
        api.validate(root)
    except SpecError as exc:
        assert "amount" in str(exc)
    else:
        raise AssertionError("validate used the schema of the replaced file")
    assert reads == [str(first)]
