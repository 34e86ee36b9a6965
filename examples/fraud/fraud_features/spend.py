"""Spend relative to the card's habit; works on scalars (online) and pandas Series (offline)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def _array(values) -> np.ndarray:
    return pd.to_numeric(values, errors="raise").astype("Float64").to_numpy(dtype="float64", na_value=np.nan)


def amount_ratio(amount, amount_sum, txn_count):
    """The amount divided by the card's mean amount over a trailing window (``amount_sum /
    txn_count``); missing (None offline-NaN) when the card has no earlier activity.

    >>> amount_ratio(300.0, 600.0, 6)
    3.0
    >>> amount_ratio(300.0, None, None) is None
    True
    """
    args = (amount, amount_sum, txn_count)
    series = [a for a in args if isinstance(a, pd.Series)]
    if series:
        index = series[0].index
        a, s, n = (_array(x) if isinstance(x, pd.Series) else np.full(len(index), np.nan if x is None else float(x)) for x in args)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = a / (s / n)
        out[~np.isfinite(out)] = np.nan
        return pd.Series(out, index=index, dtype="float64")
    values = [None if x is None or x is pd.NA else np.float64(x) for x in args]
    if any(v is None or math.isnan(v) for v in values) or values[2] == 0 or values[1] == 0:
        return None
    out = values[0] / (values[1] / values[2])
    return float(out) if math.isfinite(out) else None
