"""The static model catalogue: metric names and directions, split checks, and checks of a model's
estimator, params, class_weight and metrics; must not import sklearn/xgboost.

The knowledge comes from ``estimators.json`` (package data), generated from the installed libraries
by ``scripts/generate_estimator_catalogue.py``. `engine validate` calls these checks, so this module
stays pure: no scikit-learn, XGBoost, pandas or numpy import, no I/O beyond reading the JSON.

Each check returns problems as ``(sub_path, message, hint)`` tuples; ``sub_path`` is relative to the
model (``("params", "n_estimators")``), and the caller turns it into a positioned ``Problem``.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from datetime import datetime, timezone
from importlib import resources
from typing import Any

from engine.spec.schema import json_type  # noqa: F401  (part of this module's API)
from engine.errors import did_you_mean
from engine.model.objects import SplitKind

CheckProblem = tuple[tuple[str | int, ...], str, str | None]

CLASSIFIER_METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "average_precision", "brier")
REGRESSOR_METRICS: tuple[str, ...] = ("mae", "rmse", "r2")
PROBA_METRICS: frozenset[str] = frozenset({"roc_auc", "log_loss", "average_precision", "brier"})
#: precision_at_K: the precision among the K test rows most likely positive (binary classifiers).
PRECISION_AT_K = re.compile(r"^precision_at_([1-9][0-9]{0,8})$")


def metric_kind(metric: str) -> str | None:
    """'classifier', 'regressor', or None for an unknown metric name.

    >>> metric_kind("precision_at_100"), metric_kind("rmse"), metric_kind("precision_at_0")
    ('classifier', 'regressor', None)
    """
    if metric in CLASSIFIER_METRICS or PRECISION_AT_K.match(metric):
        return "classifier"
    return "regressor" if metric in REGRESSOR_METRICS else None


def needs_proba(metric: str) -> bool:
    return metric in PROBA_METRICS or bool(PRECISION_AT_K.match(metric))

# Larger is better, except where False. The one table: training, the registry's ``best:<metric>``
# and serving all read it.
METRIC_HIGHER_IS_BETTER: dict[str, bool] = {
    "accuracy": True, "precision": True, "recall": True, "f1": True, "roc_auc": True, "r2": True,
    "log_loss": False, "mae": False, "mse": False, "rmse": False, "brier": False, "average_precision": True,
}  # fmt: skip


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (unknown metrics: larger is better).

    >>> higher_is_better("roc_auc"), higher_is_better("rmse")
    (True, False)
    """
    return METRIC_HIGHER_IS_BETTER.get(metric, True)




def parse_utc(text: str) -> datetime:
    """A boundary string as an aware UTC datetime (naive strings are UTC).

    >>> parse_utc("2013-11-01").isoformat()
    '2013-11-01T00:00:00+00:00'
    >>> parse_utc("2013-11-01T02:00:00+02:00").isoformat()
    '2013-11-01T00:00:00+00:00'
    """
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def check_split(by: SplitKind, test_from: str | None = None, validation_from: str | None = None,
                test_size: float | None = None, validation_size: float | None = None, test_until: str | None = None) -> list[CheckProblem]:
    """Static problems of a split that the JSON Schema cannot express (sub-paths under ``split``).

    >>> check_split(SplitKind.RANDOM, test_size=0.6, validation_size=0.5)[0][1]
    'test_size + validation_size must be below 1 (got 1.1), or nothing is left to train on'
    """
    problems: list[CheckProblem] = []
    if by == SplitKind.TIME:
        parsed = {}
        for key, text in (("test_from", test_from), ("validation_from", validation_from), ("test_until", test_until)):
            if text is None:
                continue
            try:
                parsed[key] = parse_utc(text)
            except ValueError:
                problems.append((("split", key), f"{text!r} is not a date or timestamp", "write e.g. '2013-11-01'"))
        if "test_until" in parsed and "test_from" in parsed and parsed["test_until"] <= parsed["test_from"]:
            problems.append((("split", "test_until"), f"test_until ({test_until}) must be after test_from ({test_from})", None))
        if "validation_from" in parsed and "test_from" in parsed and parsed["validation_from"] >= parsed["test_from"]:
            problems.append((("split", "validation_from"),
                             f"validation_from ({validation_from}) must be before test_from ({test_from})", None))
    elif by == SplitKind.RANDOM:
        total = (test_size if test_size is not None else 0.2) + (validation_size or 0.0)
        if total >= 1:
            problems.append((("split", "validation_size" if validation_size else "test_size"),
                             f"test_size + validation_size must be below 1 (got {round(total, 6)}), "
                             "or nothing is left to train on", None))
    return problems





_TYPE_WORDS = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "null": "null",
    "array": "a list",
    "object": "a mapping",
}


