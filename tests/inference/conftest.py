"""A small generated project for the inference tests, and a real ScoringContext to score with.

Rides: a spine feature group ``trips`` (event time ``requested_at``, label ``tipped``), a feature
group with an event time (``driver_events``), one without (``drivers``), an on-demand function
(``hour_of_day``), a feature view with transforms, a tiny XGBoost model and a tiny scikit-learn
LogisticRegression. Each test module builds its own copy once (``api.apply`` is the slow part).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from engine import api
from engine.compiler.semantics import CheckedProject
from tests.conftest import write

if TYPE_CHECKING:
    from engine.sql.ops import Relation

MODELS = ("tips_xgb", "tips_logreg")

SPEC = """
spec_version: 1
project: rides
sources:
  trips_raw: {format: csv, path: data/trips.csv}
  drivers_raw: {format: csv, path: data/drivers.csv}
  driver_events_raw: {format: csv, path: data/driver_events.csv}
feature_groups:
  trips:
    primary_key: [trip_id]
    event_time: requested_at
    sql: SELECT trip_id, driver_id, requested_at, distance_km, city, tipped, fare FROM trips_raw
  drivers:
    primary_key: [driver_id]
    sql: SELECT driver_id, rating, years FROM drivers_raw
  driver_events:
    primary_key: [driver_id]
    event_time: updated_at
    sql: SELECT driver_id, updated_at, score FROM driver_events_raw
functions:
  hour_of_day: {python: ride_features.time:hour_of_day, inputs: [requested_at], returns: int64}
feature_views:
  tips:
    spine: trips
    label: tipped
    features: [distance_km, city]
    helpers: [fare]
    join:
      - {feature_group: drivers, on: [driver_id], prefix: driver_}
      - {feature_group: driver_events, on: [driver_id], ttl: 10d}
    on_demand: [hour_of_day]
    transforms: {distance_km: standard_scaler, city: one_hot_encoder, score: impute_mean}
models:
  tips_xgb:
    feature_view: tips
    estimator: xgboost.XGBClassifier
    params: {n_estimators: XGB_TREES, max_depth: 3}
    split: {by: time, test_from: "2024-02-01"}
    metrics: [roc_auc, accuracy]
    aliases: XGB_ALIASES
  tips_logreg:
    feature_view: tips
    estimator: sklearn.linear_model.LogisticRegression
    params: {max_iter: 300}
    split: {by: time, test_from: "2024-02-01"}
inference:
  january: {mode: batch, model: tips_xgb, range: ["2024-01-10", "2024-01-20"], output: {table: january_scores, path: out/january.parquet}}
  live: {mode: stream, model: tips_logreg, source: trips_raw}
"""

TIME_PY = """
import pandas as pd


def hour_of_day(ts):
    if isinstance(ts, pd.Series):
        return ts.dt.hour
    return pd.Timestamp(ts).hour
