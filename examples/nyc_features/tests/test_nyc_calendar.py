"""nyc_features.calendar: New York local calendar features, scalar (online) == Series (offline)."""

from __future__ import annotations

import datetime as dt
import doctest
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nyc_features.calendar as calendar
from nyc_features.calendar import day_of_week, hour_of_day, is_us_federal_holiday, is_weekend, us_federal_holidays

FUNCTIONS = [day_of_week, is_weekend, hour_of_day, is_us_federal_holiday]
DTYPES = {day_of_week: "Int64", is_weekend: "boolean", hour_of_day: "Int64", is_us_federal_holiday: "boolean"}
MOMENTS = st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2060, 12, 31))


def test_docstring_examples_run() -> None:
    result = doctest.testmod(calendar, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def _scalars(series: pd.Series, function) -> list:
    return [function(v) for v in series]


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
@settings(max_examples=150, deadline=None)
@given(moments=st.lists(MOMENTS, min_size=1, max_size=20))
def test_scalar_and_series_agree_on_utc_instants(function, moments) -> None:
    """The online path (scalar) and the offline path (Series) give the same value, row for row."""
    series = pd.Series(pd.to_datetime(moments).tz_localize("UTC"), index=np.arange(len(moments)) * 7)
    out = function(series)
    assert str(out.dtype) == DTYPES[function]
    assert list(out.index) == list(series.index)  # index kept
    assert out.tolist() == _scalars(series, function)
    # What the engine gives a function online: the timestamp as a UTC pandas Timestamp, or text.
    assert out.tolist() == [function(t.isoformat()) for t in series]
    assert out.tolist() == [function(t.to_pydatetime()) for t in series]


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
@settings(max_examples=100, deadline=None)
@given(moment=MOMENTS, zone=st.sampled_from(["UTC", "Europe/Paris", "Asia/Tokyo", "America/Los_Angeles"]))
def test_scalar_and_series_agree_on_naive_and_zoned_values(function, moment, zone) -> None:
    naive = pd.Series([pd.Timestamp(moment)])
    assert function(naive).tolist() == [function(moment)]  # naive: already New York local time
    zoned = pd.Series([pd.Timestamp(moment).tz_localize(zone, ambiguous=True, nonexistent="shift_forward")])
    assert function(zoned).tolist() == [function(zoned.iloc[0])]


def test_utc_instants_are_read_in_new_york_time() -> None:
    # Saturday 2013-01-05 02:00 UTC is Friday 21:00 in New York (EST, UTC-5).
    assert is_weekend(pd.Timestamp("2013-01-05 02:00", tz="UTC")) is False
    assert is_weekend(pd.Timestamp("2013-01-05 05:00", tz="UTC")) is True
    # Monday 2013-07-08 03:30 UTC is Sunday 23:30 in New York (EDT, UTC-4).
    assert day_of_week(pd.Timestamp("2013-07-08 03:30", tz="UTC")) == 6
    assert hour_of_day(pd.Timestamp("2013-07-08 03:30", tz="UTC")) == 23
    # Naive values are already local.
    assert is_weekend(pd.Timestamp("2013-01-05 02:00")) is True
    assert hour_of_day("2013-01-05 02:00") == 2
    assert is_weekend("2013-01-04 23:59") is False
    # Another zone is converted too: 09:00 in Paris is 03:00 in New York (winter).
    assert hour_of_day(pd.Timestamp("2024-01-10 09:00", tz="Europe/Paris")) == 3
    assert hour_of_day(dt.date(2024, 1, 10)) == 0  # a date is its local midnight


def test_hour_of_day_across_daylight_saving_changes() -> None:
    spring = pd.Series(pd.to_datetime(["2024-03-10 06:59", "2024-03-10 07:00"], utc=True))
    assert hour_of_day(spring).tolist() == [1, 3] == _scalars(spring, hour_of_day)  # 02:00 EST never happens
    autumn = pd.Series(pd.to_datetime(["2024-11-03 05:30", "2024-11-03 06:30"], utc=True))
    assert hour_of_day(autumn).tolist() == [1, 1] == _scalars(autumn, hour_of_day)  # 01:30 EDT, then EST


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
def test_missing_in_missing_out(function) -> None:
    for missing in (None, float("nan"), np.float64("nan"), pd.NA, pd.NaT):
        assert function(missing) is None
    series = pd.Series(pd.to_datetime(["2024-07-04 12:00", None], utc=True))
    out = function(series)
    assert str(out.dtype) == DTYPES[function]
    assert out.isna().tolist() == [False, True]
    assert out.iloc[0] == function(series.iloc[0])
    assert function(pd.Series([], dtype="datetime64[us, UTC]")).tolist() == []


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("bad", [1545, True, [2024]])
def test_non_timestamps_raise(function, bad) -> None:
    with pytest.raises(TypeError):
        function(bad)


# --- US federal holidays ------------------------------------------------------------------------


def test_federal_holidays_of_2024() -> None:
    assert [d.isoformat() for d in us_federal_holidays(2024)] == [
        "2024-01-01", "2024-01-15", "2024-02-19", "2024-05-27", "2024-06-19", "2024-07-04",
        "2024-09-02", "2024-10-14", "2024-11-11", "2024-11-28", "2024-12-25",
    ]


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        ("2020-07-03", True),   # 4 July 2020 is a Saturday: observed on Friday 3 July
        ("2020-07-04", False),  # ... so the Saturday itself is not a federal holiday
        ("2022-06-20", True),   # Juneteenth 2022 is a Sunday: observed on Monday 20 June
        ("2020-06-19", False),  # Juneteenth is a federal holiday from 2021 on
        ("2021-06-18", True),   # its first observance (19 June 2021 is a Saturday)
        ("2021-12-31", True),   # 1 January 2022 is a Saturday: observed on 31 December 2021
        ("1985-01-21", False),  # Martin Luther King Jr. Day from 1986 on
        ("1986-01-20", True),
        ("2024-11-28", True),   # Thanksgiving: fourth Thursday of November
        ("2024-05-27", True),   # Memorial Day: last Monday of May
        ("2024-12-24", False),
    ],
)
def test_observed_holidays(day, expected) -> None:
    assert is_us_federal_holiday(day) is expected
    assert is_us_federal_holiday(pd.Series([pd.Timestamp(day)])).tolist() == [expected]


