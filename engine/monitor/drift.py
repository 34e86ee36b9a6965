"""Distribution comparisons: population stability index (PSI) over training-quantile bins or
categories, the two-sample Kolmogorov-Smirnov statistic, missing rates. Pure numpy.

PSI = sum((a - e) * ln(a / e)) over bins, with the expected (training) and actual (serving)
proportions floored at ``EPSILON`` so that an empty bin is finite. Rule of thumb: < 0.1 stable,
0.1-0.2 moderate shift, > 0.2 significant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

EPSILON = 1e-4
BINS = 10
TOP_CATEGORIES = 20
OTHER = "<other>"


@dataclass(frozen=True)
class Comparison:
    """One feature (or the prediction), training against serving."""

    feature: str
    kind: str  # numeric | categorical
    psi: float
    ks: float | None  # numeric only
    missing_train: float
    missing_serving: float
    bins: tuple[str, ...]  # bin labels (numeric: lower edges; categorical: values)
    train: tuple[float, ...]  # proportions per bin
    serving: tuple[float, ...]


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """PSI of two proportion vectors.

    >>> psi([0.5, 0.5], [0.5, 0.5])
    0.0
    >>> round(psi([0.5, 0.5], [0.9, 0.1]), 3)
    0.879
    """
    e = np.maximum(np.asarray(expected, dtype=float), EPSILON)
    a = np.maximum(np.asarray(actual, dtype=float), EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs.

    >>> ks_statistic(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]))
    0.0
    >>> ks_statistic(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    1.0
    """
    a, b = np.sort(a), np.sort(b)
    if not len(a) or not len(b):
        return 0.0
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    cdf_b = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))


def _missing(values: np.ndarray) -> np.ndarray:
    import pandas as pd

    return pd.isna(values)


def compare_numeric(feature: str, train: np.ndarray, serving: np.ndarray) -> Comparison:
    miss_t, miss_s = _missing(train), _missing(serving)
    t = train[~miss_t].astype(float)
    s = serving[~miss_s].astype(float)
    if len(t):
        edges = np.unique(np.quantile(t, np.linspace(0, 1, BINS + 1)))
    else:
        edges = np.array([0.0, 1.0])
    inner = edges[1:-1]  # bins: (-inf, e1], (e1, e2], ..., (e_k, inf)

    def shares(v: np.ndarray) -> np.ndarray:
        counts = np.bincount(np.searchsorted(inner, v, side="left"), minlength=len(inner) + 1).astype(float)
        return counts / counts.sum() if counts.sum() else counts

    pt, ps = shares(t), shares(s)
    labels = tuple(["< " + _short(inner[0])] + [f"≥ {_short(e)}" for e in inner]) if len(inner) else ("all",)
    return Comparison(feature, "numeric", psi(pt, ps) if len(s) and len(t) else 0.0, ks_statistic(t, s),
                      _rate(miss_t), _rate(miss_s), labels, tuple(map(float, pt)), tuple(map(float, ps)))


def compare_categorical(feature: str, train: np.ndarray, serving: np.ndarray) -> Comparison:
    import pandas as pd

    miss_t, miss_s = _missing(train), _missing(serving)
    t = pd.Series(train[~miss_t]).astype(str)
    s = pd.Series(serving[~miss_s]).astype(str)
    top = list(t.value_counts().head(TOP_CATEGORIES).index)
    cats = top + [OTHER]

    def shares(v: pd.Series) -> np.ndarray:
        mapped = v.where(v.isin(top), OTHER)
        counts = mapped.value_counts().reindex(cats, fill_value=0).to_numpy(dtype=float)
        return counts / counts.sum() if counts.sum() else counts

    pt, ps = shares(t), shares(s)
    return Comparison(feature, "categorical", psi(pt, ps) if len(s) and len(t) else 0.0, None,
                      _rate(miss_t), _rate(miss_s), tuple(cats), tuple(map(float, pt)), tuple(map(float, ps)))


def compare(feature: str, train: np.ndarray, serving: np.ndarray) -> Comparison:
    """Numeric comparison for numbers (booleans are categories), categorical otherwise."""
    import pandas as pd

    t = pd.Series(train)
    if pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t):
        s = pd.to_numeric(pd.Series(serving), errors="coerce")
        return compare_numeric(feature, t.to_numpy(dtype=float, na_value=np.nan), s.to_numpy(dtype=float, na_value=np.nan))
    return compare_categorical(feature, t.to_numpy(dtype=object), pd.Series(serving).to_numpy(dtype=object))


def _rate(mask: np.ndarray) -> float:
    return float(mask.mean()) if len(mask) else 0.0


def _short(x: float) -> str:
    return f"{x:.4g}"
