"""Tests of the flight_features package: on-demand functions (scalar == vectorised), ids, planes;
and of the calendar functions the project takes from the shared nyc-features library, on the
flights' own cases (New York departures)."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flight_features.ids as ids_module
import flight_features.planes as planes_module
import flight_features.time as time_module
from flight_features._hhmm import hhmm_scalar
from flight_features.ids import flight_id
from flight_features.planes import normalise_manufacturer, plane_features
from flight_features.time import dep_hour, dep_minute, minutes_of_day, part_of_day
from nyc_features.calendar import day_of_week, is_weekend  # the shared library the specs declare

ALL_HHMM = [h * 100 + m for h in range(24) for m in range(60)]
HHMM_FUNCTIONS = [dep_hour, dep_minute, minutes_of_day, part_of_day]


@pytest.mark.parametrize("module", [time_module, ids_module, planes_module])
def test_docstring_examples_run(module) -> None:
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


# --- on-demand time features ---------------------------------------------------------------------


@pytest.mark.parametrize("function", HHMM_FUNCTIONS, ids=lambda f: f.__name__)
def test_scalar_and_vectorised_agree_on_every_clock_time(function) -> None:
    """The online path (scalar) and the offline path (Series) must give the same value."""
    vectorised = function(pd.Series(ALL_HHMM, index=np.arange(len(ALL_HHMM)) * 3))
    assert list(vectorised.index) == list(np.arange(len(ALL_HHMM)) * 3)  # index kept
    assert vectorised.tolist() == [function(v) for v in ALL_HHMM]


def test_clock_features_values() -> None:
    assert (dep_hour(0), dep_minute(0), minutes_of_day(0)) == (0, 0, 0)
    assert (dep_hour(2359), dep_minute(2359), minutes_of_day(2359)) == (23, 59, 1439)
    assert (dep_hour(1545), minutes_of_day(1545)) == (15, 945)
    assert [part_of_day(t) for t in (559, 600, 1159, 1200, 1759, 1800)] == [
        "night", "morning", "morning", "afternoon", "afternoon", "evening"
    ]
    assert sorted(set(minutes_of_day(pd.Series(ALL_HHMM)).tolist())) == list(range(1440))


@pytest.mark.parametrize("function", HHMM_FUNCTIONS, ids=lambda f: f.__name__)
def test_missing_clock_time_gives_missing_feature(function) -> None:
    for missing in (None, float("nan"), pd.NA, np.float64("nan")):
        assert function(missing) is None
    out = function(pd.Series([515.0, np.nan, 1545.0]))  # ints with NaN arrive as float
    assert out.isna().tolist() == [False, True, False]
    assert out.iloc[0] == function(515)


@pytest.mark.parametrize("bad", [2400, 2360, -5, 1260, 99999])
def test_impossible_clock_time_raises_scalar_and_series(bad) -> None:
    with pytest.raises(ValueError, match="hhmm"):
        dep_hour(bad)
    with pytest.raises(ValueError, match=str(bad)):
        dep_hour(pd.Series([515, bad]))


@pytest.mark.parametrize("bad", [True, "1545", 15.5, [1545]])
def test_wrong_clock_type_raises(bad) -> None:
    with pytest.raises((TypeError, ValueError)):
        dep_hour(bad)


def test_numpy_scalars_accepted() -> None:
    assert dep_hour(np.int16(1545)) == 15 and hhmm_scalar(np.float32(515)) == 515
    assert isinstance(dep_hour(np.int64(1545)), int)


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=pd.Timestamp("2000-01-01").to_pydatetime(),
                    max_value=pd.Timestamp("2030-01-01").to_pydatetime()))
def test_calendar_features_scalar_equals_vectorised(moment) -> None:
    utc = pd.Timestamp(moment, tz="UTC")
    series = pd.Series([utc, utc + pd.Timedelta(hours=7)])
    assert day_of_week(series).tolist() == [day_of_week(t) for t in series]
    assert is_weekend(series).tolist() == [is_weekend(t) for t in series]


def test_is_weekend_uses_new_york_time_for_utc_instants() -> None:
    # Saturday 2013-01-05 02:00 UTC is Friday 21:00 in New York (EST, UTC-5).
    assert is_weekend(pd.Timestamp("2013-01-05 02:00", tz="UTC")) is False
    assert is_weekend(pd.Timestamp("2013-01-05 05:00", tz="UTC")) is True
    # Monday 2013-07-08 03:30 UTC is Sunday 23:30 in New York (EDT, UTC-4).
    assert is_weekend(pd.Timestamp("2013-07-08 03:30", tz="UTC")) is True
    assert day_of_week(pd.Timestamp("2013-07-08 03:30", tz="UTC")) == 6
    # Naive timestamps are already local.
    assert is_weekend(pd.Timestamp("2013-01-05 02:00")) is True
    assert is_weekend("2013-01-04 23:59") is False
    assert is_weekend(None) is None and day_of_week(pd.NaT) is None
    series = is_weekend(pd.Series(pd.to_datetime(["2013-01-05 02:00", None], utc=True)))
    assert str(series.dtype) == "boolean" and series.tolist() == [False, pd.NA]


def test_is_weekend_rejects_non_timestamps() -> None:
    with pytest.raises(TypeError):
        is_weekend(1545)


# --- flight ids ---------------------------------------------------------------------------------


def test_flight_id_format_scalar_and_vectorised() -> None:
    assert flight_id(2013, 1, 1, "UA", 1545, "EWR", 515) == "20130101-UA-1545-EWR-0515"
    assert flight_id(2013, 12, 31, "9E", 3, "JFK", 2359) == "20131231-9E-3-JFK-2359"
    frame = pd.DataFrame({"year": [2013, 2013], "month": [1, 12], "day": [1, 31],
                          "carrier": ["UA", "9E"], "flight": [1545, 3], "origin": ["EWR", "JFK"],
                          "sched_dep_time": [515, 2359]}).astype({"month": "int8", "day": "int8"})
    out = flight_id(*(frame[c] for c in frame.columns))
    assert out.tolist() == ["20130101-UA-1545-EWR-0515", "20131231-9E-3-JFK-2359"]
    assert flight_id(frame["year"], 1, 1, "UA", frame["flight"], "EWR", 5).tolist() == [
        "20130101-UA-1545-EWR-0005", "20130101-UA-3-EWR-0005"
    ]


# --- planes -------------------------------------------------------------------------------------


def _planes(**overrides) -> pd.DataFrame:
    rows = {
        "tailnum": ["N2", "N1", "N3"],
        "year": [2004, None, 2014],
        "type": ["Fixed wing multi engine", "Rotorcraft", "Balloon"],
        "manufacturer": ["AIRBUS INDUSTRIE", "canadair ltd", "KILDALL GARY"],
        "model": [" A320-214 ", "CL-600", "X"],
        "engines": [2, 1, 1],
        "seats": [182, 2, None],
        "speed": [None, None, 90],
        "engine": ["Turbo-fan", "4 Cycle", "Steam"],
    }
    rows.update(overrides)
    return pd.DataFrame(rows)


def test_plane_features_values_and_order() -> None:
    out = plane_features(_planes())
    assert out["tailnum"].tolist() == ["N1", "N2", "N3"]  # sorted by key
    assert out["plane_age"].tolist() == [pd.NA, 9, 0]  # unknown year -> NA; future year clipped
    assert out["year_built"].tolist() == [pd.NA, 2004, 2014]
    assert out["manufacturer"].tolist() == ["BOMBARDIER", "AIRBUS", "OTHER"]
    assert out["engine_type"].tolist() == ["four_cycle", "turbo_fan", "other"]
    assert out["aircraft_type"].tolist() == ["rotorcraft", "fixed_wing_multi", "other"]
    assert out["model"].tolist() == ["CL-600", "A320-214", "X"]
    assert out["seats"].tolist() == [2, 182, pd.NA]
    assert list(out.columns) == list(planes_module.OUTPUT_COLUMNS)


def test_plane_features_reference_year() -> None:
    out = plane_features(_planes(), reference_year=2024)
    assert out.set_index("tailnum")["plane_age"].to_dict()["N2"] == 20


def test_plane_features_is_pure_and_deterministic() -> None:
    planes = _planes()
    before = planes.copy(deep=True)
    first = plane_features(planes)
    pd.testing.assert_frame_equal(planes, before)  # input untouched
    shuffled = planes.sample(frac=1.0, random_state=3).reset_index(drop=True)
    pd.testing.assert_frame_equal(plane_features(shuffled), first)


def test_plane_features_rejects_bad_keys_and_missing_columns() -> None:
    with pytest.raises(ValueError, match="'N1' occurs more than once"):
        plane_features(_planes(tailnum=["N1", "N1", "N3"]))
    with pytest.raises(ValueError, match="missing values"):
        plane_features(_planes(tailnum=["N1", None, "N3"]))
    with pytest.raises(ValueError, match="seats"):
        plane_features(_planes().drop(columns=["seats"]))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("BOEING", "BOEING"),
        ("AIRBUS", "AIRBUS"),
        ("AIRBUS INDUSTRIE", "AIRBUS"),
        ("MCDONNELL DOUGLAS AIRCRAFT CO", "MCDONNELL DOUGLAS"),
        ("MCDONNELL DOUGLAS CORPORATION", "MCDONNELL DOUGLAS"),
        ("BOMBARDIER INC", "BOMBARDIER"),
        ("CANADAIR", "BOMBARDIER"),
        ("Embraer", "EMBRAER"),
        ("CESSNA", "OTHER"),
        ("", "OTHER"),
        (None, None),
    ],
)
def test_normalise_manufacturer(raw, expected) -> None:
    assert normalise_manufacturer(raw) == expected


def test_plane_features_on_committed_data(project_root) -> None:
    planes = pd.read_parquet(project_root / "data" / "planes.parquet")
    out = plane_features(planes)
    assert len(out) == len(planes) == 3322
    assert out["tailnum"].is_unique
    assert out["plane_age"].dropna().between(0, 57).all()
    assert out["plane_age"].isna().sum() == planes["year"].isna().sum() == 70
    assert set(out["manufacturer"]) == {"AIRBUS", "BOEING", "BOMBARDIER", "EMBRAER",
                                        "MCDONNELL DOUGLAS", "OTHER"}
    assert out["engine_type"].notna().all() and "other" not in set(out["engine_type"])
