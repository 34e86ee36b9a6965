"""issue 11, item 1: ``as_of: exclusive`` joins — "activity before this trip". The driver
statistics are windowed over the trips themselves, so an inclusive join hands each trip the
statistics that already count it; an exclusive one the latest row strictly before it. Offline
against a brute-force oracle; online against the offline row (a request later than every row) and
at the request's own event time (documented: nothing older is kept online, so NULLs and
``missing``); bad input at validate."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from engine import api
from tests.conftest import run_engine
from tests.serving.conftest import make_project, publish
from tests.serving.test_vectors import LATER, _norm, _offline_rows, _state

INCLUSIVE = "- {feature_group: driver_stats, on: [driver_id], ttl: 30d}"
EXCLUSIVE = "- {feature_group: driver_stats, on: [driver_id], ttl: 30d, as_of: exclusive}"
TTL = pd.Timedelta("30D")


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("exclusive") / "rides")
    spec = root / "specs/rides.yaml"
    spec.write_text(spec.read_text().replace(INCLUSIVE, EXCLUSIVE))
    api.apply(root)
    publish(root)
    return root


def _oracle(spine: pd.DataFrame, stats: pd.DataFrame, *, exclusive: bool) -> pd.DataFrame:
    """Per spine row, the same driver's stats row with the largest time before (exclusive) or at
    or before (inclusive) the trip's, NULL when none or older than the ttl."""
    rows = []
    for s in spine.itertuples():
        same = stats[stats.driver_id == s.driver_id]
        earlier = same[same.requested_at < s.requested_at] if exclusive else same[same.requested_at <= s.requested_at]
        if earlier.empty:
            rows.append((None, None))
            continue
        best = earlier.loc[earlier.requested_at.idxmax()]
        rows.append((None, None) if best.requested_at < s.requested_at - TTL else (best.distance_mean_3d, best.trips_3d))
    return pd.DataFrame(rows, columns=["distance_mean_3d", "trips_3d"])


def _values(frame: pd.DataFrame, column: str) -> list:
    return [_norm(v) for v in frame[column]]


def test_offline_an_exclusive_join_sees_only_rows_strictly_before_the_trip(strict) -> None:
    view = api.read_feature_view(strict, "tips").sort_values("trip_id").reset_index(drop=True)
    spine = api.read_feature_group(strict, "trips").sort_values("trip_id").reset_index(drop=True)
    stats = api.read_feature_group(strict, "driver_stats")
    assert len(view) == len(spine)
    expected = _oracle(spine, stats, exclusive=True)
    for column in ("distance_mean_3d", "trips_3d"):
        got, want = _values(view, column), _values(expected, column)
        assert all((g is None and w is None) or (g is not None and w is not None and math.isclose(g, w)) for g, w in zip(got, want)), column
    # The difference it makes: inclusive, every trip counts itself (trips_3d >= 1); exclusive, a
    # driver's first trip has no earlier activity at all.
    inclusive = _oracle(spine, stats, exclusive=False)
    assert (inclusive["trips_3d"].dropna() >= 1).all()
    firsts = spine.groupby("driver_id")["requested_at"].transform("min") == spine["requested_at"]
    assert view.loc[firsts, "trips_3d"].isna().all()


def test_online_an_exclusive_join_matches_offline_and_never_uses_the_requests_own_event(strict) -> None:
    rng = np.random.default_rng(5)
    n = 40
    spine = pd.DataFrame({
        "trip_id": np.arange(20_000, 20_000 + n),
        "driver_id": rng.integers(1, 21, n),
        "zone": rng.choice(["north", "south", "east"], n),
        "requested_at": [LATER] * n,
        "distance_km": rng.gamma(2.0, 4.0, n).round(2),
        "tipped": 0,
        "fare": 1.0,
    })
    offline, layout = _offline_rows(strict, spine)
    state, _, _ = _state(strict)
    service = state.view("tips")
    for i, r in enumerate(spine.itertuples()):
        vec = service.vector({"driver_id": int(r.driver_id), "zone": r.zone, "distance_km": float(r.distance_km), "requested_at": LATER}, {})
        assert {k: _norm(v) for k, v in vec.values.items()} == {f: _norm(offline.iloc[i][f]) for f in layout.features}, f"row {i}"

    # At exactly the time of a driver's latest statistics row (the request's own event, already
    # ingested), offline takes the row before it; the online store holds only the latest row, so
    # the group is missing rather than a value that includes the event itself.
    stats = api.read_feature_group(strict, "driver_stats")
    latest = stats.loc[stats.groupby("driver_id")["requested_at"].idxmax()].iloc[0]
    at = pd.Timestamp(latest.requested_at)
    vec = service.vector({"driver_id": int(latest.driver_id), "zone": "north", "distance_km": 1.0, "requested_at": at}, {})
    assert "driver_stats" in vec.missing and vec.values["trips_3d"] is None
    later = service.vector({"driver_id": int(latest.driver_id), "zone": "north", "distance_km": 1.0, "requested_at": at + pd.Timedelta(microseconds=1)}, {})
    assert "driver_stats" not in later.missing and later.values["trips_3d"] == latest.trips_3d


def test_exclusive_on_a_group_without_event_time_fails_validate_on_the_key(tmp_path) -> None:
    root = make_project(tmp_path / "rides")
    spec = root / "specs/rides.yaml"
    spec.write_text(spec.read_text().replace("{feature_group: drivers, on: [driver_id], prefix: driver_}", "{feature_group: drivers, on: [driver_id], prefix: driver_, as_of: exclusive}"))
    rc, out, err = run_engine("validate", str(root))
    assert rc == 3, out + err
    line = next(i for i, text in enumerate(spec.read_text().splitlines(), 1) if "as_of: exclusive" in text)
    assert f"specs/rides.yaml:{line}:" in err and "feature_views.tips.join[0].as_of" in err.replace(".join.0.", ".join[0].")
    assert "as_of: exclusive needs event times, and feature group 'drivers' has none" in err
    spec.write_text(spec.read_text().replace("as_of: exclusive", "as_of: strict"))
    rc, out, err = run_engine("validate", str(root))
    assert rc == 3 and "as_of" in err and "exclusive" in err, out + err
