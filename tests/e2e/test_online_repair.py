"""I2 (issue 13, item 1): the online snapshot is derived state. An interrupted publication can
never leave the endpoint stale: every apply — one that finds "No changes." too — and `engine check`
verify that the snapshot equals the published state, and apply republishes it. Snapshot files are
hashed in the manifest and verified on load, so an edited value is never served (H7)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine import api
from engine.errors import StorageIOError
from tests.conftest import run_engine


def _online_spend(root: Path) -> dict:
    """user_spend's online rows, as the serving path loads them from the current snapshot."""
    state = api.online_state(root)
    table = state.store.tables["user_spend"]
    return {key: dict(zip(table.columns, row)) for key, row in table.rows.items()}


def _change_the_sql(root: Path) -> None:
    spec = root / "specs/shop.yaml"
    spec.write_text(spec.read_text().replace("CAST(amount AS DOUBLE) AS amount", "CAST(amount * 2 AS DOUBLE) AS amount"))


def test_a_publication_killed_mid_snapshot_is_repaired_by_the_next_no_change_apply(tiny_project: Path) -> None:
    assert run_engine("apply", str(tiny_project))[0] == 0
    before = _online_spend(tiny_project)
    _change_the_sql(tiny_project)
    rc, _, _ = run_engine("apply", str(tiny_project), env={**os.environ, "ENGINE_FAULT_AT": "mid_snapshot_publish"})
    assert rc == -9  # killed after the data was published, before CURRENT moved
    assert _online_spend(tiny_project) == before  # the endpoint still serves the old features …

    rc, out, err = run_engine("check", str(tiny_project))
    assert rc == 0 and "is stale" in err and "1 problem found." in out  # … and check says so

    rc, out, err = run_engine("apply", str(tiny_project))
    assert rc == 0 and "No changes." in out, err
    assert "online snapshot" in err and "republished" in err
    after = _online_spend(tiny_project)
    assert after != before
    offline = api.read_feature_group(tiny_project, "user_spend", online=True)
    assert {k[0]: v["amount_sum_2d"] for k, v in after.items()} == dict(zip(offline.user_id, offline.amount_sum_2d))
    rc, out, err = run_engine("check", str(tiny_project))
    assert rc == 0 and "Workspace ok." in out, err


def test_a_first_apply_killed_mid_snapshot_still_gets_an_endpoint(tiny_project: Path) -> None:
    rc, _, _ = run_engine("apply", str(tiny_project), env={**os.environ, "ENGINE_FAULT_AT": "mid_snapshot_publish"})
    assert rc == -9
    with pytest.raises(Exception, match="no online snapshot"):
        api.online_state(tiny_project)
    rc, out, err = run_engine("apply", str(tiny_project))
    assert rc == 0 and "republished" in err, err
    assert set(_online_spend(tiny_project)) == {(10,), (11,), (12,)}


def test_an_edited_snapshot_file_is_refused_reported_and_repaired(tiny_project: Path) -> None:
    assert run_engine("apply", str(tiny_project))[0] == 0
    current = (tiny_project / ".engine/online/CURRENT").read_text()
    snapshot = tiny_project / ".engine/online" / current.split('"snapshot_id": "')[1].split('"')[0]
    arrow = next(snapshot.glob("user_spend__v1.arrow"))
    data = bytearray(arrow.read_bytes())
    data[-200] ^= 0xFF  # one flipped byte inside the file
    arrow.write_bytes(bytes(data))

    with pytest.raises(StorageIOError, match="modified after publication"):
        api.online_state(tiny_project)
    rc, _, err = run_engine("check", str(tiny_project))
    assert "user_spend__v1.arrow" in err and "modified after publication" in err
    rc, _, err = run_engine("apply", str(tiny_project))
    assert rc == 0 and "republished" in err, err
    assert set(_online_spend(tiny_project)) == {(10,), (11,), (12,)}
