"""OfflineStore contract: publish, read back, upsert, latest-per-key online table, breaking
changes and atomic publish (DESIGN §3 Versions; RELIABILITY F9, F10, I1, I2). Runs once per
offline-store implementation per backend. Feature groups come from the tiny checked project.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pandas as pd
import pytest

from engine.errors import PlanError, UsageError
from engine.store.offline import OfflineStore
from tests.contract.conftest import ORDERS_TYPES, arrow, orders, put, staging, ts


class Boom(Exception):
    pass


@pytest.fixture
def fg(shop):
    """``feature_group:orders@1``: primary key order_id, event time ordered_at, online."""
    return shop.project.feature_groups["orders"]


def publish(store, backend, fg, data, *, run: str = "run-1", fingerprint: str = "fp-1", **kwargs):
    staged = staging(f"{fg.name}__{run}".replace("-", "_"))
    put(backend, staged, data, mode="replace")
    return store.publish(fg, staged, run_id=run, fingerprint=fingerprint, fitted={"note": run}, **kwargs)


def records(frame: pd.DataFrame) -> list[tuple]:
    """A frame's rows as tuples of Python values (timestamps as aware datetimes, NaN as None)."""
    out = []
    for row in frame.itertuples(index=False):
        out.append(tuple(v.to_pydatetime() if isinstance(v, pd.Timestamp) else (None if v is None or v != v else v) for v in row))
    return out


FIRST = [(1, 10, 5.0, 0), (2, 10, 7.5, 3600), (3, 11, 3.0, 7200), (4, 12, 1.0, 86_400)]


def _expected(data: list[tuple]) -> list[tuple]:
    return sorted((o, u, a, ts(s)) for o, u, a, s in data)


def test_publish_then_read_back_every_way(offline_store, backend, fg) -> None:
    assert isinstance(offline_store, OfflineStore)
    assert offline_store.version(fg.name) is None and offline_store.versions() == [] and offline_store.all_versions() == []
    returned = publish(offline_store, backend, fg, orders(*FIRST))
    stored = offline_store.version(fg.name)
    assert stored == offline_store.version(fg.name, 1) == offline_store.all_versions()[0]
    assert dataclasses.replace(stored, published_at="") == dataclasses.replace(returned, published_at="")
    assert (stored.name, stored.version, stored.primary_key, stored.event_time) == ("orders", 1, ("order_id",), "ordered_at")
    assert (stored.row_count, stored.fingerprint, stored.run_id, stored.fitted) == (4, "fp-1", "run-1", {"note": "run-1"})
    assert list(stored.columns) == list(ORDERS_TYPES) and stored.published_at
    assert offline_store.versions() == [("orders", 1, 4, stored.published_at)]
    assert offline_store.version(fg.name, 2) is None
    relation = offline_store.relation(fg.name, 1)
    assert backend.exists(relation) and backend.count(relation) == 4
    assert records(offline_store.read(fg.name)) == _expected(FIRST)
    assert records(offline_store.read(fg.name, 1, online=True)) == _expected(FIRST)


def test_reading_an_unpublished_group_is_a_usage_error(offline_store, backend, fg) -> None:
    with pytest.raises(UsageError, match="has not been published"):
        offline_store.read("orders")
    publish(offline_store, backend, dataclasses.replace(fg, online=False), orders(*FIRST))
    with pytest.raises(UsageError, match="no online table"):
        offline_store.read("orders", online=True)
    with pytest.raises(UsageError):
        offline_store.read("orders", 2)


def test_published_version_carries_statistics(offline_store, backend, fg) -> None:
    stored = publish(offline_store, backend, fg, orders(*FIRST, (5, 12, 2.0, 90_000)))
    stats = offline_store.version(fg.name).stats
    assert set(stats) == set(ORDERS_TYPES)
    assert (stats["amount"]["count"], stats["amount"]["min"], stats["amount"]["max"]) == (5, 1.0, 7.5)
    assert stats["order_id"]["nulls"] == 0 and stats == stored.stats


