"""Model metrics on one split, computed with sklearn.metrics; must not decide anything about the registry.

Importing this module is cheap (numpy and scikit-learn load inside functions) because the static
catalogue, which `engine validate` uses, reads the metric tables below.

Conventions, pinned by tests:

- Binary classification: the positive class is the *larger* label (``True``, ``1``, ``"yes"`` over
  ``"no"``), i.e. the last entry of ``classes``; roc_auc uses the probability of that class.
- Multiclass: precision, recall and f1 are **macro** averages; roc_auc and average_precision are
  one-vs-rest macro; brier is the multi-class Brier score (mean over rows of the sum over classes
  of the squared probability error; binary: sklearn's, on the positive class).
- precision_at_K: the share of positives among the K rows with the highest positive-class
  probability (ties: the earlier row first); binary only, and undefined when the split has fewer
  than K rows.
- A metric that is undefined on the data (roc_auc with one class in the test split, precision with
  no positive predictions, r2 on one row) is stored as ``None`` and explained in ``warnings``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.model.catalogue import CLASSIFIER_METRICS, METRIC_HIGHER_IS_BETTER, PRECISION_AT_K, PROBA_METRICS, REGRESSOR_METRICS, default_metrics, metric_kind  # noqa: F401 (re-exported)

_HIGHER_IS_BETTER = {m: METRIC_HIGHER_IS_BETTER[m] for m in (*CLASSIFIER_METRICS, *REGRESSOR_METRICS)}  # the ones computed here


@dataclass(frozen=True)
class MetricResult:
    """Metric values (``None`` when undefined) and one warning per undefined metric."""

    values: dict[str, float | None] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (for 'best by metric' lookups).

    >>> higher_is_better("roc_auc"), higher_is_better("rmse")
    (True, False)
    """
    if PRECISION_AT_K.match(metric):
        return True
    if metric not in _HIGHER_IS_BETTER:
        raise ValueError(f"unknown metric {metric!r}")
    return _HIGHER_IS_BETTER[metric]


def compute_metrics(task: str, metrics: Sequence[str], y_true, y_pred, y_proba=None,
                    classes: Sequence[object] | None = None) -> MetricResult:
    """Compute ``metrics`` for one split.

    Classifiers: ``y_true``/``y_pred`` are labels (or label codes), ``y_proba`` has one column per
    entry of ``classes`` in that order; ``classes`` defaults to ``range(n_columns)`` when
    probabilities are given, else to the sorted labels seen in ``y_true`` and ``y_pred``.
    Regressors: ``y_true``/``y_pred`` are numbers. Raises ValueError for a metric that does not fit
    the task or needs probabilities that were not given (the spec checks catch these earlier).
    """
    import numpy as np

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if len(y_true) == 0 or len(y_true) != len(y_pred):
        raise ValueError(f"need equal, non-zero lengths (got {len(y_true)} and {len(y_pred)})")
    if task not in ("classifier", "regressor"):
        raise ValueError(f"unknown task {task!r}")
    values: dict[str, float | None] = {}
    warnings: list[str] = []
    for metric in metrics:
        if metric_kind(metric) != task:
            raise ValueError(f"metric {metric!r} does not apply to a {task}")
        if task == "classifier":
            value, why = _classifier_metric(metric, y_true, y_pred, y_proba, classes)
        else:
            value, why = _regressor_metric(metric, y_true, y_pred)
        if value is None or math.isnan(value):
            values[metric] = None
            warnings.append(f"{metric} is undefined: {why or 'the result is NaN'}")
        else:
            values[metric] = float(value)
    return MetricResult(values, tuple(warnings))


def _classes(y_true, y_pred, y_proba, classes):
    import numpy as np

    if classes is not None:
        return list(classes)
    if y_proba is not None:
        return list(range(np.asarray(y_proba).shape[1]))
    return sorted(set(y_true.tolist()) | set(y_pred.tolist()))


