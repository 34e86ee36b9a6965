"""Generate engine/model/estimators.json, the static estimator catalogue, from installed libraries.

Run after upgrading scikit-learn or XGBoost:

    python scripts/generate_estimator_catalogue.py          # rewrite the shipped JSON
    python scripts/generate_estimator_catalogue.py --check  # exit 1 if the shipped JSON is stale

`engine validate` reads only the JSON (it must not import scikit-learn or XGBoost); the test
``tests/training/test_catalogue.py`` regenerates the catalogue in memory and compares.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import numbers
import sys
from pathlib import Path

OUTPUT = Path(__file__).resolve().parents[1] / "engine" / "model" / "estimators.json"

#: The only estimator classes a spec may name. Anything else is "unknown estimator".
ALLOWED = (
    "sklearn.dummy.DummyClassifier",
    "sklearn.dummy.DummyRegressor",
    "sklearn.ensemble.ExtraTreesClassifier",
    "sklearn.ensemble.ExtraTreesRegressor",
    "sklearn.ensemble.GradientBoostingClassifier",
    "sklearn.ensemble.GradientBoostingRegressor",
    "sklearn.ensemble.HistGradientBoostingClassifier",
    "sklearn.ensemble.HistGradientBoostingRegressor",
    "sklearn.ensemble.RandomForestClassifier",
    "sklearn.ensemble.RandomForestRegressor",
    "sklearn.linear_model.ElasticNet",
    "sklearn.linear_model.Lasso",
    "sklearn.linear_model.LinearRegression",
    "sklearn.linear_model.LogisticRegression",
    "sklearn.linear_model.Ridge",
    "sklearn.linear_model.SGDClassifier",
    "sklearn.naive_bayes.GaussianNB",
    "sklearn.neighbors.KNeighborsClassifier",
    "sklearn.neighbors.KNeighborsRegressor",
    "sklearn.neural_network.MLPClassifier",
    "sklearn.neural_network.MLPRegressor",
    "sklearn.svm.LinearSVC",
    "sklearn.svm.SVC",
    "sklearn.svm.SVR",
    "sklearn.tree.DecisionTreeClassifier",
    "sklearn.tree.DecisionTreeRegressor",
    "xgboost.XGBClassifier",
    "xgboost.XGBRegressor",
)

#: predict_proba that exists only for some parameter values (checked below by instantiating).
PROBA_WHEN = {
    "sklearn.svm.SVC": {"probability": [True]},
    "sklearn.linear_model.SGDClassifier": {"loss": ["log_loss", "modified_huber"]},
}

#: XGBoost's wrapper defaults nearly everything to None, so types come from its documentation.
XGB_TYPES: dict[str, list[str]] = {
    "base_score": ["number", "null"],
    "booster": ["string", "null"],
    "colsample_bylevel": ["number", "null"],
    "colsample_bynode": ["number", "null"],
    "colsample_bytree": ["number", "null"],
    "device": ["string", "null"],
    "early_stopping_rounds": ["integer", "null"],
    "enable_categorical": ["boolean"],
    "eval_metric": ["string", "array", "null"],
    "gamma": ["number", "null"],
    "grow_policy": ["string", "null"],
    "importance_type": ["string", "null"],
    "interaction_constraints": ["string", "array", "null"],
    "learning_rate": ["number", "null"],
    "max_bin": ["integer", "null"],
    "max_cat_threshold": ["integer", "null"],
    "max_cat_to_onehot": ["integer", "null"],
    "max_delta_step": ["number", "null"],
    "max_depth": ["integer", "null"],
    "max_leaves": ["integer", "null"],
    "min_child_weight": ["number", "null"],
    "missing": ["number", "null"],
    "monotone_constraints": ["string", "array", "object", "null"],
    "multi_strategy": ["string", "null"],
    "n_estimators": ["integer", "null"],
    "n_jobs": ["integer", "null"],
    "num_parallel_tree": ["integer", "null"],
    "objective": ["string", "null"],
    "random_state": ["integer", "null"],
    "reg_alpha": ["number", "null"],
    "reg_lambda": ["number", "null"],
    "sampling_method": ["string", "null"],
    "scale_pos_weight": ["number", "null"],
    "subsample": ["number", "null"],
    "tree_method": ["string", "null"],
    "validate_parameters": ["boolean", "null"],
    "verbosity": ["integer", "null"],
}
XGB_OPTIONS: dict[str, list[str]] = {
    "booster": ["dart", "gblinear", "gbtree"],
    "grow_policy": ["depthwise", "lossguide"],
    "multi_strategy": ["multi_output_tree", "one_output_per_tree"],
    "sampling_method": ["gradient_based", "uniform"],
    "tree_method": ["approx", "auto", "exact", "hist"],
}
#: Accepted by the XGBoost wrapper even if a future get_params() stops listing them.
XGB_EXTRA = ("device", "early_stopping_rounds", "enable_categorical", "eval_metric", "tree_method")
#: Native XGBoost names the wrapper spells differently (a hint, not an accepted parameter).
XGB_ALIASES = {"alpha": "reg_alpha", "eta": "learning_rate", "lambda": "reg_lambda", "nthread": "n_jobs", "seed": "random_state"}


def json_type(value: object) -> str:
    """The JSON type name of a Python default value ('other' for objects a spec cannot write)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, numbers.Integral):
        return "integer"
    if isinstance(value, numbers.Real):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "other"