def test_republishing_replaces_the_rows(offline_store, backend, fg) -> None:
    """DESIGN §3: a (non-incremental) group's new commit replaces its rows, so the table equals
    what the sources yield now: a row that left the source leaves the table (issue 8)."""
    publish(offline_store, backend, fg, orders(*FIRST))
    again = [(2, 10, 99.0, 3600), (3, 11, 4.0, 10_800), (5, 13, 6.0, 0)]
    second = publish(offline_store, backend, fg, orders(*again), run="run-2", fingerprint="fp-2")
    assert records(offline_store.read(fg.name)) == _expected(again)
    assert second.row_count == offline_store.version(fg.name).row_count == 3
    assert offline_store.version(fg.name).run_id == "run-2"
    assert [v[:3] for v in offline_store.versions()] == [("orders", 1, 3)]


def test_every_commit_stays_readable_as_of_its_number_or_time(offline_store, backend, fg, backend_impl) -> None:
    """Time travel: ``read(as_of=commit)`` or ``as_of=time`` returns the rows as they were."""
    publish(offline_store, backend, fg, orders(*FIRST))
    again = [(2, 10, 99.0, 3600)]
    publish(offline_store, backend, fg, orders(*again), run="run-2")
    commits = offline_store.commits(fg.name)
    if not backend_impl.persistent:
        assert commits == []
        with pytest.raises(UsageError, match="keeps no history"):
            offline_store.read(fg.name, as_of=0)
        return
    assert len(commits) == 2 and commits[0].version < commits[1].version
    first, latest = commits
    assert records(offline_store.read(fg.name, as_of=first.version)) == _expected(FIRST)
    assert records(offline_store.read(fg.name, as_of=latest.version)) == _expected(again)
    assert records(offline_store.read(fg.name, as_of=first.committed_at)) == _expected(FIRST)
    assert records(offline_store.read(fg.name, as_of=latest.committed_at.isoformat())) == _expected(again)
    assert records(offline_store.read(fg.name)) == _expected(again)
    with pytest.raises(UsageError, match="did not exist at"):
        offline_store.read(fg.name, as_of=first.committed_at - timedelta(days=1))
    with pytest.raises(UsageError, match="has no commit 99"):
        offline_store.read(fg.name, as_of=99)


def test_online_table_is_the_latest_row_per_key(offline_store, backend, fg) -> None:
    history = [(1, 10, 1.0, 0), (1, 10, 2.0, 50), (1, 11, 3.0, 25), (2, 12, 4.0, 10), (3, 13, 5.0, 99), (3, 13, 6.0, 98)]
    publish(offline_store, backend, fg, orders(*history))
    frame = pd.DataFrame(history, columns=["order_id", "user_id", "amount", "s"])
    latest = frame.sort_values("s", kind="stable").groupby("order_id").tail(1)
    expected = sorted((o, u, a, ts(s)) for o, u, a, s in latest.itertuples(index=False))
    assert records(offline_store.read(fg.name, online=True)) == expected
    assert len(records(offline_store.read(fg.name))) == len(history)


def test_an_append_merges_the_online_table_and_equals_the_latest_over_the_whole_history(offline_store, backend, fg) -> None:
    """``publish_append`` updates the online rows from the previous latest rows plus the new rows;
    oracle: the latest per key over every row ever published (pandas)."""
    first = [(1, 10, 1.0, 50), (1, 10, 2.0, 0), (2, 12, 4.0, 10)]
    added = [(1, 10, 3.0, 70), (1, 11, 9.0, 20), (2, 12, 5.0, 5), (7, 13, 6.0, 1)]  # later, earlier, earlier, new key
    publish(offline_store, backend, fg, orders(*first))
    staged = staging("orders__added")
    put(backend, staged, orders(*added), mode="replace")
    stored = offline_store.publish_append(fg, staged, run_id="run-2", fingerprint="fp-2", fitted={})
    frame = pd.DataFrame(first + added, columns=["order_id", "user_id", "amount", "s"])
    latest = frame.sort_values("s", kind="stable").groupby("order_id").tail(1)
    assert records(offline_store.read(fg.name, online=True)) == sorted((o, u, a, ts(s)) for o, u, a, s in latest.itertuples(index=False))
    assert len(records(offline_store.read(fg.name))) == stored.row_count == len(first) + len(added)