@lru_cache(maxsize=1)
def load_catalogue() -> dict[str, Any]:
    """The shipped catalogue: ``{"generated_from": {...}, "estimators": {class_path: entry}}``.

    >>> load_catalogue()["estimators"]["xgboost.XGBClassifier"]["task"]
    'classifier'
    """
    text = resources.files("engine.model").joinpath("estimators.json").read_text(encoding="utf-8")
    return json.loads(text)


def estimator_entry(estimator: str) -> dict[str, Any] | None:
    """The catalogue entry of an allow-listed class path, or None."""
    return load_catalogue()["estimators"].get(estimator)


def estimator_task(estimator: str) -> str | None:
    """'classifier', 'regressor', or None for an unknown class path."""
    entry = estimator_entry(estimator)
    return entry["task"] if entry else None


_TREE_LEARNERS = ("sklearn.ensemble.", "sklearn.tree.", "xgboost.")


def input_dtype(estimator: str) -> str:
    """The float type a model's input matrix has, in training and in every scoring path.

    Tree learners split on float32 values: scikit-learn's trees and forests and XGBoost convert to
    float32 themselves, and HistGradientBoosting is given float32 too, so that float features whose
    last bits depend on the order a backend summed in (a windowed mean on DuckDB or on Spark) fall
    in the same bins and give the same model. Other estimators see float64.

    >>> input_dtype("sklearn.ensemble.HistGradientBoostingClassifier"), input_dtype("sklearn.linear_model.Ridge")
    ('float32', 'float64')
    """
    return "float32" if estimator.startswith(_TREE_LEARNERS) else "float64"


def supports_proba(estimator: str, params: Mapping[str, object] | None = None) -> bool:
    """Whether the estimator, built with ``params``, offers ``predict_proba``.

    >>> supports_proba("sklearn.svm.SVC"), supports_proba("sklearn.svm.SVC", {"probability": True})
    (False, True)
    """
    entry = estimator_entry(estimator)
    if entry is None:
        return False
    if entry["predict_proba"]:
        return True
    when = entry.get("predict_proba_when") or {}
    return any((params or {}).get(key) in values for key, values in when.items())


def _shown(value: object) -> str:
    kind = json_type(value)
    if kind == "string":
        return f"the string {value!r}"
    if kind == "boolean":
        return "true" if value else "false"
    if kind in ("integer", "number"):
        return repr(value)
    return _TYPE_WORDS.get(kind, kind)


def _accepts(types: Sequence[str], value: object) -> bool:
    kind = json_type(value)
    return kind in types or (kind == "integer" and "number" in types)


def _expected(types: Sequence[str]) -> str:
    order = ["integer", "number", "string", "boolean", "array", "object", "null"]
    words = [_TYPE_WORDS[t] for t in order if t in types and not (t == "integer" and "number" in types)]
    return " or ".join(words)


def _check_value(estimator: str, name: str, spec: Mapping[str, Any], value: object) -> CheckProblem | None:
    where = ("params", name)
    types = spec.get("types")
    if types is None:
        default = spec["default"]
        if default in ("integer", "number") and json_type(value) in ("string", "boolean"):
            return where, f"expected a number for {name}, got {_shown(value)}", None
        if default == "boolean" and json_type(value) in ("string", "integer", "number"):
            return where, f"expected true or false for {name}, got {_shown(value)}", None
        return None
    if not types:
        return where, f"{name} cannot be set from a spec (it takes a Python object)", None
    if not _accepts(types, value):
        return where, f"expected {_expected(types)} for {name}, got {_shown(value)}", None
    options = spec.get("options")
    accepted = set(options or ()) | set(spec.get("hidden_options", ()))
    if accepted and isinstance(value, str) and value not in accepted:
        hint = did_you_mean(value, options) or "expected one of: " + ", ".join(options)
        return where, f"{value!r} is not a valid value of {name} for {estimator}", hint
    return None


def check_model_params(estimator: str, params: Mapping[str, object], class_weight: object) -> list[CheckProblem]:
    """Problems with a model's estimator class path, its params and its class_weight.

    >>> check_model_params("xgboost.XGBClassifier", {"n_estimatorz": 3}, None)
    [(('params', 'n_estimatorz'), "'n_estimatorz' is not a parameter of xgboost.XGBClassifier", "did you mean 'n_estimators'?")]
    """
    entry = estimator_entry(estimator)
    if entry is None:
        allowed = sorted(load_catalogue()["estimators"])
        hint = _suggest_estimator(estimator, allowed)
        return [(("estimator",), f"unknown estimator {estimator!r}", hint)]
    problems: list[CheckProblem] = []
    known = entry["params"]
    aliases = entry.get("aliases", {})
    for name, value in params.items():
        spec = known.get(name)
        if spec is None:
            if name in aliases:
                hint = f"the scikit-learn interface of XGBoost calls it {aliases[name]!r}"
            elif name == "class_weight":
                hint = "set class_weight on the model, next to params"
            else:
                hint = did_you_mean(name, list(known))
            problems.append((("params", name), f"{name!r} is not a parameter of {estimator}", hint))
            continue
        problem = _check_value(estimator, name, spec, value)
        if problem:
            problems.append(problem)
    if class_weight is not None:
        problems.extend(_check_class_weight(estimator, entry, params, class_weight))
    return problems


