"""Distances around New York; each function works on scalars and on pandas Series.

Coordinates are WGS 84 degrees (latitude, longitude); distances are great-circle kilometres on a
sphere of the Earth's mean radius (haversine formula: within about 0.5 % of the geodesic).

Both paths compute with the same NumPy expression — the scalar path on 0-d float64 values, the
Series path on arrays — so a value served online is the value the model was trained with, bit for
bit (``tests/test_nyc_geo.py`` checks it). A missing coordinate (None, NaN, ``pd.NA``) gives
``None`` on scalars and ``NaN`` in a Series (float64). A latitude outside [-90, 90] raises
``ValueError``; so does a value that is not a number.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd

__all__ = ["AIRPORTS", "EARTH_RADIUS_KM", "haversine_km", "nearest_airport_km"]

EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius

#: The three New York airports (FAA code -> latitude, longitude of the airport reference point).
AIRPORTS: dict[str, tuple[float, float]] = {
    "JFK": (40.639751, -73.778925),  # John F. Kennedy International
    "LGA": (40.777245, -73.872608),  # LaGuardia
    "EWR": (40.692500, -74.168667),  # Newark Liberty International
}
_AIRPORT_LATS = np.array([lat for lat, _ in AIRPORTS.values()], dtype="float64")
_AIRPORT_LONS = np.array([lon for _, lon in AIRPORTS.values()], dtype="float64")


def _haversine(lat1, lon1, lat2, lon2):
    """The great-circle distance, elementwise over float64 arrays (or 0-d values)."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    dphi = phi2 - phi1
    dlmb = np.radians(lon2) - np.radians(lon1)
    a = np.sin(dphi / 2.0) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlmb / 2.0) ** 2
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _scalar(value: object, name: str) -> np.float64 | None:
    """A scalar coordinate as float64, or None when missing."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number of degrees, got {type(value).__name__} {value!r}")
    number = np.float64(value)
    return None if math.isnan(number) else number


def _series(values: pd.Series, name: str) -> np.ndarray:
    """A Series of coordinates as a float64 array, NaN where missing."""
    try:
        return pd.to_numeric(values, errors="raise").astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must hold numbers of degrees: {exc}") from None


def _check_latitudes(*lats) -> None:
    for lat in lats:
        bad = np.abs(np.asarray(lat, dtype="float64")) > 90.0  # NaN compares False
        if np.any(bad):
            first = np.asarray(lat, dtype="float64").reshape(-1)[np.argmax(bad.reshape(-1))]
            raise ValueError(f"latitude {first!r} is outside [-90, 90]")


def _index_of(*args) -> pd.Index | None:
    series = [a for a in args if isinstance(a, pd.Series)]
    return series[0].index if series else None


def haversine_km(lat1, lon1, lat2, lon2) -> float | None | pd.Series:
    """Great-circle distance in km between (lat1, lon1) and (lat2, lon2).

    Any argument may be a Series (the result is a float64 Series on its index; the others are
    broadcast); with scalars only, a float, or None when a coordinate is missing.

    >>> round(haversine_km(40.639751, -73.778925, 40.777245, -73.872608), 3)  # JFK -> LGA
    17.208
    >>> haversine_km(pd.Series([40.7, None]), -74.0, 40.7, -74.0).tolist()
    [0.0, nan]
    """
    index = _index_of(lat1, lon1, lat2, lon2)
    if index is None:
        values = [_scalar(v, n) for v, n in zip((lat1, lon1, lat2, lon2), ("lat1", "lon1", "lat2", "lon2"))]
        if any(v is None for v in values):
            return None
        _check_latitudes(values[0], values[2])
        return float(_haversine(*values))
    arrays = []
    for value, name in zip((lat1, lon1, lat2, lon2), ("lat1", "lon1", "lat2", "lon2")):
        if isinstance(value, pd.Series):
            if len(value) != len(index):
                raise ValueError(f"{name} has {len(value)} values, expected {len(index)}")
            arrays.append(_series(value, name))
        else:
            scalar = _scalar(value, name)
            arrays.append(np.full(len(index), np.nan if scalar is None else scalar, dtype="float64"))
    _check_latitudes(arrays[0], arrays[2])
    return pd.Series(_haversine(*arrays), index=index, dtype="float64", name="haversine_km")


def nearest_airport_km(lat, lon) -> float | None | pd.Series:
    """Distance in km to the nearest of JFK, LGA and EWR (see :data:`AIRPORTS`).

    >>> round(nearest_airport_km(40.758, -73.9855), 2)  # Times Square: LGA is nearest
    9.75
    >>> nearest_airport_km(pd.Series([40.639751, None]), pd.Series([-73.778925, -73.9])).tolist()
    [0.0, nan]
    """
    index = _index_of(lat, lon)
    if index is None:
        la, lo = _scalar(lat, "lat"), _scalar(lon, "lon")
        if la is None or lo is None:
            return None
        _check_latitudes(la)
        return float(min(_haversine(la, lo, a, b) for a, b in zip(_AIRPORT_LATS, _AIRPORT_LONS)))
    n = len(index)
    la = _series(lat, "lat") if isinstance(lat, pd.Series) else np.full(n, np.nan if (s := _scalar(lat, "lat")) is None else s)
    lo = _series(lon, "lon") if isinstance(lon, pd.Series) else np.full(n, np.nan if (s := _scalar(lon, "lon")) is None else s)
    if len(la) != n or len(lo) != n:
        raise ValueError(f"lat and lon must have the same length, got {len(la)} and {len(lo)}")
    _check_latitudes(la)
    distances = np.vstack([_haversine(la, lo, a, b) for a, b in zip(_AIRPORT_LATS, _AIRPORT_LONS)])
    with np.errstate(invalid="ignore"):
        nearest = np.min(distances, axis=0)  # NaN where a coordinate is missing
    return pd.Series(nearest, index=index, dtype="float64", name="nearest_airport_km")
