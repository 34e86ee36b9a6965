"""Skew (issue 4 item 6): online vectors and predictions equal the offline feature-view rows and
batch predictions at a spine time later than every feature row; unknown keys (H4)."""

from __future__ import annotations

import dataclasses

import math

import numpy as np
import pandas as pd
import pytest

from engine import api
from engine.serving.online import load_state
from engine.serving.vectors import InputField, coerce_row, coerce_value
from engine.state.workspace import Workspace
from engine.store.online import online_dir, read_current

LATER = pd.Timestamp("2024-02-25 12:00", tz="UTC")  # after every feature row; inside the 30d ttl of most


def _state(root):
    checked = api.validate(root)
    ws = Workspace.for_project(checked.project.root)
    return load_state(checked.project, ws.root, read_current(online_dir(ws))[1]), checked, ws


def _offline_rows(root, spine: pd.DataFrame) -> tuple[pd.DataFrame, object]:
    """The offline feature-view rows of ``spine`` through the engine's own join path (plan_joins,
    point_in_time_sql, apply_functions), on the engine's read side over the workspace (its lake tables
    at their committed versions)."""
    from engine.backends.duckdb.point_in_time import point_in_time_sql
    from engine.session import reading
    from engine.store.offline import offline_relation
    from engine.store.views import plan_joins
    from engine.transforms.on_demand import apply_functions

    checked = api.validate(root)
    project = checked.project
    fv = project.feature_views["tips"]
    with reading(Workspace.for_project(project.root)) as stores:
        backend = stores.backend
        relation_of = lambda name: offline_relation(name, project.feature_groups[name].version)  # noqa: E731
        steps, layout, spine_cols = plan_joins(backend, fv, project, relation_of)  # binds the offline tables it reads
        backend.con.register("_test_spine", spine)
        sql = point_in_time_sql('"_test_spine"', layout.event_time, [c for c in spine_cols if c in spine.columns], steps)
        frame = backend.con.execute(sql).df()
    frame = apply_functions(frame, [project.functions[n] for n in fv.on_demand], project.root)
    return frame[list(layout.columns)], layout


def _norm(v):
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (float, np.floating)) and math.isnan(v):
        return None
    return v.item() if hasattr(v, "item") else v


def test_skew_online_vector_and_prediction_equal_offline(rides):
    """Item 6: for random keys (some unknown), every online feature value equals the offline
    point-in-time row at a later time, and the prediction equals ``predict_frame`` on that row:
    classes exactly, probabilities within 1e-12 (both paths feed the same float64 matrix)."""
    rng = np.random.default_rng(11)
    n = 60
    spine = pd.DataFrame({
        "trip_id": np.arange(10_000, 10_000 + n),
        "driver_id": rng.integers(1, 23, n),  # 21, 22: no online row anywhere
        "zone": rng.choice(["north", "south", "east", "west"], n),
        "requested_at": [LATER] * n,
        "distance_km": rng.gamma(2.0, 4.0, n).round(2),
        "tipped": 0,
        "fare": rng.uniform(3, 40, n).round(2),
    })
    offline, layout = _offline_rows(rides, spine)
    state, _, _ = _state(rides)
    for model_name in ("tips_xgb", "tips_logreg"):
        # on_missing: predict scores unknown entities as batch scoring does (imputed features):
        # then every online prediction equals the offline one.
        ep = dataclasses.replace(state.model(model_name), on_missing="predict")
        assert list(ep.service.layout.features) == list(layout.features)
        rows = [{"driver_id": int(r.driver_id), "zone": r.zone, "distance_km": float(r.distance_km), "requested_at": LATER.isoformat()} for r in spine.itertuples()]
        online = state.predict(ep, rows)["predictions"]
        batch = ep.model.predict_frame(offline)
        for i, (row, pred) in enumerate(zip(rows, online)):
            vec = ep.service.vector(coerce_row(row, ep.fields, "$")[0], {})
            expected = {f: _norm(offline.iloc[i][f]) for f in layout.features}
            assert {k: _norm(v) for k, v in vec.values.items()} == expected, f"row {i}"
            assert list(vec.values) == list(layout.features)
            assert pred["prediction"] == batch["prediction"].iloc[i]
            for cls, p in pred["probabilities"].items():
                assert abs(p - batch[f"proba_{cls}"].iloc[i]) <= 1e-12
        # The default, on_missing: null: the same predictions for known entities, none for unknown ones.
        default = state.predict(state.model(model_name), rows)["predictions"]
        assert any(p["status"] == "missing" for p in default)
        for scored, pred in zip(online, default):
            assert pred == ({"status": "missing", "prediction": None, "missing": scored["missing"]} if scored["status"] == "missing" else scored)


