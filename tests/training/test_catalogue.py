"""The static estimator catalogue: freshness, purity (validate imports no sklearn), and its checks."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from engine.errors import format_path
from engine.model.catalogue import (
    check_metrics,
    check_model_params,
    estimator_task,
    load_catalogue,
    supports_proba,
)

from . import check_golden

REPO = Path(__file__).resolve().parents[2]


def _generator():
    path = REPO / "scripts" / "generate_estimator_catalogue.py"
    spec = importlib.util.spec_from_file_location("generate_estimator_catalogue", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_catalogue_equals_a_fresh_generation_from_installed_libraries():
    """An sklearn/xgboost upgrade that changes parameters fails here: rerun the generator script."""
    gen = _generator()
    fresh = gen.build_catalogue()
    shipped_text = (REPO / "engine" / "model" / "estimators.json").read_text(encoding="utf-8")
    assert json.loads(shipped_text) == fresh, "run: python scripts/generate_estimator_catalogue.py"
    assert gen.render(fresh) == shipped_text


def test_catalogue_is_package_data_loaded_via_importlib_resources():
    catalogue = load_catalogue()
    assert set(catalogue["estimators"]) == set(_generator().ALLOWED)
    assert estimator_task("xgboost.XGBClassifier") == "classifier"
    assert estimator_task("sklearn.linear_model.Ridge") == "regressor"
    assert estimator_task("os.system") is None


def test_J1_checks_import_no_sklearn_xgboost_pandas_or_numpy():
    """`engine validate` must stay pure and fast: run the checks in a fresh interpreter."""
    code = (
        "import sys\n"
        "from engine.model import catalogue as c\n"
        "from engine.training import metrics, splits\n"
        "c.check_model_params('xgboost.XGBClassifier', {'n_estimatorz': 1, 'max_depth': 'x'}, 'balanced')\n"
        "c.check_model_params('sklearn.linear_model.LogisticRegresion', {}, None)\n"
        "c.check_metrics('sklearn.svm.SVC', ['roc_auc', 'mae'])\n"
        "splits.check_split('time', '2013-11-01', '2013-12-01')\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'xgboost', 'pandas', 'numpy', 'scipy'))\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def _render(problems) -> str:
    lines = []
    for sub_path, message, hint in problems:
        lines.append(f"models.m.{format_path(sub_path)}: {message}" + (f" ({hint})" if hint else ""))
    return "\n".join(lines) if lines else "<no problems>"


BAD_MODELS = {
    "unknown_estimator_typo": ("sklearn.linear_model.LogisticRegresion", {"C": 1.0}, None, []),
    "unknown_estimator_wrong_module": ("sklearn.ensemble.LogisticRegression", {}, None, []),
    "unknown_estimator_not_allowed": ("sklearn.pipeline.Pipeline", {}, None, []),
    "unknown_estimator_module_classes": ("sklearn.ensemble.AdaBoostClassifier", {}, None, []),
    "unknown_param_did_you_mean": ("xgboost.XGBClassifier", {"n_estimatorz": 200, "max_depht": 6}, None, []),
    "xgboost_native_aliases": ("xgboost.XGBClassifier", {"eta": 0.1, "seed": 3, "lambda": 1.0}, None, []),
    "type_mismatches": (
        "sklearn.ensemble.RandomForestClassifier",
        {"n_estimators": "200", "max_depth": 2.5, "bootstrap": "yes", "min_samples_split": True},
        None,
        [],
    ),
    "xgboost_type_mismatches": ("xgboost.XGBRegressor", {"max_depth": "6", "learning_rate": "fast", "enable_categorical": 1}, None, []),
    "string_options": ("sklearn.linear_model.LogisticRegression", {"solver": "lbfgz", "penalty": "l3"}, None, []),
    "xgboost_string_options": ("xgboost.XGBClassifier", {"tree_method": "histogram"}, None, []),
    "class_weight_on_regressor": ("sklearn.linear_model.Ridge", {}, "balanced", []),
    "class_weight_unsupported": ("sklearn.neighbors.KNeighborsClassifier", {}, {"1": 2.0}, []),
    "class_weight_twice": ("sklearn.linear_model.LogisticRegression", {"class_weight": "balanced"}, "balanced", []),
    "class_weight_in_xgboost_params": ("xgboost.XGBClassifier", {"class_weight": "balanced"}, None, []),
    "metrics_vs_task": ("sklearn.linear_model.Ridge", {}, None, ["rmse", "roc_auc", "accuracy"]),
    "metrics_need_proba": ("sklearn.svm.LinearSVC", {}, None, ["accuracy", "roc_auc", "log_loss"]),
    "metrics_need_proba_conditional": ("sklearn.linear_model.SGDClassifier", {"loss": "hinge"}, None, ["log_loss"]),
    "metrics_unknown": ("xgboost.XGBClassifier", {}, None, ["rocauc", "f1"]),
}


@pytest.mark.parametrize("case", sorted(BAD_MODELS))
def test_bad_model_specs_golden(case):
    """Messages a user sees for a bad `models:` entry (E3-style semantic errors)."""
    estimator, params, class_weight, metrics = BAD_MODELS[case]
    problems = check_model_params(estimator, params, class_weight) + check_metrics(estimator, metrics, params)
    assert problems, "each case must produce at least one problem"
    text = f"estimator: {estimator}\nparams: {params!r}\nclass_weight: {class_weight!r}\nmetrics: {metrics!r}\n"
    check_golden(f"catalogue_{case}", text + _render(problems))


def test_unknown_estimator_is_the_only_problem_reported():
    problems = check_model_params("xgboost.XGBClassifer", {"whatever": 1}, "balanced")
    assert problems == [(("estimator",), "unknown estimator 'xgboost.XGBClassifer'", "did you mean 'xgboost.XGBClassifier'?")]


def test_design_example_and_class_weight_on_xgboost_are_valid():
    """XGBoost has no class_weight param; the engine applies it as sample weights, so it is allowed."""
    params = {"n_estimators": 200, "max_depth": 6, "random_state": 7, "eval_metric": "logloss",
              "early_stopping_rounds": 10, "tree_method": "hist", "enable_categorical": True, "device": "cpu"}
    assert check_model_params("xgboost.XGBClassifier", params, "balanced") == []
    assert check_model_params("xgboost.XGBClassifier", {}, {"0": 1.0, "1": 5.0}) == []
    assert check_model_params("sklearn.ensemble.GradientBoostingClassifier", {}, "balanced") == []
    assert check_metrics("xgboost.XGBClassifier", ["roc_auc", "log_loss"]) == []
    assert check_model_params("sklearn.neural_network.MLPClassifier", {"hidden_layer_sizes": [64, 32]}, None) == []
    assert check_model_params("sklearn.linear_model.LogisticRegression", {"C": 1, "max_iter": 200}, None) == []


def test_predict_proba_conditional_on_params():
    assert not supports_proba("sklearn.svm.SVC")
    assert supports_proba("sklearn.svm.SVC", {"probability": True})
    assert supports_proba("sklearn.linear_model.SGDClassifier", {"loss": "log_loss"})
    assert not supports_proba("sklearn.linear_model.SGDClassifier", {"loss": "hinge"})
    assert check_metrics("sklearn.svm.SVC", ["roc_auc"], {"probability": True}) == []


def _defaults(path: str) -> dict:
    module, _, name = path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = cls().get_params(deep=False)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()
            if v is None or isinstance(v, (bool, int, float, str, tuple))}


@pytest.mark.parametrize("path", sorted(load_catalogue()["estimators"]))
def test_every_default_value_passes_the_static_check(path):
    """No false positives on the library's own defaults."""
    assert check_model_params(path, _defaults(path), None) == []


PROBE_VALUES = ("zzz_not_an_option", 1.5, 3, True, None, [1, 2], {"a": 1})


@pytest.mark.parametrize("path", sorted(p for p in load_catalogue()["estimators"] if p.startswith("sklearn.")))
def test_static_type_errors_are_errors_for_sklearn_too(path):
    """Oracle: whenever the static check rejects a value, scikit-learn's own validation rejects it.

    Two deliberate exceptions where the engine is stricter than scikit-learn: ``true`` for a number
    (Python's bool is an int) and a mapping for a list (a dict has a length, so it is "array-like").
    """
    from sklearn.utils._param_validation import InvalidParameterError

    module, _, name = path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    checked = 0
    for param, spec in load_catalogue()["estimators"][path]["params"].items():
        types = spec["types"] or []
        for value in PROBE_VALUES:
            if value is True and "boolean" not in types and {"integer", "number"} & set(types):
                continue
            if isinstance(value, dict) and "array" in types:
                continue
            if not check_model_params(path, {param: value}, None):
                continue
            checked += 1
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                estimator = cls().set_params(**{param: value})
                with pytest.raises(InvalidParameterError):
                    estimator._validate_params()
    assert checked > 0
