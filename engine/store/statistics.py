"""Running column statistics: a table's statistics after an append, from its previous statistics and
those of the appended rows alone, without reading the stored rows again.

Exact measures merge exactly: counts add, minimum and maximum combine, the mean and the sample
standard deviation combine by Chan et al.'s pairwise formula. The sampled measures (quantiles from
a hashed sample of rows, ``distinct`` from HyperLogLog) cannot be merged from their summaries, so they
are carried over, and recomputed over the whole table once it has grown by more than
``REFRESH_GROWTH`` since they were computed (as PostgreSQL's autoanalyze refreshes a table's
statistics after 10% of its rows changed). ``sampled_at_rows`` records that row count.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

REFRESH_GROWTH = 0.10

_SUMS = ("count", "nulls", "nans")


def merge(old: dict[str, dict], new: dict[str, dict], old_rows: int, new_rows: int) -> dict[str, dict] | None:
    """The statistics of a table of ``old_rows`` rows described by ``old`` after appending
    ``new_rows`` rows described by ``new``; None when they must be computed over the whole table
    again (the columns differ, or the sampled measures are too old).

    >>> a = {"x": {"type": "DOUBLE", "count": 2, "nulls": 0, "nans": 0, "distinct": 2, "mean": 1.5, "std": 0.7071067811865476, "min": 1.0, "max": 2.0, "p50": 1.5}}
    >>> b = {"x": {"type": "DOUBLE", "count": 1, "nulls": 1, "nans": 0, "distinct": 1, "mean": 3.0, "std": None, "min": 3.0, "max": 3.0, "p50": 3.0}}
    >>> m = merge(a, b, 20, 2)["x"]
    >>> (m["count"], m["nulls"], m["mean"], round(m["std"], 6), m["min"], m["max"], m["p50"], m["sampled_at_rows"])
    (3, 1, 2.0, 1.0, 1.0, 3.0, 1.5, 20)
    >>> merge(a, b, 10, 2) is None  # grown by 20%: recompute
    True
    """
    if list(old) != list(new) or any(old[c].get("type") != new[c].get("type") for c in old):
        return None
    total = old_rows + new_rows
    out: dict[str, dict] = {}
    for column, before in old.items():
        added = new[column]
        sampled = int(before.get("sampled_at_rows", old_rows))
        if total > sampled * (1 + REFRESH_GROWTH):
            return None
        merged: dict[str, Any] = dict(before)
        for stat in _SUMS:
            if stat in before:
                merged[stat] = int(before.get(stat) or 0) + int(added.get(stat) or 0)
        if "distinct" in before:
            merged["distinct"] = max(int(before.get("distinct") or 0), int(added.get("distinct") or 0))
        for stat, pick in (("min", min), ("max", max), ("min_length", min), ("max_length", max)):
            if stat in before:
                merged[stat] = _combine(before.get(stat), added.get(stat), pick)
        if "mean" in before:
            merged["mean"], merged["std"] = _moments(before, added)
        merged["sampled_at_rows"] = sampled
        out[column] = merged
    return out


def _combine(a: Any, b: Any, pick) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, str) and isinstance(b, str):  # ISO times: compare as instants
        return a if pick(datetime.fromisoformat(a), datetime.fromisoformat(b)) == datetime.fromisoformat(a) else b
    return pick(a, b)


def _moments(a: dict, b: dict) -> tuple[float | None, float | None]:
    """(mean, sample std) of two parts from theirs (Chan, Golub and LeVeque's pairwise update)."""
    na, nb = int(a.get("count") or 0), int(b.get("count") or 0)
    if nb == 0 or b.get("mean") is None:
        return a.get("mean"), a.get("std")
    if na == 0 or a.get("mean") is None:
        return b.get("mean"), b.get("std")
    ma, mb = float(a["mean"]), float(b["mean"])
    m2a = float(a.get("std") or 0.0) ** 2 * (na - 1)
    m2b = float(b.get("std") or 0.0) ** 2 * (nb - 1)
    n = na + nb
    delta = mb - ma
    mean = ma + delta * nb / n
    m2 = m2a + m2b + delta * delta * na * nb / n
    std = math.sqrt(m2 / (n - 1)) if n > 1 else None
    return mean, std
