"""Bin edges of the binning built-in: declared, or equal-frequency quantiles fitted on the input.

The edges are stored with the feature-group version; the backend compiles the bin columns.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from engine.errors import DataError
from engine.model.objects import Binning

if TYPE_CHECKING:
    from engine.backends.base import Backend
    from engine.sql.ops import Relation


def resolve_edges(backend: "Backend", relation: "Relation", binning: Binning) -> tuple[float, ...]:
    """The ascending edges of one bin column: the declared ``edges``, or computed quantile edges.

    Computed edges are deduplicated (several quantiles may coincide on skewed data), so a
    ``quantiles: n`` binning yields at most n bins; -inf and +inf are implicit outer edges.
    """
    if binning.edges is not None:
        edges = tuple(float(e) for e in binning.edges)
        if any(not math.isfinite(e) for e in edges) or any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError(f"bin edges must be finite and strictly ascending, got {list(binning.edges)}")
        return edges
    if binning.quantiles is None:
        raise ValueError(f"binning of {binning.column!r} has neither edges nor quantiles")
    values = backend.quantiles(relation, binning.column, binning.quantiles)
    # Quantiles of equal values can differ in the last bit (interpolation rounding): such
    # near-duplicates are one edge, or they would create an empty bin.
    edges: tuple[float, ...] = ()
    for v in sorted(float(v) for v in values if v is not None and math.isfinite(v)):
        if not edges or not math.isclose(v, edges[-1], rel_tol=1e-12, abs_tol=0.0):
            edges += (v,)
    if binning.labels is not None and len(binning.labels) != len(edges) + 1:
        raise DataError(
            f"binning of column '{binning.column}' into {binning.quantiles} quantiles found only "
            f"{len(edges) + 1} distinct bins on this data, but {len(binning.labels)} labels are "
            "declared (use fewer quantiles, or fixed edges)"
        )
    return edges