"""

CITIES = ("north", "south", "east")
START = pd.Timestamp("2024-01-01")
# Spine rows placed exactly on the batch job's range boundaries (start included, end excluded).
BOUNDARY_ROWS = {100_001: "2024-01-10 00:00:00", 100_002: "2024-01-20 00:00:00", 100_003: "2024-01-19 23:59:59"}


def trips_frame(ids: range, seed: int, *, days: tuple[float, float] = (0, 45)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(ids)
    times = START + pd.to_timedelta(np.sort(rng.uniform(days[0] * 86400, days[1] * 86400, n)).round(), unit="s")
    driver = rng.integers(1, 21, n)
    distance = rng.gamma(2.0, 3.0, n).round(2)
    city = rng.choice(CITIES, n)
    logit = 0.15 * distance - 1 + (city == "north") * 0.8 + rng.normal(0, 0.7, n)
    return pd.DataFrame({
        "trip_id": list(ids), "driver_id": driver, "requested_at": times.strftime("%Y-%m-%d %H:%M:%S"),
        "distance_km": distance, "city": city, "tipped": logit > 0, "fare": (5 + 1.5 * distance).round(2),
    })


def _frames(n: int = 500, seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed + 1)
    trips = trips_frame(range(1, n + 1), seed)
    boundary = trips.head(len(BOUNDARY_ROWS)).copy()
    boundary["trip_id"] = list(BOUNDARY_ROWS)
    boundary["requested_at"] = list(BOUNDARY_ROWS.values())
    trips = pd.concat([trips, boundary], ignore_index=True)
    drivers = pd.DataFrame({"driver_id": range(1, 21), "rating": rng.uniform(3, 5, 20).round(2), "years": rng.integers(0, 10, 20)})
    m = 300
    events = pd.DataFrame({
        "driver_id": rng.integers(1, 21, m),
        "updated_at": (START + pd.to_timedelta(rng.integers(0, 45 * 86400, m), unit="s")).strftime("%Y-%m-%d %H:%M:%S"),
        "score": rng.normal(0, 1, m).round(3),
    }).drop_duplicates(["driver_id", "updated_at"])
    return {"trips": trips, "drivers": drivers, "driver_events": events}


def spec_text(*, xgb_trees: int = 10, xgb_aliases: tuple[str, ...] = ("production",)) -> str:
    return SPEC.replace("XGB_TREES", str(xgb_trees)).replace("XGB_ALIASES", "[" + ", ".join(xgb_aliases) + "]")


def make_project(root: Path) -> Path:
    """Write the rides project under ``root`` (spec, data, on-demand package) and return it."""
    frames = _frames()
    write(root, "specs/rides.yaml", spec_text())
    for name, frame in frames.items():
        write(root, f"data/{name}.csv", frame.to_csv(index=False))
    write(root, "ride_features/__init__.py", "")
    write(root, "ride_features/time.py", TIME_PY)
    return root


def apply_models(root: Path):
    """Apply the feature and training pipelines (the inference jobs are run by the tests)."""
    return api.apply(root, select=MODELS)


@contextmanager
def scoring_context(root: Path, checked: CheckedProject | None = None, run_id: str = "20240301T120000Z-test0001") -> Iterator:
    """A real ScoringContext on the sandboxed workspace stores (closed on exit), as an apply builds it."""
    from engine.serving.batch import ScoringContext
    from engine.session import writing
    from engine.state.workspace import Workspace

    checked = checked or api.validate(root)
    ws = Workspace.for_project(checked.project.root)
    with writing(ws, sandboxed=True) as stores:
        yield ScoringContext.for_project(stores, checked, run_id)


def job(checked: CheckedProject, job_name: str, **changes):
    """An inference job of the spec, optionally with fields replaced (another model selector, …)."""
    return dataclasses.replace(checked.project.inference[job_name], **changes)


@contextmanager
def read_side(root: Path) -> Iterator:
    """The engine's own read side over the workspace (its last committed state): the stores."""
    from engine.session import reading
    from engine.state.workspace import Workspace

    with reading(Workspace.for_project(root)) as stores:
        yield stores


def _relation(relation) -> "Relation":
    from engine.sql.ops import Relation

    return relation if isinstance(relation, Relation) else Relation.parse(relation)


def read_table(root: Path, relation) -> pd.DataFrame:
    """Every row of a stored (lake) table at its committed version; ``relation`` quoted or a Relation."""
    with read_side(root) as stores:
        return stores.backend.frame(_relation(relation))


def has_table(root: Path, schema: str, name: str) -> bool:
    """Whether the workspace has a committed lake table ``schema.name``."""
    from engine.sql.ops import Relation

    with read_side(root) as stores:
        return stores.backend.exists(Relation(schema, name))


def query(root: Path, sql: str, params: list | None = None, *, bind: tuple = ()) -> list[tuple]:
    """Run ``sql`` on the read side's in-memory DuckDB, once each relation of ``bind`` (quoted
    text or Relation) is bound there as a view over its committed lake version."""
    with read_side(root) as stores:
        for relation in bind:
            relation = _relation(relation)
            assert stores.backend.exists(relation), f"no committed table {relation}"
            stores.backend.columns(relation)  # binds the view
        return stores.backend.con.execute(sql, params or []).fetchall()

