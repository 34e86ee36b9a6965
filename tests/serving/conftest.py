"""A tiny generated project applied once per session for the online serving tests: three joined
feature groups (one without event time), an on-demand function, transforms, an XGBoost and a
scikit-learn model, and an online inference job; plus a loopback server harness."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine import api
from tests.conftest import GOLDEN, write

SPEC = """
spec_version: 1
project: rides
sources:
  trips_raw: {format: csv, path: data/trips.csv}
  drivers_raw: {format: csv, path: data/drivers.csv}
  zones_raw: {format: csv, path: data/zones.csv}
feature_groups:
  trips:
    primary_key: [trip_id]
    event_time: requested_at
    online: false
    sql: SELECT trip_id, driver_id, zone, requested_at, distance_km, tipped, fare FROM trips_raw
  drivers:
    primary_key: [driver_id]
    sql: SELECT driver_id, rating, years, vehicle FROM drivers_raw
  driver_stats:
    primary_key: [driver_id]
    event_time: requested_at
    from: trips
    aggregations:
      - {column: distance_km, function: mean, window: 3d, name: distance_mean_3d}
      - {column: trip_id, function: count, window: 3d, name: trips_3d}
  zone_demand:
    primary_key: [zone]
    event_time: updated_at
    sql: SELECT zone, updated_at, demand FROM zones_raw
functions:
  hour_of_day: {python: ride_features.time:hour_of_day, inputs: [requested_at], returns: int64}
  long_trip: {python: ride_features.time:long_trip, inputs: [distance_km], returns: bool}
feature_views:
  tips:
    spine: trips
    label: tipped
    features: [distance_km]
    helpers: [fare]
    join:
      - {feature_group: drivers, on: [driver_id], prefix: driver_}
      - {feature_group: driver_stats, on: [driver_id], ttl: 30d}
      - {feature_group: zone_demand, on: [zone], prefix: zone_}
    on_demand: [hour_of_day, long_trip]
    transforms:
      distance_km: standard_scaler
      driver_vehicle: one_hot_encoder
      driver_rating: impute_mean
      driver_years: impute_median
      distance_mean_3d: impute_mean
      trips_3d: impute_median
      zone_demand: impute_mean
models:
  tips_xgb:
    feature_view: tips
    estimator: xgboost.XGBClassifier
    params: {n_estimators: 10, max_depth: 3}
    split: {by: time, test_from: "2024-02-01"}
    aliases: [production]
  tips_logreg:
    feature_view: tips
    estimator: sklearn.linear_model.LogisticRegression
    params: {max_iter: 300}
    split: {by: random, test_size: 0.25, seed: 3}
inference:
  tip_api: {mode: online, model: tips_xgb@production, keys: [driver_id, zone], request: [distance_km, requested_at]}
"""

TIME_PY = """
import pandas as pd


def hour_of_day(ts):
    if isinstance(ts, pd.Series):
        return ts.dt.hour
    return None if ts is None else pd.Timestamp(ts).hour


def long_trip(km):
    if isinstance(km, pd.Series):
        return km > 10
    return None if km is None else km > 10
"""


def _data(n: int = 300, seed: int = 0) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    drivers = pd.DataFrame({
        "driver_id": range(1, 19),  # drivers 19 and 20 drive but have no drivers row (H4)
        "rating": rng.uniform(3, 5, 18).round(2),
        "years": rng.integers(0, 10, 18),
        "vehicle": rng.choice(["sedan", "suv", "van"], 18),
    })
    start = pd.Timestamp("2024-01-01")
    trips = pd.DataFrame({
        "trip_id": range(1, n + 1),
        "driver_id": rng.integers(1, 21, n),
        "zone": rng.choice(["north", "south", "east"], n),
        "requested_at": [start + pd.Timedelta(minutes=int(m)) for m in np.sort(rng.integers(0, 60 * 24 * 50, n))],
        "distance_km": rng.gamma(2.0, 4.0, n).round(2),
    })
    trips["fare"] = (3 + trips["distance_km"] * 1.7).round(2)
    trips["tipped"] = ((trips["distance_km"] > 8) ^ (rng.random(n) < 0.2)).astype(int)
    zones = pd.DataFrame({
        "zone": ["north", "south", "east"] * 4,
        "updated_at": [start + pd.Timedelta(days=d) for d in (0, 0, 0, 10, 10, 10, 20, 20, 20, 30, 30, 30)],
        "demand": rng.uniform(0, 1, 12).round(3),
    })
    fmt = "%Y-%m-%d %H:%M:%S"
    return {
        "data/trips.csv": trips.to_csv(index=False, date_format=fmt),
        "data/drivers.csv": drivers.to_csv(index=False),
        "data/zones.csv": zones.to_csv(index=False, date_format=fmt),
    }


def make_project(root: Path) -> Path:
    write(root, "specs/rides.yaml", SPEC)
    write(root, "ride_features/__init__.py", "")
    write(root, "ride_features/time.py", TIME_PY)
    for rel, text in _data().items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def publish(root: Path, run_id: str = "test") -> Path:
    """Publish an online snapshot of ``root``'s workspace (what the runtime does after an apply)."""
    from engine.session import reading
    from engine.state.workspace import Workspace
    from engine.store.online import publish_online_snapshot

    checked = api.validate(root)
    ws = Workspace.for_project(checked.project.root)
    with reading(ws) as stores:
        return publish_online_snapshot(stores, checked.project, ws, run_id)


@pytest.fixture(scope="session")
def rides(tmp_path_factory) -> Path:
    """The applied tiny project with a published online snapshot (shared: do not modify it)."""
    root = make_project(tmp_path_factory.mktemp("serving") / "rides")
    api.apply(root)
    publish(root)
    return root


@pytest.fixture
def rides_copy(rides, tmp_path) -> Path:
    """A private copy of the applied project, for tests that re-apply or corrupt it."""
    dest = tmp_path / "rides"
    shutil.copytree(rides, dest)
    return dest


class LiveServer:
    """The real app under uvicorn on a free 127.0.0.1 port, in a thread."""

    def __init__(self, root: Path, poll_s: float = 0.2, **app_options):
        from engine.serving.http import create_app, uvicorn_server
        from engine.state.workspace import Workspace

        checked = api.validate(root)
        self.app = create_app(checked, Workspace.for_project(checked.project.root).root, poll_s=poll_s, **app_options)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn_server(self.app, host="127.0.0.1", port=self.port, log_level="critical")
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture(scope="module")
def live(rides):
    with LiveServer(rides) as server:
        yield server


def check_golden(name: str, text: str) -> None:
    """Compare with tests/golden/serving/<name>; ENGINE_UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / "serving" / name
    if os.environ.get("ENGINE_UPDATE_GOLDEN") == "1" or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"differs from {path} (ENGINE_UPDATE_GOLDEN=1 to accept)"