def test_F9_adding_a_column_is_not_breaking(offline_store, backend, fg) -> None:
    publish(offline_store, backend, fg, orders(*FIRST))
    wider = orders((6, 14, 8.0, 0)).append_column("channel", arrow({"channel": ["web"]}).column(0))
    publish(offline_store, backend, fg, wider, run="run-2")
    assert list(offline_store.version(fg.name).columns) == [*ORDERS_TYPES, "channel"]
    channels = {r[0]: r[-1] for r in records(offline_store.read(fg.name))}
    assert channels == {6: "web"}


def _retyped_amount():
    data = orders(*FIRST)
    return data.set_column(data.column_names.index("amount"), "amount", arrow({"amount": ["5.0"] * 4}).column(0))


BREAKING = {
    "column removed": lambda fg: (fg, orders(*FIRST).drop_columns(["user_id"])),
    "column retyped": lambda fg: (fg, _retyped_amount()),
    "primary key changed": lambda fg: (dataclasses.replace(fg, primary_key=("user_id",)), orders(*FIRST)),
    "event time dropped": lambda fg: (dataclasses.replace(fg, event_time=None), orders(*FIRST)),
}


@pytest.mark.parametrize("change", sorted(BREAKING))
def test_F10_breaking_change_without_a_version_bump_is_a_plan_error(offline_store, backend, fg, change) -> None:
    """F10: refused before anything is written; the stored version is untouched (I2)."""
    publish(offline_store, backend, fg, orders(*FIRST))
    before = (offline_store.version(fg.name), records(offline_store.read(fg.name)))
    changed, data = BREAKING[change](fg)
    with pytest.raises(PlanError, match="breaking change"):
        publish(offline_store, backend, changed, data, run="run-2")
    assert (offline_store.version(fg.name), records(offline_store.read(fg.name))) == before


def test_F10_a_version_bump_publishes_beside_the_old_version(offline_store, backend, fg) -> None:
    publish(offline_store, backend, fg, orders(*FIRST))
    bumped = dataclasses.replace(fg, version=2, primary_key=("user_id",))
    publish(offline_store, backend, bumped, orders((1, 10, 1.0, 0)), run="run-2")
    assert offline_store.version(fg.name).version == 2
    assert records(offline_store.read(fg.name, 1)) == _expected(FIRST)
    assert records(offline_store.read(fg.name)) == [(1, 10, 1.0, ts(0))]
    assert [(v.name, v.version) for v in offline_store.all_versions()] == [("orders", 1), ("orders", 2)]


def _raise_inside(point: str) -> None:
    raise Boom(point)


def test_I1_I2_a_failure_inside_publish_leaves_the_previous_version_unchanged(offline_store, backend, fg) -> None:
    publish(offline_store, backend, fg, orders(*FIRST))
    before = (
        offline_store.version(fg.name),
        offline_store.versions(),
        records(offline_store.read(fg.name)),
        records(offline_store.read(fg.name, online=True)),
    )
    with pytest.raises(Boom):
        publish(offline_store, backend, fg, orders((2, 10, 99.0, 3600), (9, 9, 9.0, 0)), run="run-2", fault_point=_raise_inside)
    after = (
        offline_store.version(fg.name),
        offline_store.versions(),
        records(offline_store.read(fg.name)),
        records(offline_store.read(fg.name, online=True)),
    )
    assert after == before
    # and the store still publishes afterwards
    publish(offline_store, backend, fg, orders((9, 9, 9.0, 0)), run="run-3")
    assert offline_store.version(fg.name).row_count == 1


def test_I1_a_failed_first_publish_leaves_nothing(offline_store, backend, fg) -> None:
    with pytest.raises(Boom):
        publish(offline_store, backend, fg, orders(*FIRST), fault_point=_raise_inside)
    assert offline_store.version(fg.name) is None and offline_store.all_versions() == []
    assert not backend.exists(offline_store.relation(fg.name, 1))


def test_published_times_are_utc(offline_store, backend, fg) -> None:
    publish(offline_store, backend, fg, orders(*FIRST))
    times = [r[3] for r in records(offline_store.read(fg.name))]
    assert all(isinstance(t, datetime) and t.utcoffset().total_seconds() == 0 for t in times)
