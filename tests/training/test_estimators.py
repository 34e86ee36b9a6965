"""Building and fitting allow-listed estimators, class weights, determinism, and label mappings."""

from __future__ import annotations

import importlib
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import xgboost
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.utils.class_weight import compute_sample_weight
from xgboost.core import XGBoostError

from engine.errors import DataError, ExecutionError
from engine.training import estimators as est_mod
from engine.model.catalogue import load_catalogue
from engine.training.estimators import (
    XGBOOST_N_JOBS,
    LabelMapping,
    build_estimator,
    fit,
    fit_label_mapping,
    resolve_class_weight,
)

from . import check_golden

ALL = sorted(load_catalogue()["estimators"])


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = (X[:, 0] + 0.5 * rng.normal(size=n) > 0.7).astype(int)  # imbalanced
    return X, y


@pytest.mark.parametrize("path", ALL)
def test_every_catalogue_estimator_builds_and_gets_the_seed(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = build_estimator(path, {}, seed=11)
    entry = load_catalogue()["estimators"][path]
    assert f"{type(estimator).__module__.split('.')[0]}.{type(estimator).__name__}" == path.split(".")[0] + "." + path.rsplit(".", 1)[1]
    if entry["seed_param"]:
        assert estimator.get_params()[entry["seed_param"]] == 11
    if path.startswith("xgboost."):
        assert estimator.get_params()["n_jobs"] == XGBOOST_N_JOBS


def test_user_values_win_over_seed_and_thread_defaults():
    model = build_estimator("xgboost.XGBClassifier", {"random_state": 3, "n_jobs": 1, "n_estimators": 5}, seed=11)
    assert model.get_params()["random_state"] == 3 and model.get_params()["n_jobs"] == 1
    assert build_estimator("sklearn.linear_model.Ridge", {}, seed=None).get_params()["random_state"] is None


def test_P6_only_catalogue_classes_are_ever_imported(monkeypatch):
    """A class path outside the allow-list is refused before any import happens."""
    calls = []
    monkeypatch.setattr(est_mod.importlib, "import_module", lambda name: calls.append(name))
    for path in ("os.system", "sklearn.pipeline.Pipeline", "subprocess.Popen"):
        with pytest.raises(ExecutionError, match="unknown estimator"):
            build_estimator(path, {}, seed=0)
    assert calls == []


def test_bad_param_values_become_execution_errors_naming_the_model_golden():
    messages = []
    for path, params in (
        ("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 0}),
        ("sklearn.linear_model.LogisticRegression", {"C": -1.0}),
        ("sklearn.tree.DecisionTreeClassifier", {"max_dept": 3}),
    ):
        with pytest.raises(ExecutionError) as info:
            build_estimator(path, params, seed=0, model_name="delay_model")
        messages.append(str(info.value))
    check_golden("build_errors", "\n".join(messages))


def test_xgboost_class_weight_is_applied_as_sample_weights():
    X, y = _data()
    a = fit(build_estimator("xgboost.XGBClassifier", {"n_estimators": 10}, seed=1), X, y, class_weight="balanced")
    b = build_estimator("xgboost.XGBClassifier", {"n_estimators": 10}, seed=1)
    b.fit(X, y, sample_weight=compute_sample_weight("balanced", y))
    c = fit(build_estimator("xgboost.XGBClassifier", {"n_estimators": 10}, seed=1), X, y)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))


def test_sklearn_class_weight_goes_through_the_param():
    X, y = _data()
    model = build_estimator("sklearn.linear_model.LogisticRegression", {}, seed=1, class_weight={0: 1.0, 1: 4.0})
    assert model.get_params()["class_weight"] == {0: 1.0, 1: 4.0}
    fitted = fit(model, X, y, class_weight={0: 1.0, 1: 4.0})
    reference = importlib.import_module("sklearn.linear_model").LogisticRegression(class_weight={0: 1.0, 1: 4.0}).fit(X, y)
    assert np.allclose(fitted.predict_proba(X), reference.predict_proba(X))


