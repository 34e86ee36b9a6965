"""Incremental pipelines (issue 8, part 2): incremental source ingest, ``append`` and ``by_time``
SQL feature groups, built-in aggregations as by_time, late rows, changed files, ``--full-refresh``.

The property: whatever order new source files arrive in, after every apply the offline tables,
online tables and the feature view equal a from-scratch apply on the same files in a fresh
workspace (DESIGN §3: an incremental group must equal a full recompute).
"""

from __future__ import annotations

import re
import shutil
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import api
from engine.errors import DataError
from tests.conftest import check_golden, run_engine, write

SPEC = """
spec_version: 1
project: inc
sources:
  events:
    format: csv
    path: data/*.csv
    columns: {{event_id: BIGINT, user_id: BIGINT, ts: TIMESTAMP, amount: DOUBLE, label: BIGINT}}
feature_groups:
  scored:
    primary_key: [event_id]
    event_time: ts
    incremental: {{kind: append}}
    sql: |
      SELECT event_id, user_id, ts, amount * 2 AS amount2, label FROM events
  rolling:
    primary_key: [user_id]
    event_time: ts
    incremental: {{kind: by_time, lookback: 2h}}{on_late}
    sql: |
      SELECT user_id, ts,
             sum(amount) OVER w AS amount_2h,
             count(*) OVER w AS events_2h
      FROM events
      WINDOW w AS (PARTITION BY user_id ORDER BY ts RANGE BETWEEN INTERVAL '7199999999' MICROSECONDS PRECEDING AND CURRENT ROW)
  user_amounts:
    primary_key: [user_id]
    event_time: ts
    from: events{on_late}
    aggregations:
      - {{column: amount, function: sum, window: 3h}}
      - {{column: amount, function: max, window: 1h}}
feature_views:
  fv:
    spine: scored
    label: label
    features: [amount2]
    join:
      - {{feature_group: rolling, on: [user_id]}}
      - {{feature_group: user_amounts, on: [user_id], prefix: ua_}}
"""

BASE = datetime(2026, 1, 1, 0, 0)
COLUMNS = "event_id,user_id,ts,amount,label"
GROUPS = ("scored", "rolling", "user_amounts")


def project(root: Path, *, on_late: str | None = None, fmt: str = "csv") -> Path:
    line = f"\n    on_late: {on_late}" if on_late else ""
    spec = SPEC.format(on_late=line)
    if fmt == "parquet":  # the files' own UTC times and types: committed in place (hard links)
        spec = spec.replace("format: csv\n    path: data/*.csv\n    columns: {event_id: BIGINT, user_id: BIGINT, ts: TIMESTAMP, amount: DOUBLE, label: BIGINT}", "format: parquet\n    path: data/*.parquet")
        assert "parquet" in spec
    write(root, "specs/inc.yaml", spec)
    (root / "data").mkdir(parents=True, exist_ok=True)
    return root


