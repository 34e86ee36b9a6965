"""The declared PCA built-in: fit on a feature group's input, apply with the stored fit. No storage.

The fit is plain data (``PcaFit``) so the caller can store it as JSON with the feature group
version and apply exactly the same projection later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.errors import DataError
from engine.model.objects import Pca

if TYPE_CHECKING:
    import pandas


@dataclass(frozen=True)
class PcaFit:
    """A fitted standardise-then-project transform (learned state; JSON-safe via ``to_dict``)."""

    columns: tuple[str, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    components: tuple[tuple[float, ...], ...]  # k × d, rows are unit-length loadings
    explained_variance_ratio: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        """Lists of floats and strings only, for storing with the feature group version."""
        return {
            "columns": list(self.columns),
            "means": list(self.means),
            "scales": list(self.scales),
            "components": [list(row) for row in self.components],
            "explained_variance_ratio": list(self.explained_variance_ratio),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PcaFit:
        """Rebuild a fit stored by ``to_dict``; refuses inconsistent shapes."""
        fit = cls(
            columns=tuple(str(c) for c in data["columns"]),
            means=tuple(float(v) for v in data["means"]),
            scales=tuple(float(v) for v in data["scales"]),
            components=tuple(tuple(float(v) for v in row) for row in data["components"]),
            explained_variance_ratio=tuple(float(v) for v in data["explained_variance_ratio"]),
        )
        d = len(fit.columns)
        if (
            len(fit.means) != d
            or len(fit.scales) != d
            or any(len(row) != d for row in fit.components)
            or len(fit.explained_variance_ratio) != len(fit.components)
        ):
            raise ValueError("stored PCA fit has inconsistent shapes")
        return fit


def _matrix(frame: pandas.DataFrame, columns: tuple[str, ...]):
    """The PCA columns as a float64 matrix, NULL/NA as NaN (nullable dtypes included)."""
    import numpy as np

    return frame.loc[:, list(columns)].to_numpy(dtype="float64", na_value=np.nan)


def fit_pca(frame: pandas.DataFrame, pca: Pca) -> PcaFit:
    """Fit PCA on the standardised ``pca.columns`` of ``frame``.

    Rows with a NULL/NaN in any PCA column are left out of the fit. Columns are standardised
    with the mean and the population standard deviation (ddof=0, as scikit-learn's
    ``StandardScaler``; a constant column gets scale 1). scikit-learn ``PCA(svd_solver="full")``
    then finds the components; each component's sign is fixed so that its largest-magnitude
    loading is positive, which makes the fit deterministic.
    """
    import numpy as np
    from sklearn.decomposition import PCA

    columns = tuple(pca.columns)
    x = _matrix(frame, columns)
    x = x[~np.isnan(x).any(axis=1)]
    if not np.isfinite(x).all():
        raise DataError(f"PCA columns {list(columns)} contain infinite values")
    k = pca.n_components
    if k < 1 or k > len(columns):
        raise ValueError(f"n_components must be in 1..{len(columns)}, got {k}")
    if x.shape[0] < max(k, 2):
        raise DataError(
            f"PCA over {list(columns)} needs at least {max(k, 2)} rows without NULLs, "
            f"found {x.shape[0]}"
        )
    means = x.mean(axis=0)
    scales = x.std(axis=0, ddof=0)
    scales[scales == 0.0] = 1.0
    model = PCA(n_components=k, svd_solver="full").fit((x - means) / scales)
    components = model.components_.copy()
    for row in components:
        if row[np.argmax(np.abs(row))] < 0:
            row *= -1.0
    ratio = np.nan_to_num(model.explained_variance_ratio_, nan=0.0)
    return PcaFit(
        columns=columns,
        means=tuple(float(v) for v in means),
        scales=tuple(float(v) for v in scales),
        components=tuple(tuple(float(v) for v in row) for row in components),
        explained_variance_ratio=tuple(float(v) for v in ratio),
    )


def apply_pca(frame: pandas.DataFrame, fit: PcaFit, pca: Pca) -> pandas.DataFrame:
    """Project ``frame`` with a stored fit: columns ``<prefix>1 .. <prefix>k``, same index.

    Rows with a NULL/NaN in any PCA column get NaN in every output column.
    """
    import numpy as np
    import pandas as pd

    x = _matrix(frame, fit.columns)
    z = (x - np.asarray(fit.means)) / np.asarray(fit.scales)
    scores = z @ np.asarray(fit.components, dtype="float64").T
    scores[np.isnan(x).any(axis=1)] = np.nan
    names = [f"{pca.prefix}{i}" for i in range(1, len(fit.components) + 1)]
    return pd.DataFrame(scores, index=frame.index, columns=names)
