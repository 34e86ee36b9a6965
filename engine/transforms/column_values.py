"""A feature column's values read as float64 arrays and as category keys: the one reading that
fitting, batch apply and row apply share (``model_dependent``), so the three cannot disagree on
what a value is. The key rules are the "Category keys" contract of ``model_dependent``: ``str`` as
is, booleans as ``"True"``/``"False"``, integral numbers as ``str(int(x))`` (``1`` and ``1.0`` are
one category), other floats as ``str(float(x))``; NULL, NaN and ``pd.NA`` are no category.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy
    import pandas

_NA_TYPE_NAMES = frozenset({"NAType", "NaTType"})
_BOOL_TYPE_NAMES = frozenset({"bool", "bool_"})
_NAN = float("nan")


def to_float(value: object, column: str) -> float:
    """One value of a numeric feature as a float; NULL/NA/NaN -> NaN. Strings are refused."""
    if value is None:
        return _NAN
    kind = type(value)
    if kind is float:
        return value  # type: ignore[return-value]
    if kind is int:
        return float(value)  # type: ignore[arg-type]
    if kind is str:
        raise ValueError(f"feature '{column}' is numeric but got the string {value!r}")
    if kind.__name__ in _NA_TYPE_NAMES:
        return _NAN
    try:
        return float(value)  # type: ignore[arg-type]  # numpy scalars, bools, Decimal
    except (TypeError, ValueError):
        raise ValueError(f"feature '{column}' is numeric but got {value!r}") from None


def category_key(value: object) -> str | None:
    """The string a categorical value is compared by (see the module contract); None if NULL."""
    if value is None:
        return None
    kind = type(value)
    if kind is str:
        return value  # type: ignore[return-value]
    if kind.__name__ in _BOOL_TYPE_NAMES:
        return "True" if value else "False"
    if kind.__name__ in _NA_TYPE_NAMES:
        return None
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        x = float(value)
        if x != x:
            return None
        return str(int(x)) if x.is_integer() else str(x)
    return str(value)


def is_vector_numeric(series: pandas.Series) -> bool:
    from pandas.api import types

    return bool(types.is_bool_dtype(series.dtype) or types.is_numeric_dtype(series.dtype))


def numeric_array(series: pandas.Series, column: str) -> numpy.ndarray:
    """A numeric feature as float64, NULL -> NaN; values go through ``to_float`` unless typed."""
    import numpy as np

    if is_vector_numeric(series):
        return series.to_numpy(dtype="float64", na_value=np.nan)
    return np.fromiter((to_float(v, column) for v in series.tolist()), dtype="float64", count=len(series))


def category_keys(series: pandas.Series) -> tuple[list[str | None], numpy.ndarray | None]:
    """(keys of the distinct values, codes into them with -1 for NULL), or per-row keys if object."""
    import pandas as pd
    from pandas.api import types

    if types.is_object_dtype(series.dtype):
        # object columns can mix 1, 1.0 and True, which factorize would merge by hash
        return [category_key(v) for v in series.tolist()], None
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    return [category_key(u) for u in uniques], codes


def category_codes(series: pandas.Series, index: Mapping[str, int]) -> tuple[numpy.ndarray, numpy.ndarray]:
    """(codes with -1 for unseen or NULL, NULL mask) of a categorical feature."""
    import numpy as np

    keys, codes = category_keys(series)
    if codes is None:
        out = np.fromiter((index.get(k, -1) for k in keys), dtype="int64", count=len(keys))  # type: ignore[arg-type]
        missing = np.fromiter((k is None for k in keys), dtype=bool, count=len(keys))
        return out, missing
    table = np.array([index.get(k, -1) for k in keys] + [-1], dtype="int64")  # type: ignore[arg-type]
    null = np.array([k is None for k in keys] + [True], dtype=bool)  # codes -1 picks the last entry
    return table[codes], null[codes]


def key_counts(series: pandas.Series) -> dict[str, int]:
    """How often each non-null category key occurs."""
    import numpy as np

    keys, codes = category_keys(series)
    counts: dict[str, int] = {}
    if codes is None:
        for k in keys:
            if k is not None:
                counts[k] = counts.get(k, 0) + 1
        return counts
    per_unique = np.bincount(codes[codes >= 0], minlength=len(keys))
    for k, n in zip(keys, per_unique.tolist()):
        if k is not None and n:
            counts[k] = counts.get(k, 0) + n
    return counts
