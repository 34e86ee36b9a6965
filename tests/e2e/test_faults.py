"""Data faults (F6–F8), resource bombs at apply (Q8), and crashes at named steps (G1, G2, C4):
nothing partial is ever published, and a rerun converges to the uninterrupted result (I7)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine import api
from engine.errors import DataError, StorageIOError
from tests.conftest import REPO, run_engine, write


def _tables(root: Path, workspace: Path | None = None) -> dict[str, pd.DataFrame]:
    return {name: api.read_feature_group(root, name, workspace=workspace) for name in ("orders", "user_spend", "users")}


def test_bad_value_after_the_sniff_sample_is_a_data_error_naming_the_line(tiny_project: Path):
    """F6: a string deep in an integer column (past any sampling) stops the run with exit 4."""
    rows = "\n".join(f"{i},10,1.0,2024-01-01 09:00:00" for i in range(1, 30_002))
    (tiny_project / "data/orders.csv").write_text(f"order_id,user_id,amount,ordered_at\n{rows}\n30002,abc,1.0,2024-01-01 09:00:00\n")
    rc, _, err = run_engine("apply", str(tiny_project))
    assert rc == 4, err
    assert "source:orders_raw: reading 'data/orders.csv' failed" in err
    assert not (tiny_project / ".engine/catalog.sqlite").exists() or "orders" not in json.dumps(api.list_feature_groups(tiny_project))


def test_multi_file_source_with_a_drifting_column_is_refused(tmp_path: Path):
    """F7: never a silently dropped column."""
    root = tmp_path / "p"
    write(root, "specs/s.yaml", """
        spec_version: 1
        project: p
        sources:
          events_raw: {format: csv, path: "data/events_*.csv"}
        feature_groups:
          events: {primary_key: [id], sql: SELECT * FROM events_raw}
        """)
    write(root, "data/events_1.csv", "id,a\n1,2\n")
    write(root, "data/events_2.csv", "id,a,b\n2,3,4\n")
    with pytest.raises(DataError, match=r"file 'events_2.csv' does not match 'events_1.csv': extra columns \['b'\]"):
        api.apply(root)


@pytest.mark.parametrize("content", ["", "order_id,user_id,amount,ordered_at\n"], ids=["empty", "header_only"])
def test_empty_source_is_a_data_error(tiny_project: Path, content: str):
    """F8."""
    (tiny_project / "data/orders.csv").write_text(content)
    rc, _, err = run_engine("apply", str(tiny_project))
    assert rc == 4, err
    assert "source:orders_raw" in err and ("has no rows" in err or "failed" in err)


def test_runaway_sql_times_out_with_exit_5_and_publishes_nothing(tiny_project: Path):
    """Q8: a cross join bomb is interrupted; the previous version stays readable."""
    api.apply(tiny_project)
    before = api.read_feature_group(tiny_project, "orders")
    spec = tiny_project / "specs/shop.yaml"
    spec.write_text(spec.read_text().replace(
        "FROM orders_raw\n",
        "FROM orders_raw WHERE (SELECT count(*) FROM range(100000000) a, range(100000000) b) > 0 OR true\n",
    ))
    rc, _, err = run_engine("apply", str(tiny_project), "--sql-timeout", "1")
    assert rc == 5, err
    assert "timed out after 1s" in err
    pd.testing.assert_frame_equal(api.read_feature_group(tiny_project, "orders"), before)


FAULT_POINTS = ["after_plan", "mid_ingest", "after_staging", "inside_publish"]


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_sigkill_at_a_named_step_publishes_nothing_partial_and_rerun_converges(tiny_project: Path, tmp_path: Path, point: str):
    """G1: the process kills itself at ``point``; tables are all-old or all-new per step, the
    lock is released by the kernel (C4), the next run says the previous one was interrupted and
    converges to exactly what an uninterrupted run builds (I7)."""
    reference_ws = tmp_path / "reference"
    api.apply(tiny_project, workspace=reference_ws)
    expected = _tables(tiny_project, reference_ws)

    rc, _, _ = run_engine("apply", str(tiny_project), env={"ENGINE_FAULT_AT": point})
    assert rc == -signal.SIGKILL
    ws = tiny_project / ".engine"
    if (ws / "engine.duckdb").exists():
        published = {r["name"] for r in api.list_feature_groups(tiny_project)}
        for name in published:  # whatever was published is complete
            pd.testing.assert_frame_equal(api.read_feature_group(tiny_project, name), expected[name])
    rc, out, err = run_engine("apply", str(tiny_project), "--format", "json")
    assert rc == 0, err
    result = json.loads(out)
    if point != "after_plan" or (ws / "engine.duckdb").exists():
        assert any("interrupted" in n for n in result["notices"]) or point == "after_plan"
    for name, frame in _tables(tiny_project).items():
        pd.testing.assert_frame_equal(frame, expected[name])
    rc, out, _ = run_engine("apply", str(tiny_project))
    assert rc == 0 and out.strip() == "No changes."


def test_random_sigkills_never_leave_a_partial_state(tiny_project: Path, tmp_path: Path):
    """G2 (bounded): kill the CLI at seeded random moments of an apply, then check and converge."""
    import random
    import time

    reference_ws = tmp_path / "reference"
    api.apply(tiny_project, workspace=reference_ws)
    expected = _tables(tiny_project, reference_ws)
    rng = random.Random(7)
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-m", "engine", "apply", str(tiny_project), "--force"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.5))
        proc.kill()
        proc.wait(timeout=30)
        if (tiny_project / ".engine/engine.duckdb").exists():
            for r in api.list_feature_groups(tiny_project):
                pd.testing.assert_frame_equal(api.read_feature_group(tiny_project, r["name"]), expected[r["name"]])
    api.apply(tiny_project)
    for name, frame in _tables(tiny_project).items():
        pd.testing.assert_frame_equal(frame, expected[name])


def test_disk_full_exits_74_and_keeps_the_previous_state(tiny_project: Path):
    """G3: the child may not grow files past a limit (RLIMIT_FSIZE, SIGXFSZ ignored)."""
    import resource

    api.apply(tiny_project)
    before = _tables(tiny_project)
    ws = tiny_project / ".engine"
    limit = max(p.stat().st_size for p in ws.rglob("*") if p.is_file()) + (64 << 10)  # no file may grow past

    def cap():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    rows = "\n".join(f"{i},10,1.0,2024-01-01 09:00:00" for i in range(6, 200_000))
    with open(tiny_project / "data/orders.csv", "a") as fh:
        fh.write(rows + "\n")
    proc = subprocess.run([sys.executable, "-m", "engine", "apply", str(tiny_project)], cwd=REPO, capture_output=True, text=True, preexec_fn=cap, timeout=120)
    assert proc.returncode == 74, proc.stderr
    assert "Traceback" not in proc.stderr
    for name, frame in _tables(tiny_project).items():
        pd.testing.assert_frame_equal(frame, before[name])
    api.apply(tiny_project)  # space freed: the rerun succeeds
    assert len(api.read_feature_group(tiny_project, "orders")) == 199_999


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_terminate_or_interrupt_rolls_back_and_exits_130(tiny_project: Path, sig):
    """G7 (signals): a stopped apply exits 130, publishes nothing partial, and the rerun converges."""
    import time

    api.apply(tiny_project)
    before = _tables(tiny_project)
    spec = tiny_project / "specs/shop.yaml"
    spec.write_text(spec.read_text().replace(
        "FROM orders_raw\n",
        "FROM orders_raw WHERE (SELECT count(*) FROM range(100000000) a, range(100000000) b) > 0 OR true\n",
    ))
    proc = subprocess.Popen([sys.executable, "-m", "engine", "apply", str(tiny_project)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()  # never leave a runaway query behind if the assertion below fails
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    for name, frame in _tables(tiny_project).items():
        pd.testing.assert_frame_equal(frame, before[name])


@pytest.mark.parametrize("policy", ["reject", "nullify", "allow"])
def test_nan_and_infinity_follow_the_non_finite_policy(tiny_project: Path, policy: str):
    """F5: NaN/inf in a float feature stop the write by default (exit 4, column and count named)."""
    spec = tiny_project / "specs/shop.yaml"
    text = spec.read_text().replace(
        "CAST(amount AS DOUBLE) AS amount, ordered_at",
        "CASE WHEN order_id = 2 THEN 'nan'::DOUBLE WHEN order_id = 3 THEN 'inf'::DOUBLE ELSE CAST(amount AS DOUBLE) END AS amount, ordered_at",
    )
    text = text.replace("      - {column: amount, between: [0, 1000]}\n", "")
    if policy != "reject":
        text = text.replace("    event_time: ordered_at\n    sql:", f"    event_time: ordered_at\n    non_finite: {policy}\n    sql:")
    spec.write_text(text)
    if policy == "reject":
        rc, _, err = run_engine("apply", str(tiny_project), "--select", "orders")
        assert rc == 4, err
        assert "feature_group:orders@1: NaN or infinite values in amount (2); nothing published" in err
        return
    api.apply(tiny_project, select=("orders",))
    amounts = api.read_feature_group(tiny_project, "orders").set_index("order_id")["amount"]
    if policy == "nullify":
        assert amounts.loc[2] is None or pd.isna(amounts.loc[2]) and pd.isna(amounts.loc[3])
        assert amounts.isna().sum() == 2
    else:
        assert np.isnan(amounts.loc[2]) and np.isinf(amounts.loc[3])


def test_a_killed_publication_is_invisible_and_recover_restores_the_recorded_commits(tiny_project: Path, tmp_path: Path):
    """G1/G7: a run killed between its lake commits and the catalog leaves Delta commits nothing
    records. Readers never see them; `engine recover` restores every table to its recorded commit
    (reporting which), and a rerun converges to the uninterrupted result."""
    reference = tmp_path / "reference"
    api.apply(tiny_project, workspace=reference)
    expected = _tables(tiny_project, reference)
    api.apply(tiny_project)
    orders = tiny_project / "data/orders.csv"
    orders.write_text(orders.read_text() + "6,11,9.0,2024-01-07 08:00:00\n")
    rc, _, _ = run_engine("apply", str(tiny_project), env={"ENGINE_FAULT_AT": "inside_publish"})
    assert rc == -signal.SIGKILL
    for name, frame in _tables(tiny_project).items():
        pd.testing.assert_frame_equal(frame, expected[name])
    rc, out, err = run_engine("recover", str(tiny_project))
    assert rc == 0, err
    assert "Restored 1 table(s) to their recorded commit: \"offline\".\"orders__v1\"" in out
    rc, out, err = run_engine("recover", str(tiny_project))
    assert rc == 0 and "consistent" in out, err
    orders.write_text(orders.read_text().rsplit("6,11", 1)[0])
    rc, _, err = run_engine("apply", str(tiny_project))
    assert rc == 0, err
    for name, frame in _tables(tiny_project).items():
        pd.testing.assert_frame_equal(frame, expected[name])


@pytest.mark.parametrize("damage", ["garbled_log", "foreign_folder"])
def test_a_damaged_or_foreign_table_exits_74_naming_it_and_loses_nothing(tiny_project: Path, damage: str):
    """Issue 8, bad input: a table folder whose Delta log is garbled, or that another tool replaced,
    stops reads and applies with exit 74 naming the path and a hint; nothing is deleted, and once
    the folder is put back everything reads as before."""
    import shutil

    api.apply(tiny_project)
    before = _tables(tiny_project)
    table = tiny_project / ".engine/tables/offline/orders__v1"
    backup = tiny_project.parent / "orders_backup"
    shutil.copytree(table, backup)
    if damage == "garbled_log":
        log = next((table / "_delta_log").glob("*.json"))
        log.write_bytes(b"\x00not json\xff" * 10)
    else:
        shutil.rmtree(table)
        table.mkdir()
        (table / "data.csv").write_text("a,b\n1,2\n")
    files = sorted(p.name for p in table.rglob("*"))
    with pytest.raises(StorageIOError, match=str(table)):
        api.read_feature_group(tiny_project, "orders")
    (tiny_project / "data/orders.csv").write_text(ORDERS_CSV_PLUS)
    rc, _, err = run_engine("apply", str(tiny_project))
    assert rc == 74, err
    assert str(table) in err and "Traceback" not in err
    assert sorted(p.name for p in table.rglob("*")) == files  # nothing deleted
    rc, out, err = run_engine("check", str(tiny_project))
    assert str(table) in out + err
    shutil.rmtree(table)
    shutil.copytree(backup, table)
    assert api.read_feature_group(tiny_project, "orders").equals(before["orders"])


ORDERS_CSV_PLUS = "order_id,user_id,amount,ordered_at\n1,10,5.0,2024-01-01 09:00:00\n7,12,2.0,2024-01-08 09:00:00\n"


@pytest.mark.parametrize("max_bad", [5, 1])
def test_quarantine_sets_bad_rows_aside_up_to_a_limit(tiny_project: Path, max_bad: int):
    """F6 with on_bad_rows: quarantine: unreadable rows land in the rejected rows and the run
    succeeds, unless there are more than max_bad_rows (exit 4, nothing published)."""
    with open(tiny_project / "data/orders.csv", "a") as fh:
        fh.write("6,abc,1.0,2024-01-07 08:00:00\n7,11,2.0,2024-01-07 09:00:00\n8,12,xyz,2024-01-07 10:00:00\n")
    spec = tiny_project / "specs/shop.yaml"
    spec.write_text(spec.read_text().replace(
        "orders_raw: {format: csv, path: data/orders.csv, timezone: America/New_York}",
        "orders_raw: {format: csv, path: data/orders.csv, timezone: America/New_York, "
        f"columns: {{order_id: BIGINT, user_id: BIGINT, amount: DOUBLE}}, on_bad_rows: quarantine, max_bad_rows: {max_bad}}}",
    ))
    rc, _, err = run_engine("apply", str(tiny_project))
    if max_bad == 1:
        assert rc == 4, err
        assert "2 rows could not be read (more than max_bad_rows 1); first: orders.csv line 7 column user_id" in err
        return
    assert rc == 0, err
    orders = api.read_feature_group(tiny_project, "orders")
    assert sorted(orders["order_id"]) == [1, 2, 3, 4, 5, 7]
    rejects = api.read_rejects(tiny_project, "orders_raw")
    assert sorted(rejects["line"]) == [7, 9]
    assert set(rejects["column_name"]) == {"user_id", "amount"}
    assert rejects["csv_line"].str.contains("abc|xyz").all()
