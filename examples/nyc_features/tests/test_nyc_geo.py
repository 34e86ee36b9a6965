"""nyc_features.geo: haversine distances and the nearest New York airport, scalar == Series."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nyc_features.geo as geo
from nyc_features.geo import AIRPORTS, EARTH_RADIUS_KM, haversine_km, nearest_airport_km

LAT = st.floats(min_value=-90, max_value=90, allow_nan=False)
LON = st.floats(min_value=-180, max_value=180, allow_nan=False)
POINT = st.tuples(LAT, LON)
NYC_POINT = st.tuples(st.floats(40.45, 41.0), st.floats(-74.3, -73.6))


def test_docstring_examples_run() -> None:
    result = doctest.testmod(geo, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_known_distances() -> None:
    jfk, lga, ewr = AIRPORTS["JFK"], AIRPORTS["LGA"], AIRPORTS["EWR"]
    assert haversine_km(*jfk, *lga) == pytest.approx(17.2, abs=0.1)
    assert haversine_km(*jfk, *ewr) == pytest.approx(33.5, abs=0.3)
    assert haversine_km(*lga, *ewr) == pytest.approx(26.67, abs=0.1)
    assert haversine_km(0, 0, 0, 180) == pytest.approx(math.pi * EARTH_RADIUS_KM)
    assert haversine_km(90, 0, -90, 0) == pytest.approx(math.pi * EARTH_RADIUS_KM)
    assert haversine_km(0, 0, 1, 0) == pytest.approx(111.19, abs=0.01)  # one degree of latitude
    assert haversine_km(40.7, -74.0, 40.7, -74.0) == 0.0


@settings(max_examples=300, deadline=None)
@given(a=POINT, b=POINT)
def test_symmetric_non_negative_and_bounded(a, b) -> None:
    d = haversine_km(*a, *b)
    assert isinstance(d, float)
    assert 0.0 <= d <= math.pi * EARTH_RADIUS_KM + 1e-9
    assert d == pytest.approx(haversine_km(*b, *a), rel=1e-12, abs=1e-9)
    assert haversine_km(*a, *a) == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(a=POINT, b=POINT, c=POINT)
def test_triangle_inequality(a, b, c) -> None:
    assert haversine_km(*a, *c) <= haversine_km(*a, *b) + haversine_km(*b, *c) + 1e-6


@settings(max_examples=200, deadline=None)
@given(points=st.lists(st.tuples(POINT, POINT), min_size=1, max_size=30))
def test_scalar_and_series_agree_bit_for_bit(points) -> None:
    """What the online path computes (scalars) is what training computed (Series), exactly."""
    frame = pd.DataFrame([(*a, *b) for a, b in points], columns=["lat1", "lon1", "lat2", "lon2"])
    frame.index = frame.index * 3 + 1
    out = haversine_km(frame["lat1"], frame["lon1"], frame["lat2"], frame["lon2"])
    assert out.dtype == "float64" and list(out.index) == list(frame.index)
    assert out.tolist() == [haversine_km(*row) for row in frame.itertuples(index=False)]
    near = nearest_airport_km(frame["lat1"], frame["lon1"])
    assert near.tolist() == [nearest_airport_km(r.lat1, r.lon1) for r in frame.itertuples(index=False)]


@settings(max_examples=200, deadline=None)
@given(p=NYC_POINT)
def test_nearest_airport_is_the_minimum_over_the_three(p) -> None:
    d = nearest_airport_km(*p)
    assert d == min(haversine_km(*p, *airport) for airport in AIRPORTS.values())
    assert 0.0 <= d < 60.0  # everywhere in the city, an airport is within 60 km


def test_nearest_airport_at_each_airport_is_zero() -> None:
    for lat, lon in AIRPORTS.values():
        assert nearest_airport_km(lat, lon) == 0.0
    assert nearest_airport_km(40.758, -73.9855) == pytest.approx(haversine_km(40.758, -73.9855, *AIRPORTS["LGA"]))


def test_numpy_and_nullable_inputs() -> None:
    assert haversine_km(np.float32(40.5), np.int64(-74), 40.5, -74.0) == 0.0
    lat = pd.Series([40.7, None, 40.8], dtype="Float64")
    lon = pd.Series([-74.0, -73.9, None], dtype="Float64")
    out = haversine_km(lat, lon, 40.7, -74.0)
    assert out.dtype == "float64" and out.isna().tolist() == [False, True, True]
    assert nearest_airport_km(lat, lon).isna().tolist() == [False, True, True]


@pytest.mark.parametrize("missing", [None, float("nan"), np.nan, pd.NA])
def test_missing_coordinate_gives_none(missing) -> None:
    assert haversine_km(missing, -74.0, 40.7, -74.0) is None
    assert haversine_km(40.7, -74.0, 40.7, missing) is None
    assert nearest_airport_km(40.7, missing) is None
    assert haversine_km(pd.Series([missing, 40.7], dtype="object"), -74.0, 40.7, -74.0).isna().tolist() == [True, False]


@pytest.mark.parametrize("bad", ["40.7", True, [40.7]])
def test_non_numbers_raise(bad) -> None:
    with pytest.raises(ValueError, match="number"):
        haversine_km(bad, -74.0, 40.7, -74.0)
    with pytest.raises(ValueError, match="number"):
        nearest_airport_km(bad, -74.0)
    with pytest.raises(ValueError, match="numbers"):
        haversine_km(pd.Series(["north"]), -74.0, 40.7, -74.0)


def test_impossible_latitude_raises() -> None:
    with pytest.raises(ValueError, match="outside"):
        haversine_km(91.0, 0, 0, 0)
    with pytest.raises(ValueError, match="outside"):
        nearest_airport_km(pd.Series([40.0, -120.0]), pd.Series([-74.0, -74.0]))


def test_series_lengths_must_match() -> None:
    with pytest.raises(ValueError, match="values"):
        haversine_km(pd.Series([1.0, 2.0]), pd.Series([1.0]), 0, 0)