def test_holiday_is_the_new_york_date() -> None:
    # 2024-07-05 03:30 UTC is 4 July 23:30 in New York; 2024-07-04 03:30 UTC is 3 July 23:30.
    stamps = pd.Series(pd.to_datetime(["2024-07-05 03:30", "2024-07-04 03:30", "2024-07-04 04:30"], utc=True))
    assert is_us_federal_holiday(stamps).tolist() == [True, False, True] == _scalars(stamps, is_us_federal_holiday)


def test_holidays_are_pandas_us_federal_holiday_calendar() -> None:
    """The rule set gives exactly the days of pandas' USFederalHolidayCalendar, 1970-2060."""
    from pandas.tseries.holiday import USFederalHolidayCalendar

    theirs = [t.date() for t in USFederalHolidayCalendar().holidays("1970-01-01", "2060-12-31")]
    ours = [d for year in range(1970, 2061) for d in us_federal_holidays(year)]
    assert ours == theirs
    every_day = pd.Series(pd.date_range("2019-12-01", "2026-01-31", freq="D"))
    flagged = every_day[is_us_federal_holiday(every_day).to_numpy(dtype=bool)]
    assert [t.date() for t in flagged] == [t.date() for t in USFederalHolidayCalendar().holidays("2019-12-01", "2026-01-31")]


def test_holiday_scalar_path_is_fast() -> None:
    """The online path reads a cached set: microseconds, not pandas' calendar per call (ms)."""
    stamps = [pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=7 * i) for i in range(5000)]
    is_us_federal_holiday(stamps[0])
    start = time.perf_counter()
    for t in stamps:
        is_us_federal_holiday(t)
    per_call = (time.perf_counter() - start) / len(stamps)
    assert per_call < 500e-6, f"{per_call * 1e6:.1f} µs per call"
