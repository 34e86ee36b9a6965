"""How far from home a card is used; works on scalars (online) and pandas Series (offline).

Both paths compute with the same NumPy expression — the scalar path on 0-d float64 values, the
Series path on float64 arrays — so the value served online is the value the model was trained
with, bit for bit. A missing coordinate (None, NaN, ``pd.NA``) gives None on scalars and NaN in a
Series.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius


def _haversine(lat1, lon1, lat2, lon2):
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    dphi = phi2 - phi1
    dlmb = np.radians(lon2) - np.radians(lon1)
    a = np.sin(dphi / 2.0) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlmb / 2.0) ** 2
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _array(values) -> np.ndarray:
    return pd.to_numeric(values, errors="raise").astype("Float64").to_numpy(dtype="float64", na_value=np.nan)


def km_from_home(merchant_lat, merchant_lon, home_lat, home_lon):
    """Great-circle distance in km from the card's home to the merchant.

    >>> round(km_from_home(40.71, -74.01, 40.71, -74.01), 6)
    0.0
    >>> km_from_home(None, -74.01, 40.71, -74.01) is None
    True
    """
    args = (merchant_lat, merchant_lon, home_lat, home_lon)
    series = [a for a in args if isinstance(a, pd.Series)]
    if series:
        index = series[0].index
        arrays = [_array(a) if isinstance(a, pd.Series) else np.full(len(index), np.nan if a is None else float(a)) for a in args]
        return pd.Series(_haversine(*arrays), index=index, dtype="float64")
    values = [None if a is None or a is pd.NA else np.float64(a) for a in args]
    if any(v is None or math.isnan(v) for v in values):
        return None
    return float(_haversine(*values))