def _suggest_estimator(estimator: str, allowed: list[str]) -> str | None:
    """Did-you-mean on the class name (the part people misremember), else the module's classes."""
    by_name = {path.rsplit(".", 1)[-1]: path for path in allowed}
    name = estimator.rsplit(".", 1)[-1]
    exact = {key.lower(): path for key, path in by_name.items()}.get(name.lower())
    if exact and exact != estimator:
        return f"did you mean {exact!r}?"
    close = difflib.get_close_matches(name, sorted(by_name), n=1, cutoff=0.85)
    if close:
        return f"did you mean {by_name[close[0]]!r}?"
    module = estimator.rpartition(".")[0]
    same_module = [path for path in allowed if path.rpartition(".")[0] == module]
    if same_module:
        return "supported in " + module + ": " + ", ".join(p.rsplit(".", 1)[-1] for p in same_module)
    return None


def _check_class_weight(estimator: str, entry: Mapping[str, Any], params: Mapping[str, object],
                        class_weight: object) -> list[CheckProblem]:
    where = ("class_weight",)
    if entry["task"] != "classifier":
        return [(where, f"class_weight applies to classifiers; {estimator} is a regressor", None)]
    if entry["class_weight"] is None:
        return [(where, f"{estimator} supports neither class_weight nor sample weights",
                 "remove class_weight or choose another estimator")]
    if "class_weight" in params:
        return [(where, "class_weight is set twice (here and in params)", "keep only this one")]
    if not (class_weight == "balanced" or isinstance(class_weight, Mapping)):
        return [(where, "expected 'balanced' or a mapping class -> weight", None)]
    # entry["class_weight"] == "sample_weight" (XGBoost, GradientBoosting, ...): the engine turns the
    # weights into per-row sample weights at fit time; nothing to report.
    return []


def default_metrics(task: str, has_proba: bool) -> tuple[str, ...]:
    """Metrics computed when the spec names none.

    >>> default_metrics("classifier", has_proba=False)
    ('accuracy', 'f1')
    """
    if task == "classifier":
        return ("accuracy", "f1", "roc_auc", "log_loss") if has_proba else ("accuracy", "f1")
    if task == "regressor":
        return REGRESSOR_METRICS
    raise ValueError(f"unknown task {task!r}")


def computed_metrics(estimator: str, metrics: Sequence[str], params: Mapping[str, object] | None = None) -> tuple[str, ...]:
    """The metrics training computes for a model: its ``metrics``, or the defaults of its task
    (empty for an unknown estimator).

    >>> computed_metrics("sklearn.linear_model.LogisticRegression", [])
    ('accuracy', 'f1', 'roc_auc', 'log_loss')
    """
    if metrics:
        return tuple(metrics)
    entry = estimator_entry(estimator)
    return default_metrics(entry["task"], supports_proba(estimator, params)) if entry else ()


def check_metrics(estimator: str, metrics: Sequence[str], params: Mapping[str, object] | None = None) -> list[CheckProblem]:
    """Problems with the model's ``metrics`` list given the estimator's task and predict_proba.

    >>> check_metrics("sklearn.linear_model.Ridge", ["rmse", "roc_auc"])[0][1]
    "'roc_auc' is a classifier metric; sklearn.linear_model.Ridge is a regressor"
    """
    entry = estimator_entry(estimator)
    if entry is None:
        return []  # reported by check_model_params
    task = entry["task"]
    problems: list[CheckProblem] = []
    fitting = CLASSIFIER_METRICS if task == "classifier" else REGRESSOR_METRICS
    for i, metric in enumerate(metrics):
        where = ("metrics", i)
        kind = metric_kind(metric)
        if kind is None:
            problems.append((where, f"unknown metric {metric!r}", did_you_mean(metric, list(fitting))))
        elif kind != task:
            other = "classifier" if task == "regressor" else "regressor"
            problems.append((where, f"{metric!r} is a {other} metric; {estimator} is a {task}",
                             "use one of: " + ", ".join(fitting)))
        elif needs_proba(metric) and not supports_proba(estimator, params):
            when = entry.get("predict_proba_when")
            hint = None
            if when:
                key, values = next(iter(when.items()))
                hint = f"set {key}: {_yaml_value(values[0])} in params"
            problems.append((where, f"{metric!r} needs predicted probabilities, which {estimator} does not give", hint))
    return problems


def _yaml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