def test_on_missing_error_makes_an_unknown_entity_an_error_row(rides):
    """issue 11 item 7: on_missing: error — the row is an error naming the groups without a row."""
    state, _, _ = _state(rides)
    ep = dataclasses.replace(state.model("tips_xgb"), on_missing="error")
    rows = [{"driver_id": 3, "zone": "north", "distance_km": 2.0, "requested_at": LATER.isoformat()},
            {"driver_id": 4242, "zone": "west", "distance_km": 2.0, "requested_at": LATER.isoformat()}]
    known, unknown = state.predict(ep, rows)["predictions"]
    assert known["status"] == "ok" and known["prediction"] is not None
    assert unknown["status"] == "error" and unknown["prediction"] is None and "probabilities" not in unknown
    assert "no stored features for this row's keys in drivers, driver_stats" in unknown["error"]


def test_unknown_keys_give_nulls_and_missing_never_another_row(rides):
    """H4: a key with no online row gives NULL values and names the group; other keys' rows never leak."""
    state, _, _ = _state(rides)
    service = state.view("tips")
    known = service.vector({"driver_id": 3, "zone": "north", "distance_km": 5.0, "requested_at": LATER}, {})
    unknown = service.vector({"driver_id": 999, "zone": "nowhere", "distance_km": 5.0, "requested_at": LATER}, {})
    assert known.missing == []
    assert unknown.missing == ["drivers", "driver_stats", "zone_demand"]
    joined = [f for f in service.layout.features if f.startswith(("driver_", "zone_")) or f in ("distance_mean_3d", "trips_3d")]
    assert joined and all(unknown.values[f] is None for f in joined)
    assert unknown.values["hour_of_day"] == 12 and unknown.values["long_trip"] is False


def test_ttl_applies_only_with_the_event_time(rides):
    """A row older than t - ttl is NULL (as offline) when the request gives the event time; without it the latest row is used."""
    state, _, _ = _state(rides)
    service = state.view("tips")
    far = pd.Timestamp("2025-01-01", tz="UTC")
    with_time = service.vector({"driver_id": 3, "zone": "north", "distance_km": 5.0, "requested_at": far}, {})
    assert with_time.expired == ["driver_stats"] and with_time.values["trips_3d"] is None
    fields = {k: v for k, v in service.fields.items()}
    assert fields["requested_at"].required  # an on-demand input here, so always given


@pytest.mark.parametrize("kind,value,expected", [
    ("int", 3, 3), ("float", 3, 3.0), ("str", "a", "a"), ("bool", True, True),
    ("timestamp", "2024-01-01T05:00:00+02:00", pd.Timestamp("2024-01-01 03:00", tz="UTC")),
])
def test_coerce_value_accepts(kind, value, expected):
    assert coerce_value(InputField("x", kind, True), value) == expected


@pytest.mark.parametrize("kind,value", [("int", "3"), ("int", 3.0), ("int", True), ("float", "x"), ("str", 1), ("bool", 1), ("timestamp", "yesterday"), ("float", float("inf"))])
def test_coerce_value_refuses(kind, value):
    with pytest.raises(ValueError):
        coerce_value(InputField("x", kind, True), value)


def test_coerce_from_text_for_csv():
    assert coerce_value(InputField("x", "int", True), "12", from_text=True) == 12
    assert coerce_value(InputField("x", "float", True), "", from_text=True) is None
    with pytest.raises(ValueError):
        coerce_value(InputField("x", "int", True, key=True), "", from_text=True)


def test_python_api_feature_vectors_and_online_predictions(rides):
    """Item 3: the Python API gives the online feature vector and the prediction for keys and
    request values, the same as the serving path."""
    from engine import api
    from engine.errors import DataError, UsageError

    row = {"driver_id": 3, "zone": "north", "distance_km": 4.5, "requested_at": LATER.isoformat()}
    vectors = api.feature_vectors(rides, "tips", [row])["vectors"]
    assert vectors[0]["status"] == "ok" and "driver_rating" in vectors[0]["values"]
    state = api.online_state(rides)
    job = next(iter(state.describe()["jobs"]))
    result = api.predict_online(rides, job, [row], state=state)
    assert result["model"].startswith("model:") and result["predictions"][0]["status"] == "ok"
    with pytest.raises(DataError, match=r"\$\.rows\[0\]\.distance_km"):
        api.predict_online(rides, job, [{**row, "distance_km": "far"}], state=state)
    with pytest.raises(UsageError):
        api.predict_online(rides, "no_such_job", [row], state=state)
