"""Metrics against sklearn.metrics directly; undefined metrics become None with a warning."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from engine.training.metrics import (
    CLASSIFIER_METRICS,
    REGRESSOR_METRICS,
    compute_metrics,
    default_metrics,
    higher_is_better,
)

RNG = np.random.default_rng(3)


def _binary(n=200):
    y_true = RNG.integers(0, 2, n)
    proba1 = np.clip(0.6 * y_true + 0.4 * RNG.random(n), 0, 1)
    proba = np.column_stack([1 - proba1, proba1])
    return y_true, (proba1 > 0.5).astype(int), proba


def test_binary_classifier_metrics_equal_sklearn_with_positive_class_the_larger_label():
    y_true, y_pred, proba = _binary()
    result = compute_metrics("classifier", CLASSIFIER_METRICS, y_true, y_pred, proba)
    assert result.warnings == ()
    assert result.values["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert result.values["precision"] == pytest.approx(skm.precision_score(y_true, y_pred, pos_label=1))
    assert result.values["recall"] == pytest.approx(skm.recall_score(y_true, y_pred, pos_label=1))
    assert result.values["f1"] == pytest.approx(skm.f1_score(y_true, y_pred, pos_label=1))
    assert result.values["roc_auc"] == pytest.approx(skm.roc_auc_score(y_true, proba[:, 1]))
    assert result.values["log_loss"] == pytest.approx(skm.log_loss(y_true, proba))


def test_string_and_bool_labels_positive_is_the_larger_label():
    y_true = np.array(["no", "yes", "yes", "no", "yes"])
    y_pred = np.array(["no", "yes", "no", "no", "yes"])
    result = compute_metrics("classifier", ["precision", "recall"], y_true, y_pred)
    assert result.values["recall"] == pytest.approx(skm.recall_score(y_true, y_pred, pos_label="yes"))
    flags = compute_metrics("classifier", ["recall"], y_true == "yes", y_pred == "yes")
    assert flags.values["recall"] == pytest.approx(2 / 3)


def test_multiclass_macro_averages_and_ovr_roc_auc():
    n = 300
    y_true = RNG.integers(0, 3, n)
    raw = RNG.random((n, 3)) + np.eye(3)[y_true]
    proba = raw / raw.sum(axis=1, keepdims=True)
    y_pred = proba.argmax(axis=1)
    result = compute_metrics("classifier", CLASSIFIER_METRICS, y_true, y_pred, proba)
    assert result.values["f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    assert result.values["precision"] == pytest.approx(skm.precision_score(y_true, y_pred, average="macro"))
    assert result.values["roc_auc"] == pytest.approx(skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro"))
    assert result.values["log_loss"] == pytest.approx(skm.log_loss(y_true, proba))


def test_regressor_metrics_equal_sklearn():
    y_true = RNG.normal(size=100)
    y_pred = y_true + RNG.normal(scale=0.3, size=100)
    result = compute_metrics("regressor", REGRESSOR_METRICS, y_true, y_pred)
    assert result.values["mae"] == pytest.approx(skm.mean_absolute_error(y_true, y_pred))
    assert result.values["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(y_true, y_pred)))
    assert result.values["r2"] == pytest.approx(skm.r2_score(y_true, y_pred))


def test_roc_auc_with_one_class_in_the_split_is_none_with_a_warning():
    y_true = np.array([1, 1, 1])
    proba = np.array([[0.2, 0.8], [0.4, 0.6], [0.9, 0.1]])
    result = compute_metrics("classifier", ["roc_auc", "log_loss", "accuracy"], y_true, np.array([1, 1, 0]), proba)
    assert result.values["roc_auc"] is None
    assert result.values["log_loss"] == pytest.approx(skm.log_loss(y_true, proba, labels=[0, 1]))
    assert result.warnings == ("roc_auc is undefined: only one class (1) in the split",)


def test_precision_without_positive_predictions_is_none_not_zero():
    result = compute_metrics("classifier", ["precision", "recall"], np.array([0, 1, 1]), np.array([0, 0, 0]), classes=[0, 1])
    assert result.values == {"precision": None, "recall": 0.0}
    assert result.warnings == ("precision is undefined: no positive predictions",)


def test_r2_undefined_on_constant_target():
    result = compute_metrics("regressor", ["r2", "mae"], np.array([2.0, 2.0]), np.array([1.0, 3.0]))
    assert result.values["r2"] is None and result.values["mae"] == 1.0
    assert result.warnings == ("r2 is undefined: the target is constant in the split",)


def test_metric_of_the_other_task_or_missing_proba_is_a_programming_error():
    with pytest.raises(ValueError, match="does not apply"):
        compute_metrics("regressor", ["roc_auc"], [1.0], [1.0])
    with pytest.raises(ValueError, match="probabilities"):
        compute_metrics("classifier", ["roc_auc"], [0, 1], [0, 1])


def test_defaults_and_direction():
    assert default_metrics("classifier", has_proba=True) == ("accuracy", "f1", "roc_auc", "log_loss")
    assert default_metrics("classifier", has_proba=False) == ("accuracy", "f1")
    assert default_metrics("regressor", has_proba=False) == ("mae", "rmse", "r2")
    assert [higher_is_better(m) for m in ("accuracy", "f1", "roc_auc", "r2")] == [True] * 4
    assert [higher_is_better(m) for m in ("log_loss", "mae", "rmse")] == [False] * 3
    with pytest.raises(ValueError):
        higher_is_better("speed")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.floats(0.01, 0.99)), min_size=2, max_size=40))
def test_binary_metrics_match_sklearn_or_are_explained(rows):
    """Hypothesis oracle: each value equals sklearn's, or is None with exactly one warning for it."""
    y_true = np.array([r[0] for r in rows])
    p1 = np.array([r[1] for r in rows])
    proba = np.column_stack([1 - p1, p1])
    y_pred = (p1 > 0.5).astype(int)
    result = compute_metrics("classifier", CLASSIFIER_METRICS, y_true, y_pred, proba, classes=[0, 1])
    for metric, value in result.values.items():
        if value is None:
            assert sum(w.startswith(metric + " ") for w in result.warnings) == 1
            continue
        expected = {
            "accuracy": lambda: skm.accuracy_score(y_true, y_pred),
            "precision": lambda: skm.precision_score(y_true, y_pred),
            "recall": lambda: skm.recall_score(y_true, y_pred),
            "f1": lambda: skm.f1_score(y_true, y_pred),
            "roc_auc": lambda: skm.roc_auc_score(y_true, p1),
            "log_loss": lambda: skm.log_loss(y_true, proba, labels=[0, 1]),
            "average_precision": lambda: skm.average_precision_score(y_true, p1),
            "brier": lambda: skm.brier_score_loss(y_true, p1),
        }[metric]()
        assert value == pytest.approx(expected)


