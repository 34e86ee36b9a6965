"""Built-in on-demand functions: a feature group's binning or PCA applied at request time.

``functions: {amount_band: {binning: amount_bins.amount_band, inputs: [amount]}}`` bins a value
with the edges (and labels) the binning group stored with its version; ``{pca: txn_pca.pc1,
inputs: [a, b, c]}`` projects values with the stored PCA fit. The same object computes the
feature view's column offline (on pandas Series) and the online vector's value (on scalars),
with the same arithmetic in the same order, so the two agree bit for bit. No storage: the fitted
state comes from the caller (the group version's record, or the online snapshot's manifest).

Conventions are the group's own (``engine.backends.duckdb.binning``): bins are closed on the
left (``bisect_right`` of the edges), NULL/NaN gives a missing bin; PCA standardises with the
stored means and scales and sums the loadings left to right; a missing input gives NaN.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from typing import Any

from engine.errors import ExecutionError

__all__ = ["BinFunction", "PcaComponent", "builtin_function"]


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and v != v) or type(v).__name__ in ("NAType", "NaTType")


class BinFunction:
    """One stored bin column as a function of one value: its index, or its label."""

    def __init__(self, edges: Sequence[float], labels: Sequence[str] | None = None) -> None:
        self.edges = [float(e) for e in edges]
        self.labels = list(labels) if labels is not None else None
        if self.labels is not None and len(self.labels) != len(self.edges) + 1:
            raise ValueError(f"{len(self.edges)} bin edges need {len(self.edges) + 1} labels, got {len(self.labels)}")

    def __call__(self, value):
        import pandas as pd

        if isinstance(value, pd.Series):
            import numpy as np

            x = pd.to_numeric(value, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            index = np.searchsorted(np.asarray(self.edges, dtype="float64"), x, side="right")
            missing = np.isnan(x)
            if self.labels is None:
                out = pd.Series(index, index=value.index, dtype="Int64")
                out[missing] = pd.NA
                return out
            labels = np.asarray(self.labels, dtype=object)[index]
            out = pd.Series(labels, index=value.index, dtype="string")
            out[missing] = pd.NA
            return out
        if _missing(value):
            return None
        i = bisect.bisect_right(self.edges, float(value))
        return self.labels[i] if self.labels is not None else i


class PcaComponent:
    """One stored principal component as a function of the PCA's input columns, in its order."""

    def __init__(self, means: Sequence[float], scales: Sequence[float], loadings: Sequence[float]) -> None:
        self.means = [float(v) for v in means]
        self.scales = [float(v) for v in scales]
        self.loadings = [float(v) for v in loadings]
        if not (len(self.means) == len(self.scales) == len(self.loadings)):
            raise ValueError("stored PCA fit has inconsistent shapes")

    def __call__(self, *values):
        import pandas as pd

        if len(values) != len(self.loadings):
            raise ValueError(f"the component takes {len(self.loadings)} inputs, got {len(values)}")
        if values and isinstance(values[0], pd.Series):
            import numpy as np

            acc = None
            for v, mean, scale, c in zip(values, self.means, self.scales, self.loadings):
                x = pd.to_numeric(v, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
                term = ((x - mean) / scale) * c
                acc = term if acc is None else acc + term
            return pd.Series(acc, index=values[0].index, dtype="float64")
        acc = None
        for v, mean, scale, c in zip(values, self.means, self.scales, self.loadings):
            x = math.nan if _missing(v) else float(v)
            term = ((x - mean) / scale) * c
            acc = term if acc is None else acc + term
        return None if acc is None or acc != acc else acc


def builtin_function(kind: str, group: str, column: str, fitted: Mapping[str, Any] | None, bins: Mapping[str, Sequence[str] | None] | None = None):
    """The callable of built-in ``kind`` for ``group``'s output ``column`` from the group
    version's ``fitted`` state (``bin_edges`` / ``pca``); ``bins``: the bin columns' labels.
    ExecutionError when the state does not hold it (the group was built before it existed)."""
    fitted = fitted or {}
    if kind == "binning":
        edges = (fitted.get("bin_edges") or {}).get(column)
        if edges is None:
            raise ExecutionError(f"feature_group:{group} has no stored edges for bin column '{column}': apply it first")
        return BinFunction(edges, (bins or {}).get(column))
    fit = fitted.get("pca")
    if not fit:
        raise ExecutionError(f"feature_group:{group} has no stored PCA fit: apply it first")
    prefix_index = _component_index(column, len(fit["components"]))
    if prefix_index is None:
        raise ExecutionError(f"feature_group:{group} has no principal component '{column}'")
    return PcaComponent(fit["means"], fit["scales"], fit["components"][prefix_index])


def _component_index(column: str, k: int) -> int | None:
    digits = ""
    for ch in reversed(column):
        if not ch.isdigit():
            break
        digits = ch + digits
    if not digits:
        return None
    i = int(digits) - 1
    return i if 0 <= i < k else None
