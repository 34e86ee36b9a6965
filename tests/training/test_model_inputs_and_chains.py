"""Per-model inputs and transform chains (issue 11, items 2–3): a model declares the view's
features it takes (``features`` / ``exclude``) and its own transforms, including chains of numeric
steps (``[impute: median, log1p, standard_scaler]``, ``clip``, ``kbins``), fitted on the training
split only and stored with the model version; two models on one view prepare a column
differently; batch and online give the same numbers; validate rejects bad declarations."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import api
from engine.scaffold import init_project
from engine.transforms.model_dependent import FittedTransforms, fit_transforms
from tests.conftest import run_engine

CHAIN = (("impute_median", ()), ("log1p", ()), ("clip", (-1.0, 3.0)), ("standard_scaler", ()))


# --- units: fitting and applying chains -----------------------------------------------------------


def test_a_chain_is_fitted_step_by_step_on_the_training_values_only() -> None:
    train = pd.DataFrame({"x": [0.0, 1.0, np.nan, 3.0, 7.0]})
    fitted = fit_transforms(train, ["x"], {"x": CHAIN})
    steps = fitted.columns[0].state["steps"]
    assert [s["kind"] for s in steps] == ["impute_median", "log1p", "clip", "standard_scaler"]
    assert steps[0]["state"] == {"value": 2.0}  # median of 0, 1, 3, 7
    after = np.clip(np.log1p(np.array([0.0, 1.0, 2.0, 3.0, 7.0])), -1.0, 3.0)  # what the scaler was fitted on
    assert steps[3]["state"]["mean"] == pytest.approx(after.mean()) and steps[3]["state"]["scale"] == pytest.approx(after.std())
    out = fitted.transform(pd.DataFrame({"x": [np.nan, 100.0]}))["x"].tolist()
    assert out[0] == pytest.approx((math.log1p(2.0) - after.mean()) / after.std())
    assert out[1] == pytest.approx((3.0 - after.mean()) / after.std())  # clipped at 3 after log1p


def test_kbins_edges_are_training_quantiles_and_values_become_bin_indices() -> None:
    train = pd.DataFrame({"x": np.arange(100, dtype=float)})
    fitted = fit_transforms(train, ["x"], {"x": (("kbins", (4,)),)})
    edges = fitted.columns[0].state["steps"][0]["state"]["edges"]
    assert edges == pytest.approx([24.75, 49.5, 74.25])
    assert fitted.transform(pd.DataFrame({"x": [-5.0, 24.75, 50.0, 1e9, np.nan]}))["x"].tolist()[:4] == [0.0, 1.0, 2.0, 3.0]
    assert math.isnan(fitted.transform(pd.DataFrame({"x": [np.nan]}))["x"][0])


def test_chains_are_stored_as_json_and_rebuilt_exactly() -> None:
    train = pd.DataFrame({"x": [0.5, 2.0, 9.0, np.nan], "y": [1.0, 2.0, 3.0, 4.0]})
    fitted = fit_transforms(train, ["x", "y"], {"x": CHAIN, "y": (("kbins", (2,)), ("min_max_scaler", ()))})
    again = FittedTransforms.from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert again == fitted
    broken = fitted.to_dict()
    broken["columns"][0]["state"]["steps"][0]["kind"] = "one_hot_encoder"
    with pytest.raises(ValueError, match="numeric kind"):
        FittedTransforms.from_dict(broken)


def test_log1p_refuses_training_values_at_or_below_minus_one_and_chains_refuse_text() -> None:
    with pytest.raises(ValueError, match="log1p needs values > -1"):
        fit_transforms(pd.DataFrame({"x": [-1.0, 2.0]}), ["x"], {"x": (("log1p", ()),)})
    with pytest.raises(ValueError, match="not numeric"):
        fit_transforms(pd.DataFrame({"x": ["a", "b"]}), ["x"], {"x": CHAIN})


@settings(max_examples=150, deadline=None)
@given(
    train=st.lists(st.one_of(st.none(), st.floats(-0.99, 1e6)), min_size=2, max_size=40).filter(lambda v: any(x is not None for x in v)),
    probe=st.lists(st.one_of(st.none(), st.floats(-1e3, 1e7, allow_nan=False)), min_size=1, max_size=20),
    bins=st.integers(2, 8),
)
def test_batch_and_row_paths_give_the_same_bits(train, probe, bins) -> None:
    """The no-skew promise for chains: the online row path computes exactly the batch numbers."""
    frame = pd.DataFrame({"x": pd.array([np.nan if v is None else v for v in train], dtype="float64")})
    fitted = fit_transforms(frame, ["x"], {"x": (("impute_mean", ()), ("log1p", ()), ("kbins", (bins,)), ("standard_scaler", ()))})
    batch = fitted.transform(pd.DataFrame({"x": [np.nan if v is None else v for v in probe]}))["x"].tolist()
    rows = [fitted.transform_row({"x": v})[0] for v in probe]
    assert [np.float64(b).tobytes() for b in batch] == [np.float64(r).tobytes() for r in rows]


# --- end to end: two models on one view ------------------------------------------------------------

TWO_MODELS = """
  tip_small:
    feature_view: tips
    estimator: sklearn.linear_model.LogisticRegression
    features: [distance_km, driver_rating, distance_mean_7d, hour_of_day]
    transforms:
      distance_km: [impute: median, log1p, standard_scaler]
      driver_rating: [clip: [3.5, 5], {kbins: 4}]
      distance_mean_7d: [impute: mean, standard_scaler]
    split: {by: time, test_from: "2024-03-01"}
  tip_no_activity:
    feature_view: tips
    estimator: xgboost.XGBClassifier
    params: {n_estimators: 10, max_depth: 2}
    exclude: [distance_mean_7d, trips_7d]
    split: {by: time, test_from: "2024-03-01"}