def _constraint_types(constraint: object) -> tuple[set[str] | None, set[str]]:
    """(JSON types a scikit-learn constraint accepts or None if unknowable, string options)."""
    from sklearn.utils import _param_validation as pv

    if isinstance(constraint, pv.Hidden):
        return _constraint_types(constraint.constraint)  # accepted; _param_entry keeps it out of hints
    if constraint is None:
        return {"null"}, set()
    if isinstance(constraint, pv.StrOptions):
        return {"string"}, {str(o) for o in constraint.options}
    if isinstance(constraint, (pv.Interval, pv.Options)):
        kind = constraint.type
        if isinstance(kind, type) and issubclass(kind, numbers.Integral):
            return {"integer"}, set()
        return {"number"}, set()
    if isinstance(constraint, pv.MissingValues):
        return {"integer", "number", "string", "null"}, set()
    if isinstance(constraint, pv.HasMethods) or constraint is callable:
        return set(), set()  # an object: a spec cannot write one
    if isinstance(constraint, str):
        named = {
            "boolean": {"boolean"},
            "verbose": {"boolean", "integer"},
            "random_state": {"integer", "null"},
            "cv_object": {"integer", "null"},
            "array-like": {"array"},
            "sparse matrix": set(),
            "nan": {"number"},
        }
        return (named[constraint] if constraint in named else None), set()
    if isinstance(constraint, float) and math.isnan(constraint):
        return {"number"}, set()
    if isinstance(constraint, type):
        import numpy as np

        for base, name in ((bool, "boolean"), (numbers.Integral, "integer"), (numbers.Real, "number"),
                           (str, "string"), (dict, "object"), (list, "array"), (tuple, "array"),
                           (np.ndarray, "array")):
            if issubclass(constraint, base):
                return {name}, set()
        if constraint is object:
            return None, set()
        return set(), set()  # some class instance: not writable in YAML
    return None, set()


def _param_entry(name: str, default: object, constraints: list | None) -> dict:
    entry: dict[str, object] = {"default": json_type(default), "types": None}
    if constraints is None:
        return entry
    from sklearn.utils._param_validation import Hidden

    types: set[str] = set()
    options: set[str] = set()
    hidden: set[str] = set()
    free_string = False
    for constraint in constraints:
        accepted, opts = _constraint_types(constraint)
        if accepted is None:
            return entry  # unknown constraint: check nothing beyond the default's type
        if "string" in accepted and not opts:
            free_string = True
        types |= accepted
        (hidden if isinstance(constraint, Hidden) else options).update(opts)
    entry["types"] = sorted(types)
    if (options or hidden) and not free_string:
        entry["options"] = sorted(options)  # shown in hints
        if hidden - options:
            entry["hidden_options"] = sorted(hidden - options)  # accepted, never suggested
    return entry


def describe(path: str) -> dict:
    """The catalogue entry of one estimator class (imports it)."""
    from sklearn.base import is_classifier, is_regressor

    module, _, name = path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    instance = cls()
    params = instance.get_params(deep=False)
    xgb = path.startswith("xgboost.")
    task = "classifier" if is_classifier(instance) else "regressor" if is_regressor(instance) else None
    if task is None:
        raise SystemExit(f"{path} is neither a classifier nor a regressor")
    constraints = getattr(cls, "_parameter_constraints", {})
    entries = {}
    for key in sorted(set(params) | (set(XGB_EXTRA) if xgb else set())):
        if xgb:
            entry = {"default": json_type(params.get(key)), "types": XGB_TYPES.get(key)}
            if key in XGB_OPTIONS:
                entry["options"] = XGB_OPTIONS[key]
        else:
            entry = _param_entry(key, params[key], constraints.get(key))
        entries[key] = entry
    proba_when = PROBA_WHEN.get(path)
    if proba_when:
        for key, values in proba_when.items():
            for value in values:
                if not hasattr(cls(**{key: value}), "predict_proba"):
                    raise SystemExit(f"{path}({key}={value!r}) has no predict_proba: update PROBA_WHEN")
    sample_weight = "sample_weight" in inspect.signature(cls.fit).parameters
    if "class_weight" in params:
        class_weight = "param"
    elif task == "classifier" and sample_weight:
        class_weight = "sample_weight"
    else:
        class_weight = None
    entry = {
        "task": task,
        "predict_proba": hasattr(instance, "predict_proba"),
        "class_weight": class_weight,
        "sample_weight": sample_weight,
        "seed_param": "random_state" if "random_state" in params else None,
        "params": entries,
    }
    if proba_when:
        entry["predict_proba_when"] = proba_when
    if xgb:
        entry["aliases"] = dict(sorted(XGB_ALIASES.items()))
    return entry


def build_catalogue() -> dict:
    """The whole catalogue as a JSON-ready dict (deterministic)."""
    import warnings

    import sklearn
    import xgboost

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notices of defaults are not our business here
        estimators = {path: describe(path) for path in sorted(ALLOWED)}
    return {
        "generated_from": {"sklearn": sklearn.__version__, "xgboost": xgboost.__version__},
        "estimators": estimators,
    }


def render(catalogue: dict) -> str:
    """The JSON text exactly as shipped."""
    return json.dumps(catalogue, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the shipped JSON is stale")
    args = parser.parse_args(argv)
    text = render(build_catalogue())
    if args.check:
        stale = not OUTPUT.exists() or OUTPUT.read_text(encoding="utf-8") != text
        sys.stderr.write(f"{OUTPUT} is {'stale' if stale else 'up to date'}\n")
        return 1 if stale else 0
    OUTPUT.write_text(text, encoding="utf-8")
    sys.stderr.write(f"wrote {OUTPUT}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