# --- average_precision, brier, precision_at_K (issue 11, item 5) ------------------------------------


def _brute_average_precision(y: np.ndarray, score: np.ndarray) -> float:
    """AP as the sum over thresholds of (recall step) x precision, thresholds at each distinct score."""
    order = np.argsort(-score, kind="stable")
    total = y.sum()
    ap, previous_recall = 0.0, 0.0
    for s in sorted(set(score.tolist()), reverse=True):
        chosen = score >= s
        tp = float(y[chosen].sum())
        recall = tp / total
        ap += (recall - previous_recall) * (tp / chosen.sum())
        previous_recall = recall
    assert len(order) == len(y)
    return ap


@settings(max_examples=80, deadline=None)
@given(rows=st.lists(st.tuples(st.booleans(), st.integers(0, 20)), min_size=2, max_size=60), k=st.integers(1, 70))
def test_average_precision_brier_and_precision_at_k_equal_brute_force(rows, k):
    y = np.array([int(t) for t, _ in rows])
    p1 = np.array([s / 20 for _, s in rows])
    proba = np.column_stack([1 - p1, p1])
    result = compute_metrics("classifier", ["average_precision", "brier", f"precision_at_{k}"], y, (p1 > 0.5).astype(int), proba)
    assert math.isclose(result.values["brier"], float(np.mean((p1 - y) ** 2)), abs_tol=1e-12)
    if k > len(y):
        assert result.values[f"precision_at_{k}"] is None and any(f"fewer than K = {k}" in w for w in result.warnings)
    else:
        top = sorted(range(len(y)), key=lambda i: (-p1[i], i))[:k]
        assert result.values[f"precision_at_{k}"] == pytest.approx(sum(y[i] for i in top) / k)
    if y.min() == y.max():
        assert result.values["average_precision"] is None
    else:
        assert result.values["average_precision"] == pytest.approx(_brute_average_precision(y, p1))


