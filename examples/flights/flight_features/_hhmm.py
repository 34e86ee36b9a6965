"""Validation of ``hhmm`` clock integers (e.g. 1545) for scalars and Series; owns no features."""

from __future__ import annotations

import math
import numbers

import pandas as pd


def hhmm_scalar(value: object) -> int | None:
    """Return ``value`` as a validated ``hhmm`` int, or None for a missing value (None / NaN / NA).

    >>> hhmm_scalar(1545), hhmm_scalar(5.0), hhmm_scalar(None)
    (1545, 5, None)
    """
    if value is None or value is pd.NA:
        return None
    if isinstance(value, bool):
        raise TypeError(f"hhmm time must be an integer, got bool {value!r}")
    if isinstance(value, numbers.Integral):
        number = int(value)
    elif isinstance(value, numbers.Real):
        if math.isnan(float(value)):
            return None
        if not float(value).is_integer():
            raise ValueError(f"hhmm time must be a whole number, got {value!r}")
        number = int(value)
    else:
        raise TypeError(f"hhmm time must be an integer such as 1545, got {type(value).__name__}")
    if not (0 <= number <= 2359 and number % 100 < 60):
        raise ValueError(f"not a valid hhmm time: {number} (expected 0..2359 with minutes < 60)")
    return number


def hhmm_series(values: pd.Series) -> pd.Series:
    """Return ``values`` as a validated nullable ``Int64`` Series of ``hhmm`` times (index kept)."""
    if pd.api.types.is_bool_dtype(values.dtype):
        raise TypeError("hhmm times must be integers, got a boolean Series")
    if not pd.api.types.is_numeric_dtype(values.dtype):
        raise TypeError(f"hhmm times must be numeric, got dtype {values.dtype}")
    as_float = values.astype("Float64")
    present = as_float.dropna()
    fractional = present[present != present.round()]
    if len(fractional):
        raise ValueError(f"hhmm times must be whole numbers, got {fractional.iloc[0]!r}")
    numbers_ = as_float.round().astype("Int64")
    valid = (numbers_ >= 0) & (numbers_ <= 2359) & (numbers_ % 100 < 60)
    bad = numbers_[~valid.fillna(True)]
    if len(bad):
        raise ValueError(
            f"{len(bad)} invalid hhmm time(s), first {int(bad.iloc[0])} at index {bad.index[0]!r} "
            "(expected 0..2359 with minutes < 60)"
        )
    return numbers_
