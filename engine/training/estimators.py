"""Build and fit allow-listed estimators and encode class labels; must not store models or pick versions.

scikit-learn, XGBoost, numpy and pandas are imported inside functions. Only class paths listed in
the static catalogue are ever imported: a spec can never make the engine import an arbitrary module.

Determinism: ``random_state`` comes from the split seed when the spec does not set it. XGBoost
results are deterministic for a given seed *and thread count*, so XGBoost gets
``n_jobs=XGBOOST_N_JOBS`` (a constant, not the machine's core count) unless the spec sets ``n_jobs``.

Classifiers are trained on label *codes* ``0..n-1`` (XGBoost requires them; scikit-learn does not
mind), produced by a ``LabelMapping`` stored with the model so predictions can be decoded.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import DataError, ExecutionError
from engine.model.catalogue import estimator_entry

#: Threads given to XGBoost when the spec does not say: fixed, so a model retrains identically.
XGBOOST_N_JOBS = 4


def _who(estimator: str, model_name: str | None) -> str:
    return f"model:{model_name} ({estimator})" if model_name else estimator


def build_estimator(estimator: str, params: Mapping[str, object], *, seed: int | None,
                    class_weight: object = None, model_name: str | None = None) -> Any:
    """An unfitted estimator of an allow-listed class with ``params`` applied.

    ``class_weight`` is None, ``'balanced'`` or a mapping *label code* -> weight (see
    ``resolve_class_weight``); it becomes the ``class_weight`` param where the estimator has one,
    otherwise ``fit`` turns it into sample weights. Bad parameter values raise ``ExecutionError``
    naming the model (scikit-learn's own message attached).
    """
    entry = estimator_entry(estimator)
    if entry is None:
        raise ExecutionError(f"{_who(estimator, model_name)}: unknown estimator {estimator!r}")
    module_name, _, class_name = estimator.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    values = dict(params)
    if seed is not None and entry["seed_param"] and entry["seed_param"] not in values:
        values[entry["seed_param"]] = seed
    if estimator.startswith("xgboost.") and "n_jobs" not in values:
        values["n_jobs"] = XGBOOST_N_JOBS
    if class_weight is not None and entry["class_weight"] == "param":
        values["class_weight"] = class_weight
    if isinstance(values.get("hidden_layer_sizes"), list):
        values["hidden_layer_sizes"] = tuple(values["hidden_layer_sizes"])
    instance = cls()
    try:
        instance.set_params(**values)
        if hasattr(instance, "_parameter_constraints"):  # scikit-learn's own data-free check
            instance._validate_params()
    except (ValueError, TypeError) as exc:
        raise ExecutionError(f"{_who(estimator, model_name)}: invalid params: {exc}") from exc
    return instance


def fit(estimator: Any, X, y, *, sample_weight=None, class_weight: object = None, eval_set=None,
        model_name: str | None = None) -> Any:
    """Fit ``estimator`` and return it.

    ``class_weight`` ('balanced' or code -> weight) is applied here as per-row sample weights when the
    estimator has no ``class_weight`` param (XGBoost, GradientBoosting, ...); it multiplies any given
    ``sample_weight``. ``eval_set`` (a list of ``(X, y)``) is passed to XGBoost when the model
    stops early (``early_stopping_rounds``) or has callbacks, which read it; otherwise XGBoost would
    only score the set after every round, work nothing reads (2.0 of 6.5 s for the example's
    200-round model). scikit-learn estimators ignore it. Errors raised by the library become
    ``ExecutionError`` naming the model.
    """
    import numpy as np

    kwargs: dict[str, Any] = {}
    params = estimator.get_params()
    if class_weight is not None and "class_weight" not in params:
        from sklearn.utils.class_weight import compute_sample_weight

        weights = compute_sample_weight(class_weight, np.asarray(y))
        sample_weight = weights if sample_weight is None else np.asarray(sample_weight, dtype=float) * weights
    fit_params = inspect.signature(estimator.fit).parameters
    if sample_weight is not None:
        if "sample_weight" not in fit_params:
            name = type(estimator).__name__
            raise ExecutionError(f"{model_name or name}: {name} does not accept sample weights")
        kwargs["sample_weight"] = sample_weight
    is_xgb = type(estimator).__module__.startswith("xgboost")
    reads_eval_set = params.get("early_stopping_rounds") is not None or bool(params.get("callbacks"))
    if eval_set is not None and is_xgb and reads_eval_set:
        kwargs["eval_set"] = list(eval_set)
        kwargs["verbose"] = False
    try:
        estimator.fit(X, y, **kwargs)
    except (ValueError, TypeError, ArithmeticError) as exc:  # XGBoostError is a ValueError
        raise ExecutionError(f"{model_name or type(estimator).__name__}: training failed: {exc}") from exc
    return estimator


def _json_safe(value: object) -> object:
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalar -> Python
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass(frozen=True)
class LabelMapping:
    """Sorted distinct class labels; code ``i`` stands for ``classes[i]``. JSON-safe."""

    classes: tuple

    def encode(self, values, *, label: str = "label", split: str = "test"):
        """Label values -> int codes (numpy). Missing or unseen labels raise ``DataError``."""
        import numpy as np
        import pandas as pd

        series = pd.Series(values)
        _reject_missing(series, label, split)
        normalised = series.map(_json_safe)
        codes = pd.Index(list(self.classes), dtype=object).get_indexer(normalised.astype(object)).astype(np.int64)
        unseen = normalised[codes < 0]
        if len(unseen):
            shown = ", ".join(repr(v) for v in sorted(set(unseen.tolist()), key=repr)[:5])
            raise DataError(f"label {label!r} has values in the {split} split that the training split "
                            f"does not have: {shown}")
        return codes

    def decode(self, codes):
        """Int codes -> label values (numpy array of the label type)."""
        import numpy as np

        return np.asarray(self.classes, dtype=object if isinstance(self.classes[0], str) else None)[np.asarray(codes)]


def _reject_missing(series, label: str, split: str) -> None:
    import pandas as pd

    missing = int(pd.isna(series).sum())
    if missing:
        raise DataError(f"label {label!r} has {missing} missing values (NULL or NaN) in the {split} split")


def fit_label_mapping(y, *, label: str = "label", split: str = "training") -> LabelMapping:
    """The mapping of a classifier's training labels (bool, int, whole floats or strings)."""
    import pandas as pd

    series = pd.Series(y)
    _reject_missing(series, label, split)
    distinct = {_json_safe(v) for v in series.unique().tolist()}
    kinds = {bool if isinstance(v, bool) else int if isinstance(v, int) else type(v) for v in distinct}
    if kinds - {bool, int, str}:
        bad = sorted((v for v in distinct if not isinstance(v, (bool, int, str))), key=repr)[:3]
        shown = ", ".join(repr(v) for v in bad)
        raise DataError(f"label {label!r} has non-class values ({shown}); a classifier needs "
                        "booleans, integers or strings (use a regressor for a continuous target)")
    if len(kinds) > 1:
        raise DataError(f"label {label!r} mixes {' and '.join(sorted(k.__name__ for k in kinds))} values")
    classes = tuple(sorted(distinct))
    if len(classes) < 2:
        shown = ", ".join(_show_label(c) for c in classes) or "none"
        raise DataError(f"label {label!r} has one class ({shown}) in the {split} split; "
                        "a classifier needs at least two")
    return LabelMapping(classes)


def _show_label(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)


def resolve_class_weight(class_weight: object, mapping: LabelMapping) -> object:
    """The spec's class_weight with keys turned into label codes ('balanced' and None pass through).

    Spec keys are strings (YAML mapping keys): ``"1"`` names label 1, ``"true"`` names True.
    Classes not named get weight 1. A key naming no class is a ``DataError``.
    """
    if class_weight is None or class_weight == "balanced":
        return class_weight
    if not isinstance(class_weight, Mapping):
        raise ValueError(f"class_weight must be 'balanced' or a mapping (got {class_weight!r})")
    by_text = {}
    for code, value in enumerate(mapping.classes):
        names = {_show_label(value).strip("'"), str(value)}
        for name in names:
            by_text[name] = code
    resolved = {code: 1.0 for code in range(len(mapping.classes))}
    for key, weight in class_weight.items():
        text = _show_label(key).strip("'") if not isinstance(key, str) else key
        if text not in by_text:
            shown = ", ".join(_show_label(c) for c in mapping.classes)
            raise DataError(f"class_weight names class {text!r}, which is not a label value (labels: {shown})")
        if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
            raise DataError(f"class_weight for class {text!r} must be a non-negative number (got {weight!r})")
        resolved[by_text[text]] = float(weight)
    return resolved
