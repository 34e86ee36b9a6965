"""OnlineStore contract: publish a snapshot of the stores, open it, look rows up; re-publication
is atomic and an open reader keeps its snapshot (RELIABILITY C2, I2, G4). The stores are opened the
way an apply opens them, through ``engine.session.writing`` on a workspace in ``tmp_path``.
"""

from __future__ import annotations

import dataclasses
import errno

import pandas as pd
import pytest

from engine.errors import StorageIOError, UsageError
from engine.session import writing
from engine.state import metadata
from engine.store.online import OnlineStore
from tests.contract.conftest import orders, put, staging, ts


@pytest.fixture
def fg(shop):
    return shop.project.feature_groups["orders"]


def apply(workspace, shop, online_store, fg, *batches, run: str = "run-1", stores_hook=None) -> str:
    """Publish ``batches`` of orders to the offline store, then a snapshot; return its id."""
    with writing(workspace) as stores:
        stores.backend.ensure_schemas()  # what the runtime does before the first publish
        metadata.ensure_schema(stores.backend.catalog)
        for number, batch in enumerate(batches):
            staged = staging(f"orders_{run}_{number}".replace("-", "_"))
            put(stores.backend, staged, orders(*batch), mode="replace")
            stores.offline.publish(fg, staged, run_id=run, fingerprint=run, fitted={})
        if stores_hook is not None:
            stores = stores_hook(stores)
        return online_store.publish(stores, shop.project, run)


HISTORY = [(1, 10, 5.0, 0), (1, 10, 6.0, 60), (2, 11, 7.5, 30), (3, 12, 1.0, 0)]


def _value(snapshot, key: int):
    row = snapshot.lookup("orders", (key,))
    return None if row is None else (row["user_id"], row["amount"], pd.Timestamp(row["ordered_at"]))


def test_nothing_is_current_before_the_first_publication(online_store) -> None:
    assert isinstance(online_store, OnlineStore)
    assert online_store.current() is None
    with pytest.raises(UsageError):
        online_store.open()


def test_lookup_returns_the_latest_row_per_key_and_none_for_unknown_keys(workspace, shop, online_store, fg) -> None:
    snapshot_id = apply(workspace, shop, online_store, fg, HISTORY)
    assert online_store.current() == snapshot_id
    snapshot = online_store.open()
    assert snapshot.snapshot_id == snapshot_id
    assert _value(snapshot, 1) == (10, 6.0, pd.Timestamp(ts(60)))
    assert _value(snapshot, 2) == (11, 7.5, pd.Timestamp(ts(30)))
    assert _value(snapshot, 3) == (12, 1.0, pd.Timestamp(ts(0)))
    assert snapshot.lookup("orders", (4,)) is None
    assert snapshot.lookup("no_such_group", (1,)) is None
    assert snapshot.feature_group("orders")["primary_key"] == ["order_id"]


def test_lookup_equals_the_offline_stores_online_rows(workspace, shop, online_store, fg) -> None:
    apply(workspace, shop, online_store, fg, HISTORY, [(2, 11, 8.0, 30), (4, 13, 2.0, 5)])
    snapshot = online_store.open()
    with writing(workspace) as stores:
        online = stores.offline.read("orders", online=True)
    assert len(online) == 2  # the second batch replaced the first (DESIGN §3)
    for rec in online.to_dict("records"):
        assert _value(snapshot, rec["order_id"]) == (rec["user_id"], rec["amount"], rec["ordered_at"])


def test_C2_republishing_switches_current_atomically_and_old_readers_keep_their_snapshot(workspace, shop, online_store, fg) -> None:
    first = apply(workspace, shop, online_store, fg, HISTORY)
    old_reader = online_store.open()
    second = apply(workspace, shop, online_store, fg, [(1, 10, 99.0, 120), (5, 14, 3.0, 0)], run="run-2")
    assert second != first and online_store.current() == second
    new_reader = online_store.open()
    assert new_reader.snapshot_id == second
    assert _value(new_reader, 1) == (10, 99.0, pd.Timestamp(ts(120))) and _value(new_reader, 5) is not None
    assert _value(old_reader, 1) == (10, 6.0, pd.Timestamp(ts(60))) and _value(old_reader, 5) is None
    for n in range(3, 7):  # many later publications (and whatever clean-up they do)
        apply(workspace, shop, online_store, fg, run=f"run-{n}")
    assert old_reader.snapshot_id == first and _value(old_reader, 1) == (10, 6.0, pd.Timestamp(ts(60)))
    assert _value(online_store.open(), 1) == (10, 99.0, pd.Timestamp(ts(120)))


class _BrokenRegistry:
    """A registry whose index cannot be read (as on an I/O error while snapshotting)."""

    def index(self):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_I2_G4_a_failed_publication_leaves_the_current_snapshot_in_place(workspace, shop, online_store, fg) -> None:
    first = apply(workspace, shop, online_store, fg, HISTORY)
    broken = lambda stores: dataclasses.replace(stores, registry=_BrokenRegistry())  # noqa: E731
    with pytest.raises(StorageIOError):
        apply(workspace, shop, online_store, fg, [(1, 10, 99.0, 120)], run="run-2", stores_hook=broken)
    assert online_store.current() == first
    assert _value(online_store.open(), 1) == (10, 6.0, pd.Timestamp(ts(60)))
    third = apply(workspace, shop, online_store, fg, run="run-3")
    assert online_store.current() == third != first
    assert _value(online_store.open(), 1) == (10, 99.0, pd.Timestamp(ts(120)))  # the offline publish of run-2 committed


def test_offline_only_groups_are_described_but_not_served(workspace, shop, online_store, fg) -> None:
    apply(workspace, shop, online_store, dataclasses.replace(fg, online=False), HISTORY)
    snapshot = online_store.open()
    assert snapshot.lookup("orders", (1,)) is None
    assert snapshot.feature_group("orders") is not None and snapshot.feature_group("orders")["online"] is False
