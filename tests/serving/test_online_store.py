"""Online snapshots: atomic CURRENT, Arrow files equal to the online tables, pruning, look-ups."""

from __future__ import annotations

import json

from engine import api
from engine.store.online import KEEP_SNAPSHOTS, online_dir, read_current
from engine.store.online import OnlineSnapshot as OnlineStore
from engine.state.workspace import Workspace
from tests.serving.conftest import publish


def test_snapshot_holds_latest_row_per_key(rides):
    """The snapshot's rows equal api.read_feature_group(online=True) for every online group."""
    ws = Workspace.for_project(api.validate(rides).project.root)
    snapshot_id, directory = read_current(online_dir(ws))
    store = OnlineStore.load(directory)
    assert store.snapshot_id == snapshot_id
    assert set(store.tables) == {"drivers", "driver_stats", "zone_demand"}  # trips is online: false
    assert store.feature_group("trips")["file"] is None and "fare" in store.feature_group("trips")["columns"]
    for name, table in store.tables.items():
        frame = api.read_feature_group(rides, name, online=True)
        assert len(table.rows) == len(frame)
        for rec in frame.to_dict("records"):
            key = tuple(rec[k] for k in table.primary_key)
            got = store.lookup(name, key)
            assert got is not None
            for col in table.columns:
                a, b = got[col], rec[col]
                assert (a == b) or (a is None and b != b) or str(a) == str(b), (name, key, col, a, b)
    assert store.lookup("drivers", (999,)) is None
    assert store.lookup("nope", (1,)) is None
    manifest = store.manifest
    assert manifest["models"]["tips_xgb"]["aliases"] == {"production": 1}
    assert manifest["models"]["tips_xgb"]["versions"][0]["path"] == "models/tips_xgb/1"


def test_publish_flips_current_and_prunes(rides_copy):
    """Each publish writes a complete new directory, then CURRENT names it; only the last 3 stay."""
    ws = Workspace.for_project(api.validate(rides_copy).project.root)
    root = online_dir(ws)
    made = [publish(rides_copy, f"run{i}") for i in range(5)]
    assert json.loads((root / "CURRENT").read_text())["snapshot_id"] == made[-1].name
    remaining = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert remaining == sorted(p.name for p in made[-KEEP_SNAPSHOTS:])
    assert not list(root.glob(".tmp-*"))