"""
SMALL_API = """  small_api:
    mode: online
    model: tip_small
    keys: [driver_id]
    request: [distance_km, requested_at]
"""


@pytest.fixture(scope="module")
def two_models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("chains") / "tips"
    init_project(root, "tips")
    spec = root / "specs" / "project.yaml"
    text = spec.read_text().replace("    aliases: [production]\n", "    aliases: [production]\n" + TWO_MODELS.lstrip("\n"), 1)
    spec.write_text(text.replace("inference:\n", "inference:\n" + SMALL_API, 1))
    code, out, err = run_engine("apply", str(root))
    assert code == 0, out + err
    return root


def _manifest(root: Path, name: str) -> dict:
    return api.show_model(root, name)["manifest"]


def test_each_model_takes_its_declared_features_with_its_own_transforms(two_models) -> None:
    base, small, rest = (_manifest(two_models, n) for n in ("tip_model", "tip_small", "tip_no_activity"))
    assert small["feature_columns"] == ["distance_km", "driver_rating", "distance_mean_7d", "hour_of_day"]
    assert "distance_mean_7d" not in rest["feature_columns"] and "trips_7d" not in rest["feature_columns"]
    assert set(rest["feature_columns"]) | {"distance_mean_7d", "trips_7d"} == set(base["feature_columns"])
    kinds = {c["column"]: c["kind"] for c in small["transformers"]["columns"]}
    assert kinds == {"distance_km": "chain", "driver_rating": "chain", "distance_mean_7d": "chain", "hour_of_day": "passthrough"}
    # the view's own transform (standard_scaler on distance_km) still serves the model without its own
    assert {c["column"]: c["kind"] for c in base["transformers"]["columns"]}["distance_km"] == "standard_scaler"


def test_the_stored_chains_give_batch_and_online_the_same_numbers_on_the_view(two_models) -> None:
    from engine.ids import ModelRef
    from engine.serving.scoring import load_model
    from engine.session import reading
    from engine.state.workspace import Workspace

    frame = api.read_feature_view(two_models, "tips")
    with reading(Workspace.for_project(two_models)) as stores:
        model = load_model(stores.registry, ModelRef.parse("tip_small@1"))
    batch = model.transforms.transform(frame[model.features]).to_numpy()
    rows = np.array([model.transforms.transform_row(r) for r in frame[model.features].to_dict("records")])
    assert batch.shape == rows.shape and batch.tobytes() == rows.tobytes()


def test_a_model_on_a_subset_of_the_view_is_served_online(two_models) -> None:
    result = api.predict_online(two_models, "small_api", [{"driver_id": 3, "distance_km": 12.5, "requested_at": "2024-02-20T10:00:00Z"}])
    assert result["model"] == "model:tip_small@1"
    assert result["predictions"][0]["status"] == "ok" and set(result["predictions"][0]["probabilities"]) == {"False", "True"}


# --- validate --------------------------------------------------------------------------------------


def test_bad_model_inputs_and_transforms_are_positioned_exit_3(tmp_path) -> None:
    root = tmp_path / "tips"
    init_project(root, "tips")
    spec = root / "specs" / "project.yaml"
    bad = """
  bad_one:
    feature_view: tips
    estimator: xgboost.XGBClassifier
    features: [distance_km, driver_ratng, driver_rating]
    exclude: [trips_7d]
    transforms:
      trips_7d: standard_scaler
      driver_rating: [clip: [5, 1]]
