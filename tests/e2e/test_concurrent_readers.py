"""Readers during an apply (issue 8, RELIABILITY C1/V7): `engine show`, `engine plan` and every
API read see the last committed state while an apply is held in the middle of its publication
(the lake commits written, the catalog transaction open), and see the new state once it commits."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import api
from tests.conftest import REPO, run_engine


def _wait_for(flag: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not flag.exists():
        if proc.poll() is not None:
            raise AssertionError(f"apply ended before pausing: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError("apply did not reach the pause point")
        time.sleep(0.05)


# inside_publish: orders' lake commits are written, its catalog transaction is open (readers: the
# old 5 rows). before_snapshot: every group is committed, the online snapshot not yet (readers: 6).
@pytest.mark.parametrize(("point", "rows"), [("inside_publish", 5), ("before_snapshot", 6)])
def test_readers_see_the_last_commit_while_an_apply_is_held_mid_publication(tiny_project: Path, tmp_path: Path, point: str, rows: int):
    api.apply(tiny_project)
    before = api.read_feature_group(tiny_project, "orders")
    assert len(before) == 5
    orders = tiny_project / "data/orders.csv"
    orders.write_text(orders.read_text() + "6,11,9.0,2024-01-07 08:00:00\n")

    flag = tmp_path / "paused"
    env = {**os.environ, "ENGINE_PAUSE_AT": point, "ENGINE_PAUSE_FILE": str(flag), "PYTHONHASHSEED": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "engine", "apply", str(tiny_project)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(flag, proc)
        started = time.monotonic()
        # the API: the last committed rows, not the half-published ones, and no lock error
        during = api.read_feature_group(tiny_project, "orders")
        assert len(during) == rows
        if rows == len(before):
            assert during.equals(before)
        assert len(api.read_feature_group(tiny_project, "orders", online=True)) == rows
        assert {r["name"] for r in api.list_feature_groups(tiny_project)} == {"orders", "user_spend", "users"}
        # the CLI: show and plan answer (exit 0), while apply holds the project lock
        rc, out, err = run_engine("show", str(tiny_project), "feature_group", "orders")
        assert rc == 0, err
        assert f"{rows} rows" in out
        rc, out, err = run_engine("plan", str(tiny_project))
        assert rc == 0, err
        assert time.monotonic() - started < 60
        # a second writer is refused at once (C1)
        rc, _, err = run_engine("apply", str(tiny_project))
        assert rc == 75 and "Traceback" not in err
    finally:
        flag.unlink(missing_ok=True)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    after = api.read_feature_group(tiny_project, "orders")
    assert len(after) == 6 and 6 in set(after["order_id"])


def test_a_reader_is_not_blocked_by_a_killed_apply(tiny_project: Path):
    """G1 with readers: a run killed mid-publication leaves the last commit readable, and the next
    apply converges (the unrecorded lake commits are rolled back by the next write)."""
    api.apply(tiny_project)
    before = api.read_feature_group(tiny_project, "orders")
    orders = tiny_project / "data/orders.csv"
    orders.write_text(orders.read_text() + "6,11,9.0,2024-01-07 08:00:00\n")
    rc, _, _ = run_engine("apply", str(tiny_project), env={"ENGINE_FAULT_AT": "inside_publish"})
    assert rc == -9
    assert api.read_feature_group(tiny_project, "orders").equals(before)
    api.apply(tiny_project)
    assert len(api.read_feature_group(tiny_project, "orders")) == 6