def add_file(root: Path, name: str, rows: list[tuple]) -> Path:
    path = root / "data" / name
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = list(zip(*rows, strict=True))
        pq.write_table(
            pa.table({
                "event_id": pa.array(columns[0], pa.int64()),
                "user_id": pa.array(columns[1], pa.int64()),
                "ts": pa.array([BASE.replace(tzinfo=UTC) + timedelta(minutes=m) for m in columns[2]], pa.timestamp("us", "UTC")),
                "amount": pa.array(columns[3], pa.float64()),
                "label": pa.array(columns[4], pa.int64()),
            }),
            path,
        )
        return path
    lines = [COLUMNS] + [f"{e},{u},{(BASE + timedelta(minutes=m)).isoformat(sep=' ')},{a},{lab}" for e, u, m, a, lab in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def snapshot(root: Path, workspace: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for name in GROUPS:
        out[f"offline:{name}"] = api.read_feature_group(root, name, workspace=workspace)
        out[f"online:{name}"] = api.read_feature_group(root, name, online=True, workspace=workspace)
    out["view:fv"] = api.read_feature_view(root, "fv", workspace=workspace)
    return {k: _sorted(v) for k, v in out.items()}


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[sorted(frame.columns)]
    return frame.sort_values(list(frame.columns), na_position="first").reset_index(drop=True)


def assert_same(got: dict[str, pd.DataFrame], want: dict[str, pd.DataFrame]) -> None:
    assert got.keys() == want.keys()
    for key in want:
        pd.testing.assert_frame_equal(got[key], want[key], check_dtype=False, obj=key)


def fresh(root: Path, scratch: Path) -> dict[str, pd.DataFrame]:
    """A from-scratch apply of the same files in a new workspace."""
    if scratch.exists():
        shutil.rmtree(scratch)
    api.apply(root, workspace=scratch)
    return snapshot(root, scratch)


def reasons(result) -> dict[str, tuple[str, int | None]]:
    return {s.step_id.split(":")[1].split("@")[0]: (s.reason, s.rows) for s in result.run.steps}


# --- batches: times out of order across batches, lateness within the smallest lookback (2h) ---------


@st.composite
def batches(draw, *, late_minutes: int = 110):
    """k batches of rows (event_id, user_id, minute, amount, label) with unique (user, minute):
    each batch's times start no earlier than the latest time seen so far minus ``late_minutes``
    and may run later than anything seen."""
    k = draw(st.integers(2, 4))
    used: set[tuple[int, int]] = set()
    seen_max = 0
    event_id = 0
    out = []
    for _ in range(k):
        n = draw(st.integers(1, 4))
        rows = []
        lo = max(0, seen_max - late_minutes)
        for _ in range(n):
            user = draw(st.integers(1, 3))
            minute = draw(st.integers(lo, seen_max + 240))
            if (user, minute) in used:
                continue
            used.add((user, minute))
            event_id += 1
            amount = float(draw(st.integers(1, 9)))
            rows.append((event_id, user, minute, amount, draw(st.integers(0, 1))))
        if not rows:
            continue
        out.append(rows)
        seen_max = max([seen_max, *(r[2] for r in rows)])
    return out


def _run_property(tmp_path: Path, arrival: list[list[tuple]], *, on_late: str | None = None, fmt: str = "csv") -> None:
    root = project(tmp_path / "inc", on_late=on_late, fmt=fmt)
    workspace = tmp_path / "ws"
    for i, rows in enumerate(arrival):
        add_file(root, f"batch_{i:02d}.{fmt}", rows)
        result = api.apply(root, workspace=workspace)
        if i:
            ran = reasons(result)
            assert ran["events"] == ("new data (incremental)", len(rows)), ran
            for name in GROUPS:
                assert ran[name][0] == "new data (incremental)", ran
        assert_same(snapshot(root, workspace), fresh(root, tmp_path / "fresh"))


@settings(max_examples=6)
@given(arrival=batches())
def test_incremental_applies_equal_a_full_recompute(tmp_path_factory, arrival):
    _run_property(tmp_path_factory.mktemp("prop"), arrival)


@settings(max_examples=4)
@given(arrival=batches())
def test_incremental_applies_over_parquet_files_committed_in_place_equal_a_full_recompute(tmp_path_factory, arrival):
    _run_property(tmp_path_factory.mktemp("prop"), arrival, fmt="parquet")


@pytest.mark.slow
@settings(max_examples=25)
@given(arrival=batches(late_minutes=100_000))
def test_any_arrival_order_with_on_late_rebuild_equals_a_full_recompute(tmp_path_factory, arrival):
    _run_property(tmp_path_factory.mktemp("prop"), arrival, on_late="rebuild")


# --- unit tests ---------------------------------------------------------------------------------------


def test_incremental_reapply_reads_only_the_new_file_and_recomputes_only_the_range(tmp_path):
    root = project(tmp_path / "inc")
    ws = tmp_path / "ws"
    add_file(root, "a.csv", [(1, 1, 0, 5.0, 1), (2, 1, 60, 6.0, 0), (3, 2, 120, 7.0, 1), (4, 2, 200, 8.0, 0)])
    api.apply(root, workspace=ws)
    add_file(root, "b.csv", [(5, 1, 90, 9.0, 1), (6, 3, 700, 1.0, 0)])
    result = api.apply(root, workspace=ws)
    ran = reasons(result)
    assert ran["events"] == ("new data (incremental)", 2)  # the new file's rows, not 6
    assert ran["scored"] == ("new data (incremental)", 2)  # the two new rows only
    # by_time: T = minute 90, so the output rows at or after it are recomputed: user 1 @90,
    # user 2 @120 and @200, user 3 @700 (user 1 @0 and @60 are kept).
    assert ran["rolling"] == ("new data (incremental)", 4)
    assert ran["user_amounts"] == ("new data (incremental)", 4)
    assert ran["fv"][0] == "upstream changed"
    assert_same(snapshot(root, ws), fresh(root, tmp_path / "fresh"))
    # Nothing new: nothing runs.
    assert api.apply(root, workspace=ws).run is None


def test_the_plan_says_why_a_step_runs_incrementally(tmp_path):
    root = project(tmp_path / "inc")
    ws = tmp_path / "ws"
    add_file(root, "a.csv", [(1, 1, 0, 5.0, 1)])
    api.apply(root, workspace=ws)
    add_file(root, "b.csv", [(2, 1, 30, 5.0, 1)])
    plan = {s.step.id.name: s.reason.value for s in api.plan(root, workspace=ws).steps}
    assert plan == {
        "events": "new data (incremental)", "scored": "new data (incremental)", "rolling": "new data (incremental)",
        "user_amounts": "new data (incremental)", "fv": "upstream changed",
    }


def test_the_plan_golden_shows_incremental_reasons(tmp_path):
    root = project(tmp_path / "inc")
    ws = tmp_path / "ws"
    add_file(root, "a.csv", [(1, 1, 0, 5.0, 1)])
    api.apply(root, workspace=ws)
    add_file(root, "b.csv", [(2, 1, 30, 5.0, 1)])
    code, out, err = run_engine("plan", str(root), "--workspace", str(ws))
    assert code == 0, err
    check_golden("plan/incremental_new_data.txt", out)


def test_parquet_source_appends_only_the_new_file(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "pq"
    write(root, "specs/p.yaml", """
        spec_version: 1
        project: pq
        sources:
          events: {format: parquet, path: data/*.parquet}
        feature_groups:
          doubled:
            primary_key: [event_id]
            event_time: ts
            incremental: {kind: append}
            sql: SELECT event_id, ts, amount * 2 AS amount2 FROM events
    """)
    (root / "data").mkdir()

    def part(name: str, ids: list[int]) -> None:
        times = [BASE + timedelta(minutes=i) for i in ids]
        pq.write_table(pa.table({"event_id": ids, "ts": pa.array(times, pa.timestamp("us", "UTC")), "amount": [float(i) for i in ids]}), root / "data" / name)

    ws = tmp_path / "ws"
    part("p0.parquet", [1, 2, 3])
    api.apply(root, workspace=ws)
    part("p1.parquet", [4, 5])
    ran = reasons(api.apply(root, workspace=ws))
    assert ran == {"events": ("new data (incremental)", 2), "doubled": ("new data (incremental)", 2)}
    assert sorted(api.read_feature_group(root, "doubled", workspace=ws)["event_id"]) == [1, 2, 3, 4, 5]
    # A new file whose columns differ is not appended: the full read reports the drift (F7).
    pq.write_table(pa.table({"event_id": [6], "ts": pa.array([BASE], pa.timestamp("us", "UTC")), "other": [1.0]}), root / "data" / "p2.parquet")
    with pytest.raises(DataError, match="does not match"):
        api.apply(root, workspace=ws)


def test_a_changed_file_reingests_everything_and_an_append_group_refuses_until_full_refresh(tmp_path):
    root = project(tmp_path / "inc")
    ws = tmp_path / "ws"
    add_file(root, "a.csv", [(1, 1, 0, 5.0, 1), (2, 2, 10, 6.0, 0)])
    add_file(root, "b.csv", [(3, 1, 20, 7.0, 1)])
    api.apply(root, workspace=ws)
    add_file(root, "a.csv", [(1, 1, 0, 50.0, 1), (2, 2, 10, 6.0, 0)])  # a consumed file changed
    plan = {s.step.id.name: s.reason.value for s in api.plan(root, workspace=ws).steps}
    assert plan["events"] == "data changed" and plan["scored"] == "upstream changed"
    with pytest.raises(DataError, match=r"feature_group:scored@1: source 'events' file\(s\) data/a.csv changed.*--full-refresh -s scored"):
        api.apply(root, workspace=ws)
    assert len(api.read_feature_group(root, "scored", workspace=ws)) == 3  # its old rows stay published
    # New data later does not slip past the rule either.
    add_file(root, "c.csv", [(4, 2, 30, 8.0, 0)])
    with pytest.raises(DataError, match=r"data/a.csv changed"):
        api.apply(root, workspace=ws)
    again = api.apply(root, workspace=ws, full_refresh=True, select=("scored",))
    ran = reasons(again)
    assert ran["events"][0] == "full refresh" and ran["scored"] == ("full refresh", 4)
    api.apply(root, workspace=ws)  # the rest catches up
    assert_same(snapshot(root, ws), fresh(root, tmp_path / "fresh"))


def _as_recorded_before_blake3(ws: Path) -> None:
    """Make ``ws`` look written by an engine from before BLAKE3 content digests: every consumed
    file's recorded digest becomes its SHA-256 (64 hex digits, no prefix), and the digest cache
    is gone."""
    import hashlib
    import sqlite3

    con = sqlite3.connect(ws / "catalog.sqlite")
    with con:
        rows = con.execute("SELECT source, file FROM source_files").fetchall()
        assert rows
        for source, file in rows:
            legacy = hashlib.sha256((ws.parent / "inc" / file).read_bytes()).hexdigest()
            con.execute("UPDATE source_files SET digest = ? WHERE source = ? AND file = ?", [legacy, source, file])
    con.close()
    (ws / "digests.json").unlink(missing_ok=True)


def test_files_recorded_with_sha256_before_the_upgrade_still_compare_by_content(tmp_path):
    # An upgraded engine reads digests recorded as SHA-256: unchanged files stay unchanged (new
    # files beside them are an incremental ingest, not a rebuild or an append-only group's
    # "file changed" error), and a changed file is still caught.
    root = project(tmp_path / "inc")
    ws = tmp_path / "ws"
    add_file(root, "a.csv", [(1, 1, 0, 5.0, 1), (2, 2, 10, 6.0, 0)])
    api.apply(root, workspace=ws)
    _as_recorded_before_blake3(ws)
    add_file(root, "b.csv", [(3, 1, 20, 7.0, 1)])
    ran = reasons(api.apply(root, workspace=ws))
    assert ran["events"] == ("new data (incremental)", 1) and ran["scored"] == ("new data (incremental)", 1)
    assert_same(snapshot(root, ws), fresh(root, tmp_path / "fresh"))
    _as_recorded_before_blake3(ws)
    add_file(root, "a.csv", [(1, 1, 0, 50.0, 1), (2, 2, 10, 6.0, 0)])  # a consumed file changed
    plan = {s.step.id.name: s.reason.value for s in api.plan(root, workspace=ws).steps}
    assert plan["events"] == "data changed"
    with pytest.raises(DataError, match=r"source 'events' file\(s\) data/a.csv changed"):
        api.apply(root, workspace=ws)


def test_a_workspace_written_before_blake3_plans_no_changes_after_the_upgrade(tmp_path, monkeypatch):
    # A workspace an engine from before BLAKE3 wrote, whole: its consumed files' digests and the
    # source steps' fingerprints (which hash those digests) are SHA-256. After the upgrade an
    # unchanged project plans nothing (not a full re-ingest and rebuild of everything); a new file
    # is an incremental ingest; a changed one is still caught.
    from engine.compiler import fingerprint
    from engine.state import digests

    root = project(tmp_path / "inc")
    ws = tmp_path / "ws"
    add_file(root, "a.csv", [(1, 1, 0, 5.0, 1), (2, 2, 10, 6.0, 0)])
    with monkeypatch.context() as old_engine:
        old_engine.setattr(fingerprint, "_content_digest", fingerprint._sha256)
        api.apply(root, workspace=ws)
    # The upgraded engine starts without the old digest cache (another format, read as empty).
    (ws / "digests.json").unlink(missing_ok=True)
    monkeypatch.setattr(digests, "_LOADED", {})
    assert all(s.reason.value == "unchanged" for s in api.plan(root, workspace=ws).steps)
    assert api.apply(root, workspace=ws).run is None  # nothing to do
    add_file(root, "b.csv", [(3, 1, 20, 7.0, 1)])
    ran = reasons(api.apply(root, workspace=ws))
    assert ran["events"] == ("new data (incremental)", 1) and ran["scored"] == ("new data (incremental)", 1)
    assert_same(snapshot(root, ws), fresh(root, tmp_path / "fresh"))
    assert api.apply(root, workspace=ws).run is None  # nothing to do
    add_file(root, "a.csv", [(1, 1, 0, 50.0, 1), (2, 2, 10, 6.0, 0)])  # a consumed file changed
    with pytest.raises(DataError, match=r"source 'events' file\(s\) data/a.csv changed"):
        api.apply(root, workspace=ws)


def test_a_removed_file_rebuilds_non_append_groups(tmp_path):
    root = project(tmp_path / "inc")
    text = (root / "specs/inc.yaml").read_text()
    (root / "specs/inc.yaml").write_text(text.replace("    incremental: {kind: append}\n", ""))  # scored: not incremental
    ws = tmp_path / "ws"
    add_file(root, "a.csv", [(1, 1, 0, 5.0, 1)])
    add_file(root, "b.csv", [(2, 1, 20, 7.0, 1)])
    api.apply(root, workspace=ws)
    (root / "data/b.csv").unlink()
    ran = reasons(api.apply(root, workspace=ws))
    assert ran["events"] == ("data changed", 1)
    assert ran["scored"][0] == ran["rolling"][0] == ran["user_amounts"][0] == "upstream changed"
    assert_same(snapshot(root, ws), fresh(root, tmp_path / "fresh"))


def test_a_group_catching_up_after_a_source_only_apply_still_runs_incrementally(tmp_path):
    root = project(tmp_path / "inc")
    ws = tmp_path / "ws"
    add_file(root, "a.csv", [(1, 1, 0, 5.0, 1), (2, 2, 60, 6.0, 0)])
    api.apply(root, workspace=ws)
    add_file(root, "b.csv", [(3, 1, 90, 7.0, 1)])
    assert reasons(api.apply(root, workspace=ws, select=("events",))) == {"events": ("new data (incremental)", 1)}
    add_file(root, "c.csv", [(4, 2, 100, 8.0, 1)])
    ran = reasons(api.apply(root, workspace=ws))
    assert ran["events"] == ("new data (incremental)", 1)
    # Both new files' rows reach the groups: the rows after minute 90 are recomputed.
    assert ran["rolling"] == ("new data (incremental)", 2)
    assert ran["scored"] == ("new data (incremental)", 2)
    assert_same(snapshot(root, ws), fresh(root, tmp_path / "fresh"))


def test_a_late_row_fails_with_exit_4_naming_the_file_and_the_row(tmp_path):
    root = project(tmp_path / "inc")
    ws = tmp_path / "ws"
    add_file(root, "a.csv", [(1, 1, 0, 5.0, 1), (2, 2, 600, 6.0, 0)])
    api.apply(root, workspace=ws)
    add_file(root, "late.csv", [(3, 1, 300, 7.0, 1)])  # minute 300 < 600 - 120 (rolling's lookback)
    code, out, err = run_engine("apply", str(root), "--workspace", str(ws))
    assert code == 4, (out, err)
    text = " ".join((out + err).split())
    assert "a late row in source 'events' file data/late.csv: user_id=1, ts=2026-01-01 05:00:00+00:00" in text, text
    assert "on_late: rebuild" in text and "--full-refresh" in text
    # Applying again does not slip the late row in through a full rebuild.
    code, out, err = run_engine("apply", str(root), "--workspace", str(ws))
    assert code == 4 and "a late row in source 'events' file data/late.csv" in " ".join((out + err).split())
    # Nothing of the failed group was published; the ingest of the file was.
    assert len(api.read_feature_group(root, "rolling", workspace=ws)) == 2


def test_built_in_aggregations_rebuild_late_rows_unless_told_to_fail(tmp_path):
    root = project(tmp_path / "inc")
    spec = root / "specs/inc.yaml"
    spec.write_text(spec.read_text().replace("    incremental: {kind: by_time, lookback: 2h}\n", ""))  # rolling: full rebuilds
    ws = tmp_path / "ws"
    add_file(root, "a.csv", [(1, 1, 0, 5.0, 1), (2, 2, 600, 6.0, 0)])
    api.apply(root, workspace=ws)
    add_file(root, "late.csv", [(3, 1, 300, 7.0, 1)])  # 300 < 600 - 180 (the largest window, 3h)
    ran = reasons(api.apply(root, workspace=ws))
    assert ran["user_amounts"] == ("new data (incremental)", 2)  # user 1 @300, user 2 @600
    assert_same(snapshot(root, ws), fresh(root, tmp_path / "fresh"))
    spec.write_text(spec.read_text().replace("    from: events\n", "    from: events\n    on_late: fail\n"))
    assert api.plan(root, workspace=ws).has_changes is False  # on_late is a policy: it changes nothing
    add_file(root, "later.csv", [(4, 2, 100, 1.0, 1)])
    with pytest.raises(DataError, match=r"feature_group:user_amounts@1: a late row in source 'events' file data/later.csv: user_id=2"):
        api.apply(root, workspace=ws)


def test_on_late_rebuild_recomputes_the_affected_range(tmp_path):
    root = project(tmp_path / "inc", on_late="rebuild")
    ws = tmp_path / "ws"
    add_file(root, "a.csv", [(1, 1, 0, 5.0, 1), (2, 2, 600, 6.0, 0), (3, 1, 400, 4.0, 0)])
    api.apply(root, workspace=ws)
    add_file(root, "late.csv", [(4, 1, 300, 7.0, 1)])
    ran = reasons(api.apply(root, workspace=ws))
    assert ran["rolling"] == ("new data (incremental)", 3)  # user 1 @300 and @400, user 2 @600
    assert_same(snapshot(root, ws), fresh(root, tmp_path / "fresh"))


def test_full_refresh_cli_rebuilds_the_selected_groups_and_their_sources(tmp_path):
    root = project(tmp_path / "inc")
    ws = tmp_path / "ws"
    add_file(root, "a.csv", [(1, 1, 0, 5.0, 1), (2, 2, 600, 6.0, 0)])
    api.apply(root, workspace=ws)
    code, out, err = run_engine("plan", str(root), "--workspace", str(ws), "--full-refresh", "-s", "rolling")
    assert code == 0, err
    assert "source:events" in out and "(full refresh)" in out and "scored" not in out
    code, out, err = run_engine("apply", str(root), "--workspace", str(ws), "--full-refresh", "-s", "rolling")
    assert code == 0, err
    ran = dict(re.findall(r"✓ \d+/\d+ (\S+)\s+(\S.*?)\s+\d+ rows", out + err))
    assert ran == {"source:events": "full refresh", "feature_group:rolling@1": "full refresh"}, out
    assert "feature_group:scored@1" not in ran
    # Everything still equals a fresh build; the groups not refreshed catch up incrementally.
    add_file(root, "b.csv", [(3, 1, 700, 7.0, 1)])
    assert {r for r, _ in reasons(api.apply(root, workspace=ws)).values()} >= {"new data (incremental)"}
    assert_same(snapshot(root, ws), fresh(root, tmp_path / "fresh"))


def test_changing_the_incremental_kind_rebuilds_fully_and_is_not_a_breaking_change(tmp_path):
    root = project(tmp_path / "inc")
    ws = tmp_path / "ws"
    add_file(root, "a.csv", [(1, 1, 0, 5.0, 1)])
    api.apply(root, workspace=ws)
    spec = root / "specs/inc.yaml"
    spec.write_text(spec.read_text().replace("incremental: {kind: append}", "incremental: {kind: by_time, lookback: 1h}"))
    add_file(root, "b.csv", [(2, 1, 30, 5.0, 1)])
    ran = reasons(api.apply(root, workspace=ws))
    assert ran["scored"] == ("changed", 2)
    assert ran["rolling"][0] == "new data (incremental)"


@pytest.mark.parametrize(
    ("group", "extra", "message"),
    [
        ("python_fg", "    incremental: {kind: append}\n", "python feature groups are always rebuilt from their full inputs"),
        ("agg_fg", "    incremental: {kind: append}\n", "built-in aggregations are incremental by themselves"),
        ("sql_fg", "    on_late: rebuild\n", "on_late is for by_time feature groups"),
        ("sql_fg", "    incremental: {kind: by_time, lookback: 1h, time_column: nope}\n", "time column 'nope' is not a column of input 'events'"),
        ("sql_fg", "    incremental: {kind: append, lookback: 1h}\n", "lookback is for kind: by_time"),
        ("sql_fg", "    incremental: {kind: by_time}\n", "missing required key 'lookback'"),
    ],
)
def test_incremental_keys_are_checked_with_a_position(tmp_path, group, extra, message):
    from engine.errors import SpecError

    spec = textwrap.dedent(
        """
        spec_version: 1
        project: bad
        sources:
          events: {format: csv, path: data/a.csv, columns: {user_id: BIGINT, ts: TIMESTAMP, amount: DOUBLE}}
        feature_groups:
          python_fg:
            primary_key: [user_id]
            python: feats.f:run
            inputs: [events]
          agg_fg:
            primary_key: [user_id]
            event_time: ts
            from: events
            aggregations: [{column: amount, function: sum, window: 1h}]
          sql_fg:
            primary_key: [user_id]
            event_time: ts
            sql: SELECT user_id, ts, amount FROM events
        """
    ).lstrip()
    lines = spec.splitlines(keepends=True)
    at = lines.index(f"  {group}:\n") + 1
    lines.insert(at, extra)
    root = tmp_path / "bad"
    write(root, "specs/bad.yaml", "".join(lines))
    write(root, "data/a.csv", "user_id,ts,amount\n1,2026-01-01 00:00:00,1\n")
    write(root, "feats/__init__.py", "")
    write(root, "feats/f.py", "def run(df):\n    return df\n")
    with pytest.raises(SpecError) as info:
        api.validate(root)
    text = str(info.value)
    assert message in text, text
    assert f"specs/bad.yaml:{at + 1}:" in text, text


def test_the_lake_lists_appended_files_only_across_pure_appends(tmp_path):
    import pyarrow as pa

    from engine.backends.catalog import SqliteCatalog
    from engine.backends.lake import Lake
    from engine.sql.ops import Relation

    catalog = SqliteCatalog.in_memory()
    lake = Lake(tmp_path / "tables", catalog)
    t = Relation("src", "t")
    v0 = lake.write(t, pa.table({"a": [1]}))
    v1 = lake.write(t, pa.table({"a": [2]}), mode="append")
    v2 = lake.write(t, pa.table({"a": [3]}), mode="append")
    assert lake.appended_files(t, v2) == []
    first = lake.appended_files(t, v0)
    assert len(first) == 2 and set(first) == set(lake.files(t, v2)) - set(lake.files(t, v0))
    assert lake.appended_files(t, v1) == [f for f in lake.files(t, v2) if f not in lake.files(t, v1)]
    lake.write(t, pa.table({"a": [4]}))  # an overwrite
    assert lake.appended_files(t, v2) is None
    assert lake.appended_files(t, v0) is None


def test_an_append_merges_the_online_table_with_the_new_rows_and_equals_a_full_recompute(tmp_path):
    """An append to an online group updates its latest-per-key rows from the previous online rows
    plus the new rows (not from the whole history): a new row later than a user's latest replaces
    it, an earlier one does not, a new user is added; the result equals a from-scratch apply."""
    root = tmp_path / "inc"
    write(root, "specs/inc.yaml", """
        spec_version: 1
        project: inc
        sources:
          events:
            format: csv
            path: data/*.csv
            columns: {event_id: BIGINT, user_id: BIGINT, ts: TIMESTAMP, amount: DOUBLE, label: BIGINT}
        feature_groups:
          amounts:
            primary_key: [user_id]
            event_time: ts
            incremental: {kind: append}
            sql: SELECT user_id, ts, amount FROM events
    """)
    (root / "data").mkdir()
    ws = tmp_path / "ws"
    add_file(root, "a.csv", [(1, 1, 0, 5.0, 1), (2, 1, 60, 6.0, 0), (3, 2, 120, 7.0, 1)])
    api.apply(root, workspace=ws)
    add_file(root, "b.csv", [(4, 1, 90, 9.0, 1), (5, 2, 30, 1.0, 0), (6, 3, 10, 2.0, 0)])
    result = api.apply(root, workspace=ws)
    assert reasons(result)["amounts"] == ("new data (incremental)", 3)
    online = api.read_feature_group(root, "amounts", online=True, workspace=ws)
    assert sorted(zip(online.user_id, online.amount, strict=True)) == [(1, 9.0), (2, 7.0), (3, 2.0)]
    from deltalake import DeltaTable

    history = DeltaTable(ws / "tables" / "online" / "amounts__v1").history()  # newest first
    modes = [h.get("operationParameters", {}).get("mode") for h in history[:2]]
    assert modes == ["Overwrite", "Append"], history  # the new rows added to the latest rows, then reduced
    api.apply(root, workspace=tmp_path / "fresh")
    want = api.read_feature_group(root, "amounts", online=True, workspace=tmp_path / "fresh")
    pd.testing.assert_frame_equal(_sorted(online), _sorted(want), check_dtype=False)