def test_multiclass_average_precision_and_brier() -> None:
    y = np.array([0, 1, 2, 2, 1, 0, 2])
    proba = RNG.dirichlet([1, 1, 1], len(y))
    result = compute_metrics("classifier", ["average_precision", "brier", "precision_at_3"], y, proba.argmax(1), proba)
    onehot = np.eye(3)[y]
    assert result.values["average_precision"] == pytest.approx(skm.average_precision_score(onehot, proba, average="macro"))
    assert result.values["brier"] == pytest.approx(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
    assert result.values["precision_at_3"] is None and "binary" in result.warnings[0]


def test_new_metrics_direction_and_spec_checks(tmp_path) -> None:
    from engine.model.catalogue import check_metrics

    assert higher_is_better("average_precision") and higher_is_better("precision_at_50") and not higher_is_better("brier")
    assert check_metrics("xgboost.XGBClassifier", ["average_precision", "brier", "precision_at_100"]) == []
    (where, message, hint), = check_metrics("sklearn.svm.SVC", ["precision_at_10"])
    assert where == ("metrics", 0) and "needs predicted probabilities" in message and hint == "set probability: true in params"
    (_, message, _), = check_metrics("sklearn.linear_model.Ridge", ["brier"])
    assert "classifier metric" in message


def test_an_unknown_metric_in_the_spec_is_exit_3_with_a_suggestion(tiny_project) -> None:
    from tests.conftest import run_engine

    spec = tiny_project / "specs" / "shop.yaml"
    spec.write_text(spec.read_text() + """feature_views:
  v:
    spine: orders
    label: amount
    features: [user_id]
models:
  m:
    feature_view: v
    estimator: sklearn.linear_model.Ridge
    metrics: [rmse, precison_at_10]
""")
    code, out, err = run_engine("validate", str(tiny_project))
    assert code == 3 and "models.m.metrics[1]: unknown metric 'precison_at_10' (did you mean 'precision_at_10'?)" in err, err


@settings(max_examples=80, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 20).map(lambda k: k / 20)), min_size=1, max_size=40),
       metric=st.sampled_from(["f1", "accuracy", "precision", "recall"]))
def test_tuned_threshold_maximises_the_metric_among_every_candidate(rows, metric) -> None:
    """issue 11, item 5: the oracle scores every distinct probability as a threshold with
    scikit-learn and finds none better than the tuned one."""
    import warnings

    from sklearn import metrics as skm

    from engine.training.metrics import tune_threshold

    y = np.array([r[0] for r in rows])
    p = np.array([r[1] for r in rows])
    score = {"f1": skm.f1_score, "accuracy": skm.accuracy_score, "precision": skm.precision_score, "recall": skm.recall_score}[metric]

    def at(t):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return score(y, (p >= t).astype(int), **({} if metric == "accuracy" else {"zero_division": 0}))

    chosen = tune_threshold(y, p, metric)
    assert chosen in set(p)
    assert math.isclose(at(chosen), max(at(t) for t in set(p)), abs_tol=1e-12)
