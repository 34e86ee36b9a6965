"""Train/validation/test splits of training data (by time or seeded random); must not train or store.

Contracts (DESIGN §3 "Splits"), pinned by tests:

- Time splits cut on the spine's event time, start inclusive and end exclusive: train is
  ``t < validation_from`` (or ``t < test_from``), validation is ``validation_from <= t < test_from``,
  test is ``t >= test_from`` (and ``t < test_until`` when given; rows after it are in no split). Boundary strings are read as UTC unless they carry an offset
  (``"2013-11-01"`` is ``2013-11-01T00:00Z``). A naive event-time column is taken to be UTC.
- Random splits draw one ``numpy.random.Generator(seed)`` permutation of row *positions*: the result
  depends on the frame's row order, so the caller sorts the frame deterministically first (by the
  spine's keys and event time). Sizes round as scikit-learn's ``train_test_split``: the test (and
  validation) count is ``ceil(size * n)``, train takes the rest.
- Each split keeps the frame's row order and index. An empty train, validation or test split is a
  ``DataError`` that says why.

pandas and numpy are imported inside functions; ``check_split`` is pure and safe for validate.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from engine.errors import DataError
from engine.model.catalogue import check_split, parse_utc  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    import pandas as pd

def _boundary(column: pd.Series, text: str):
    import pandas as pd

    stamp = pd.Timestamp(parse_utc(text))
    if getattr(column.dtype, "tz", None) is None:
        return stamp.tz_convert("UTC").tz_localize(None)
    return stamp


def split_by_time(frame: pd.DataFrame, event_time: str, test_from: str,
                  validation_from: str | None = None, test_until: str | None = None) -> dict[str, pd.DataFrame]:
    """Split on ``event_time``: keys ``train``, ``validation`` (only with validation_from), ``test``
    (``test_from <= t``, and ``t < test_until`` when given: later rows are in no split)."""
    import pandas as pd

    if validation_from is not None and parse_utc(validation_from) >= parse_utc(test_from):
        raise ValueError(f"validation_from ({validation_from}) must be before test_from ({test_from})")
    column = frame[event_time]
    if not pd.api.types.is_datetime64_any_dtype(column):
        column = pd.to_datetime(column, utc=True)
    missing = int(column.isna().sum())
    if missing:
        rows = "1 spine row has" if missing == 1 else f"{missing} spine rows have"
        raise DataError(f"{rows} no event time ({event_time!r} is NULL); a time split needs one")
    test_start = _boundary(column, test_from)
    train_end = _boundary(column, validation_from) if validation_from is not None else test_start
    parts = {"train": frame[(column < train_end).to_numpy()]}
    if validation_from is not None:
        parts["validation"] = frame[((column >= train_end) & (column < test_start)).to_numpy()]
    in_test = column >= test_start
    if test_until is not None:
        if parse_utc(test_until) <= parse_utc(test_from):
            raise ValueError(f"test_until ({test_until}) must be after test_from ({test_from})")
        in_test &= column < _boundary(column, test_until)
    parts["test"] = frame[in_test.to_numpy()]
    span = _span(column)
    if parts["train"].empty:
        raise DataError(f"the training split is empty: no spine rows before {validation_from or test_from}{span}")
    if "validation" in parts and parts["validation"].empty:
        raise DataError(f"the validation split is empty: no spine rows from {validation_from} up to {test_from}{span}")
    if parts["test"].empty:
        raise DataError(f"the test split is empty: no spine rows at or after {test_from}" + (f" and before {test_until}" if test_until else "") + span)
    return parts


def _span(column: pd.Series) -> str:
    if column.empty:
        return " (the spine has no rows)"
    return f" ({column.name!r} ranges from {column.min().isoformat()} to {column.max().isoformat()})"


def split_random(frame: pd.DataFrame, test_size: float, validation_size: float | None = None,
                 seed: int = 0) -> dict[str, pd.DataFrame]:
    """Seeded random split: keys ``train``, ``validation`` (only with validation_size), ``test``."""
    import numpy as np

    for name, size in (("test_size", test_size), ("validation_size", validation_size)):
        if size is not None and not 0 < size < 1:
            raise ValueError(f"{name} must be between 0 and 1 (got {size})")
    n = len(frame)
    n_test = math.ceil(test_size * n)
    n_val = math.ceil(validation_size * n) if validation_size is not None else 0
    n_train = n - n_test - n_val
    if n == 0:
        raise DataError("the training split is empty: the spine has no rows")
    if n_train <= 0:
        sizes = f"test_size {test_size}" + (f" and validation_size {validation_size}" if validation_size else "")
        raise DataError(f"the training split is empty: {sizes} of {n} spine rows leave no rows to train on")
    order = np.random.default_rng(seed).permutation(n)
    test_pos = np.sort(order[:n_test])
    val_pos = np.sort(order[n_test:n_test + n_val])
    train_pos = np.sort(order[n_test + n_val:])
    parts = {"train": frame.iloc[train_pos]}
    if validation_size is not None:
        parts["validation"] = frame.iloc[val_pos]
    parts["test"] = frame.iloc[test_pos]
    return parts