def test_training_twice_gives_identical_models():
    """DESIGN §3: the same inputs train the same model (XGBoost: fixed seed and thread count)."""
    X, y = _data()
    dumps = []
    for _ in range(2):
        model = fit(build_estimator("xgboost.XGBClassifier", {"n_estimators": 20, "subsample": 0.7}, seed=5), X, y)
        dumps.append(json.dumps(model.get_booster().save_raw("json").decode()))
    assert dumps[0] == dumps[1]
    forests = [fit(build_estimator("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 5}, seed=5), X, y)
               for _ in range(2)]
    assert np.array_equal(forests[0].predict_proba(X), forests[1].predict_proba(X))


def test_eval_set_reaches_xgboost_and_fit_errors_are_execution_errors():
    X, y = _data()
    model = build_estimator("xgboost.XGBClassifier", {"n_estimators": 50, "early_stopping_rounds": 3}, seed=0)
    fit(model, X[:80], y[:80], eval_set=[(X[80:], y[80:])])
    assert model.best_iteration < 50
    again = build_estimator("xgboost.XGBClassifier", {"n_estimators": 5, "early_stopping_rounds": 3}, seed=0)
    with pytest.raises(ExecutionError, match="delay_model: training failed"):
        fit(again, X, y, model_name="delay_model")


def test_xgboost_without_early_stopping_is_not_scored_on_the_eval_set_and_trains_the_same_trees():
    X, y = _data()
    plain = fit(build_estimator("xgboost.XGBClassifier", {"n_estimators": 20}, seed=0), X[:80], y[:80])
    with_set = fit(build_estimator("xgboost.XGBClassifier", {"n_estimators": 20}, seed=0), X[:80], y[:80], eval_set=[(X[80:], y[80:])])
    with pytest.raises(XGBoostError):  # no per-round scores: nothing reads them
        with_set.evals_result()
    assert with_set.get_booster().save_raw("json") == plain.get_booster().save_raw("json")
    # callbacks read the eval set (as early stopping does): it is passed to them
    stopping = xgboost.callback.EarlyStopping(rounds=3)
    called = fit(build_estimator("xgboost.XGBClassifier", {"n_estimators": 50, "callbacks": [stopping]}, seed=0), X[:80], y[:80], eval_set=[(X[80:], y[80:])])
    assert "validation_0" in called.evals_result() and called.best_iteration < 49


def test_knn_without_sample_weight_cannot_take_class_weight():
    X, y = _data()
    with pytest.raises(ExecutionError, match="does not accept sample weights"):
        fit(build_estimator("sklearn.neighbors.KNeighborsClassifier", {}, seed=0), X, y, class_weight="balanced")


@pytest.mark.parametrize(
    "values, classes",
    [
        ([True, False, True], (False, True)),
        ([3, 1, 2, 1], (1, 2, 3)),
        (["yes", "no", "no"], ("no", "yes")),
        (np.array([1.0, 0.0, 1.0]), (0, 1)),
        (pd.array([1, 0, 1], dtype="Int64"), (0, 1)),
        (pd.Series(["b", "a"], dtype="string"), ("a", "b")),
    ],
)
def test_label_mapping_is_sorted_json_safe_and_round_trips(values, classes):
    mapping = fit_label_mapping(values, label="is_delayed")
    assert mapping.classes == classes
    assert json.loads(json.dumps(list(mapping.classes))) == list(classes)
    codes = mapping.encode(values)
    assert codes.dtype == np.int64 and codes.min() == 0 and codes.max() == len(classes) - 1
    assert list(mapping.decode(codes)) == [classes[c] for c in codes]
    assert [type(v) for v in mapping.decode(codes).tolist()] == [type(classes[0])] * len(codes)


def test_label_errors_golden():
    messages = []
    cases = [
        ([1, 1, 1], {}),
        ([True, True], {}),
        ([1.0, None, float("nan"), 0.0], {}),
        ([0.5, 1.5], {}),
        ([1, "a"], {}),
    ]
    for values, kwargs in cases:
        with pytest.raises(DataError) as info:
            fit_label_mapping(values, label="is_delayed", **kwargs)
        messages.append(f"{values!r}: {info.value}")
    with pytest.raises(DataError) as info:
        LabelMapping((0, 1)).encode([0, 3, 1, 2], label="is_delayed", split="test")
    messages.append(f"encode unseen: {info.value}")
    with pytest.raises(DataError) as info:
        resolve_class_weight({"maybe": 2.0}, LabelMapping((False, True)))
    messages.append(f"class_weight unknown class: {info.value}")
    check_golden("label_errors", "\n".join(messages))


def test_resolve_class_weight_maps_spec_keys_to_codes():
    assert resolve_class_weight({"true": 3}, LabelMapping((False, True))) == {0: 1.0, 1: 3.0}
    assert resolve_class_weight({"2": 5, "1": 0.5}, LabelMapping((1, 2, 3))) == {0: 0.5, 1: 5.0, 2: 1.0}
    assert resolve_class_weight({"yes": 2}, LabelMapping(("no", "yes"))) == {0: 1.0, 1: 2.0}
    assert resolve_class_weight("balanced", LabelMapping((0, 1))) == "balanced"
    assert resolve_class_weight(None, LabelMapping((0, 1))) is None


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.integers(-5, 5)), min_size=2, max_size=40).filter(lambda v: len(set(v)) > 1))
def test_label_mapping_round_trip_hypothesis(values):
    mapping = fit_label_mapping(values)
    assert list(mapping.classes) == sorted(set(values))
    assert mapping.decode(mapping.encode(values)).tolist() == values
