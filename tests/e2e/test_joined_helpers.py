"""Helper columns from joined groups (issue 11, item 2): a view's ``helpers`` may name a column a
join brings — a timestamp among them — which on-demand functions read, which is stored with the
view's rows and returned with the online vector, but which is never a model input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from engine import api
from engine.scaffold import init_project
from tests.conftest import run_engine

FUNCTIONS = '''

def licence_days(requested_at, licensed_at):
    """Days between the driver's licence and the request."""
    if isinstance(requested_at, pd.Series):
        return (pd.to_datetime(requested_at, utc=True) - pd.to_datetime(licensed_at, utc=True)).dt.days
    if requested_at is None or licensed_at is None:
        return None
    return (pd.Timestamp(requested_at) - pd.Timestamp(licensed_at)).days
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("helpers") / "tips"
    init_project(root, "tips")
    (root / "tips_features" / "time.py").write_text((root / "tips_features" / "time.py").read_text() + FUNCTIONS)
    spec = root / "specs" / "project.yaml"
    text = spec.read_text()
    text = text.replace(
        "sql: SELECT driver_id, rating, years FROM drivers_raw",
        "sql: SELECT driver_id, rating, years, TIMESTAMPTZ '2015-01-01 00:00:00+00' + to_years(CAST(years AS INTEGER)) AS licensed_at FROM drivers_raw",
    )
    text = text.replace(
        "  hour_of_day: {python: tips_features.time:hour_of_day, inputs: [requested_at], returns: int64}",
        "  hour_of_day: {python: tips_features.time:hour_of_day, inputs: [requested_at], returns: int64}\n"
        "  licence_days: {python: tips_features.time:licence_days, inputs: [requested_at, driver_licensed_at], returns: int64}",
    )
    text = text.replace("    features: [distance_km]\n", "    features: [distance_km]\n    helpers: [driver_licensed_at, driver_years]\n", 1)
    text = text.replace("    on_demand: [hour_of_day]", "    on_demand: [hour_of_day, licence_days]")
    spec.write_text(text)
    code, out, err = run_engine("apply", str(root))
    assert code == 0, out + err
    return root


def test_joined_helpers_are_stored_with_the_rows_but_are_not_model_inputs(project) -> None:
    rows = api.read_feature_view(project, "tips")
    assert {"driver_licensed_at", "driver_years", "licence_days"} <= set(rows.columns)
    manifest = api.show_model(project, "tip_model")["manifest"]
    assert "licence_days" in manifest["feature_columns"]
    assert "driver_licensed_at" not in manifest["feature_columns"] and "driver_years" not in manifest["feature_columns"]
    assert "driver_rating" in manifest["feature_columns"]  # the join's other columns stay features
    expected = (pd.to_datetime(rows["requested_at"], utc=True) - pd.to_datetime(rows["driver_licensed_at"], utc=True)).dt.days
    assert rows["licence_days"].astype("int64").tolist() == expected.tolist()


def test_the_online_vector_returns_joined_helpers_apart_and_scores_without_them(project) -> None:
    request = {"driver_id": 3, "distance_km": 12.5, "requested_at": "2024-02-20T10:00:00Z"}
    vectors = api.feature_vectors(project, "tips", [request])
    item = vectors["vectors"][0]
    assert item["status"] == "ok"
    assert "driver_licensed_at" not in item["values"] and "driver_years" not in item["values"]
    assert set(item["helpers"]) >= {"driver_licensed_at", "driver_years"}
    licensed = pd.Timestamp(item["helpers"]["driver_licensed_at"])
    assert item["values"]["licence_days"] == (pd.Timestamp("2024-02-20T10:00:00Z") - licensed).days
    scored = api.predict_online(project, "api", [request])
    assert scored["predictions"][0]["status"] == "ok"


def test_an_unknown_helper_is_positioned_with_a_did_you_mean(tmp_path) -> None:
    root = tmp_path / "tips"
    init_project(root, "tips")
    spec = root / "specs" / "project.yaml"
    spec.write_text(spec.read_text().replace("    features: [distance_km]\n", "    features: [distance_km]\n    helpers: [driver_ratin]\n", 1))
    code, out, err = run_engine("validate", str(root))
    assert code == 3, out + err
    assert "helper column 'driver_ratin' is not a column of feature group 'trips' nor of a joined group" in out + err
    assert "did you mean 'driver_rating'?" in out + err