"""
    spec.write_text(spec.read_text().replace("    aliases: [production]\n", "    aliases: [production]\n" + bad.lstrip("\n"), 1))
    code, out, err = run_engine("validate", str(root))
    text = out + err
    assert code == 3, text
    assert "models.bad_one.exclude: features and exclude are alternatives" in text
    assert "models.bad_one.features[1]: 'driver_ratng' is not a feature of feature view 'tips'" in text and "did you mean 'driver_rating'?" in text
    assert "models.bad_one.transforms.trips_7d: transform for 'trips_7d', which is not an input of model 'bad_one'" in text
    assert "clip bounds must be increasing, got [5, 1]" in text
    assert "Traceback" not in text


def test_a_timestamp_feature_is_refused_only_for_the_models_that_take_it(tmp_path) -> None:
    root = tmp_path / "tips"
    init_project(root, "tips")
    spec = root / "specs" / "project.yaml"
    text = spec.read_text().replace("features: [distance_km]", "features: [distance_km, requested_at]", 1)
    text = text.replace("trips_raw: {format: csv, path: data/trips.csv, timezone: UTC}",
                        "trips_raw: {format: csv, path: data/trips.csv, timezone: UTC, columns: {trip_id: BIGINT, driver_id: BIGINT, requested_at: TIMESTAMP, distance_km: DOUBLE, tipped: BOOLEAN}}")
    spec.write_text(text)
    code, out, err = run_engine("validate", str(root))
    assert code == 3 and "feature 'requested_at' is a TIMESTAMP" in out + err
    spec.write_text(text.replace("    estimator: xgboost.XGBClassifier\n", "    estimator: xgboost.XGBClassifier\n    exclude: [requested_at]\n", 1))
    code, out, err = run_engine("validate", str(root))
    assert code == 0, out + err
    spec.write_text(text.replace("    estimator: xgboost.XGBClassifier\n", "    estimator: xgboost.XGBClassifier\n    features: [distance_km, requested_at]\n", 1))
    code, out, err = run_engine("validate", str(root))
    assert code == 3 and "models.tip_model.features[1]: feature 'requested_at' is a TIMESTAMP" in out + err


def test_a_chain_on_a_text_column_is_refused_at_validate(tmp_path) -> None:
    root = tmp_path / "tips"
    init_project(root, "tips")
    spec = root / "specs" / "project.yaml"
    text = spec.read_text().replace("drivers_raw: {format: csv, path: data/drivers.csv}", "drivers_raw: {format: csv, path: data/drivers.csv, columns: {driver_id: BIGINT, rating: VARCHAR, years: BIGINT}}")
    text = text.replace("    estimator: xgboost.XGBClassifier\n", "    estimator: xgboost.XGBClassifier\n    transforms: {driver_rating: [impute: median, standard_scaler]}\n", 1)
    spec.write_text(text)
    code, out, err = run_engine("validate", str(root))
    assert code == 3, out + err
    assert "a chain of numeric steps applies to numbers, and 'driver_rating' is a VARCHAR" in out + err