def _classifier_metric(metric, y_true, y_pred, y_proba, classes) -> tuple[float | None, str | None]:
    import numpy as np
    from sklearn import metrics as skm

    labels = _classes(y_true, y_pred, y_proba, classes)
    binary = len(labels) <= 2
    if metric == "accuracy":
        return skm.accuracy_score(y_true, y_pred), None
    if metric in ("precision", "recall", "f1"):
        scorer = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[metric]
        kwargs = {"pos_label": labels[-1], "average": "binary"} if binary else {"labels": labels, "average": "macro"}
        value = scorer(y_true, y_pred, zero_division=np.nan, **kwargs)
        why = {"precision": "no positive predictions", "recall": "no positive rows",
               "f1": "no positive rows and no positive predictions"}[metric] if binary else None
        return value, why
    if y_proba is None:
        raise ValueError(f"metric {metric!r} needs predicted probabilities")
    proba = np.asarray(y_proba, dtype=float)
    if proba.shape[1] != len(labels):
        raise ValueError(f"y_proba has {proba.shape[1]} columns for {len(labels)} classes")
    if metric == "log_loss":
        return skm.log_loss(y_true, proba, labels=labels), None
    if metric == "brier":
        if binary:
            return skm.brier_score_loss(y_true == labels[-1], proba[:, -1]), None
        onehot = (y_true[:, None] == np.asarray(labels, dtype=object)[None, :]).astype(float)
        return float(np.mean(np.sum((proba - onehot) ** 2, axis=1))), None  # multi-class Brier (sum over classes)
    if (at := PRECISION_AT_K.match(metric)) is not None:
        k = int(at.group(1))
        if not binary:
            return None, "precision_at_K is defined for binary classifiers"
        if k > len(y_true):
            return None, f"the split has {len(y_true)} rows, fewer than K = {k}"
        top = np.argsort(-proba[:, -1], kind="stable")[:k]  # ties: the earlier row first
        return float(np.mean(y_true[top] == labels[-1])), None
    present = set(y_true.tolist())
    if len(present) < 2:
        return None, f"only one class ({_show(next(iter(present)))}) in the split"
    if binary:
        positive = proba[:, -1]
        if metric == "average_precision":
            return skm.average_precision_score(y_true == labels[-1], positive), None
        return skm.roc_auc_score(y_true == labels[-1], positive), None
    missing = [label for label in labels if label not in present]
    if missing:
        return None, "classes " + ", ".join(_show(m) for m in missing) + " do not occur in the split"
    if metric == "average_precision":  # one-vs-rest, macro, as roc_auc
        onehot = (y_true[:, None] == np.asarray(labels, dtype=object)[None, :]).astype(int)
        return skm.average_precision_score(onehot, proba, average="macro"), None
    return skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=labels), None


def _regressor_metric(metric, y_true, y_pred) -> tuple[float | None, str | None]:
    import numpy as np
    from sklearn import metrics as skm

    y_true = y_true.astype(float)
    y_pred = y_pred.astype(float)
    if metric == "mae":
        return skm.mean_absolute_error(y_true, y_pred), None
    if metric == "rmse":
        return float(np.sqrt(skm.mean_squared_error(y_true, y_pred))), None
    if len(y_true) < 2:
        return None, "r2 needs at least two rows"
    if np.all(y_true == y_true[0]):
        return None, "the target is constant in the split"
    return skm.r2_score(y_true, y_pred), None


def _show(value: object) -> str:
    if hasattr(value, "item"):
        value = value.item()
    return repr(value) if isinstance(value, str) else str(value)


THRESHOLD_METRICS = ("f1", "accuracy", "precision", "recall")


def tune_threshold(y_true, p_positive, metric: str) -> float:
    """The decision threshold on the positive class's probability that maximises ``metric`` on
    these rows (a row is positive when ``p >= threshold``). Every distinct probability is a
    candidate; the scores of all of them come from one sort and cumulative sums, so the cost is
    that of a sort. Ties go to the candidate closest to 0.5, then the lower one.

    >>> tune_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], "f1")
    0.35
    """
    import numpy as np

    if metric not in THRESHOLD_METRICS:
        raise ValueError(f"cannot tune a threshold for {metric!r} (use one of {', '.join(THRESHOLD_METRICS)})")
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(p_positive, dtype=np.float64)
    if len(p) == 0:
        raise ValueError("no rows to tune the threshold on")
    order = np.argsort(-p, kind="stable")
    p, y = p[order], y[order]
    ends = np.r_[np.nonzero(np.diff(p))[0], len(p) - 1]  # last row of each distinct probability
    tp = np.cumsum(y)[ends].astype(np.float64)
    fp = np.cumsum(1 - y)[ends].astype(np.float64)
    positives, negatives = float(y.sum()), float(len(y) - y.sum())
    fn, tn = positives - tp, negatives - fp
    with np.errstate(divide="ignore", invalid="ignore"):
        score = {
            "precision": tp / (tp + fp),
            "recall": tp / positives if positives else np.zeros_like(tp),
            "f1": 2 * tp / (2 * tp + fp + fn),
            "accuracy": (tp + tn) / len(y),
        }[metric]
    score = np.nan_to_num(score, nan=0.0)
    candidates = p[ends]
    best = np.flatnonzero(score == score.max())
    pick = min(best, key=lambda i: (abs(candidates[i] - 0.5), candidates[i]))
    return float(candidates[pick])
