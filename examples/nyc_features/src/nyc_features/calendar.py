"""New York local calendar features of an instant; each works on a scalar and on a pandas Series.

The engine calls these with a pandas Series when it builds training data (offline) and with a
scalar request value when it serves a prediction (online), so the two paths must agree —
``tests/test_nyc_calendar.py`` checks that they do, value for value.

Conventions: a timestamp that carries a zone (a UTC event time, as the engine stores them) is
converted to New York time (``America/New_York``, DST included) before the calendar is read; a
naive timestamp is taken as already local. A missing value (None, NaN, ``pd.NA``, NaT) gives
``None`` on a scalar and ``<NA>`` in a Series; Series results use the nullable dtypes ``Int64``
and ``boolean``. Anything that is not a timestamp (an int such as 1545) raises ``TypeError``.
"""

from __future__ import annotations

import datetime as dt
import math
from functools import lru_cache
from zoneinfo import ZoneInfo

import pandas as pd

LOCAL_TZ = "America/New_York"

__all__ = [
    "LOCAL_TZ",
    "day_of_week",
    "hour_of_day",
    "is_us_federal_holiday",
    "is_weekend",
    "us_federal_holidays",
]


@lru_cache(maxsize=16)
def _zone(tz: str) -> ZoneInfo:
    return ZoneInfo(tz)


def _local_timestamp_scalar(ts: object, tz: str) -> dt.datetime | None:
    """The online path: plain ``datetime``/``zoneinfo`` arithmetic (a few µs, unlike pandas'
    ``tz_convert``), giving the same local calendar as the Series path."""
    if ts is None or ts is pd.NA or ts is pd.NaT:
        return None
    if isinstance(ts, float) and math.isnan(ts):  # a missing value in a float column
        return None
    if isinstance(ts, pd.Timestamp):
        stamp = ts.to_pydatetime()
    elif isinstance(ts, dt.datetime):
        stamp = ts
    elif isinstance(ts, dt.date):
        stamp = dt.datetime(ts.year, ts.month, ts.day)
    elif isinstance(ts, str):
        try:
            stamp = dt.datetime.fromisoformat(ts)
        except ValueError:
            parsed = pd.Timestamp(ts)
            if parsed is pd.NaT:
                return None
            stamp = parsed.to_pydatetime()
    else:
        raise TypeError(f"expected a timestamp, got {type(ts).__name__}")
    return stamp.astimezone(_zone(tz)) if stamp.tzinfo is not None else stamp


def _local_timestamp_series(ts: pd.Series, tz: str) -> pd.Series:
    stamps = pd.to_datetime(ts)
    return stamps.dt.tz_convert(tz) if stamps.dt.tz is not None else stamps


def day_of_week(ts: object | pd.Series, tz: str = LOCAL_TZ) -> int | None | pd.Series:
    """Local day of the week: Monday = 0 … Sunday = 6.

    >>> day_of_week(pd.Timestamp("2013-01-05 03:00", tz="UTC"))  # Friday 22:00 in New York
    4
    """
    if isinstance(ts, pd.Series):
        return _local_timestamp_series(ts, tz).dt.day_of_week.astype("Int64").rename("day_of_week")
    stamp = _local_timestamp_scalar(ts, tz)
    return None if stamp is None else stamp.weekday()


def is_weekend(ts: object | pd.Series, tz: str = LOCAL_TZ) -> bool | None | pd.Series:
    """True on a local Saturday or Sunday.

    A UTC instant is converted to New York time first, so Saturday 02:00 UTC (Friday evening in
    New York) is not a weekend.

    >>> is_weekend(pd.Timestamp("2013-01-05 15:00", tz="UTC")), is_weekend("2013-01-04 10:00")
    (True, False)
    """
    if isinstance(ts, pd.Series):
        return (day_of_week(ts, tz) >= 5).astype("boolean").rename("is_weekend")
    weekday = day_of_week(ts, tz)
    return None if weekday is None else weekday >= 5


def hour_of_day(ts: object | pd.Series, tz: str = LOCAL_TZ) -> int | None | pd.Series:
    """Local hour (0–23) of the instant.

    >>> hour_of_day(pd.Timestamp("2024-07-04 02:30", tz="UTC"))  # 22:30 on 3 July in New York (EDT)
    22
    >>> hour_of_day(pd.Series(pd.to_datetime(["2024-01-15 02:30", None], utc=True))).tolist()
    [21, <NA>]
    """
    if isinstance(ts, pd.Series):
        return _local_timestamp_series(ts, tz).dt.hour.astype("Int64").rename("hour_of_day")
    stamp = _local_timestamp_scalar(ts, tz)
    return None if stamp is None else stamp.hour


# --- US federal holidays ------------------------------------------------------------------------
#
# The *observed* federal holidays (5 U.S.C. 6103: the days federal offices close): a fixed-date
# holiday on a Saturday is observed the Friday before, on a Sunday the Monday after; so 1 January
# on a Saturday makes 31 December of the year before a holiday. The current rules apply to every
# year, with Martin Luther King Jr. Day from 1986 and Juneteenth from 2021 — the same days as
# pandas' ``USFederalHolidayCalendar`` (a test compares them over 1970–2060).

_MONDAY, _THURSDAY = 0, 3


def _observed(day: dt.date) -> dt.date:
    weekday = day.weekday()
    if weekday == 5:
        return day - dt.timedelta(days=1)
    if weekday == 6:
        return day + dt.timedelta(days=1)
    return day


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    """The n-th (1-based) ``weekday`` of the month, or the last one for ``n == -1``."""
    if n > 0:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = dt.date(year + (month == 12), month % 12 + 1, 1) - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)


def _rule_dates(year: int) -> list[dt.date]:
    """The observed holidays that the rules of ``year`` give (one may fall in the year before)."""
    days = [
        _observed(dt.date(year, 1, 1)),  # New Year's Day
        _nth_weekday(year, 2, _MONDAY, 3),  # Washington's Birthday
        _nth_weekday(year, 5, _MONDAY, -1),  # Memorial Day
        _observed(dt.date(year, 7, 4)),  # Independence Day
        _nth_weekday(year, 9, _MONDAY, 1),  # Labor Day
        _nth_weekday(year, 10, _MONDAY, 2),  # Columbus Day
        _observed(dt.date(year, 11, 11)),  # Veterans Day
        _nth_weekday(year, 11, _THURSDAY, 4),  # Thanksgiving Day
        _observed(dt.date(year, 12, 25)),  # Christmas Day
    ]
    if year >= 1986:
        days.append(_nth_weekday(year, 1, _MONDAY, 3))  # Birthday of Martin Luther King, Jr.
    if year >= 2021:
        days.append(_observed(dt.date(year, 6, 19)))  # Juneteenth National Independence Day
    return days


@lru_cache(maxsize=512)
def _holiday_set(year: int) -> frozenset[dt.date]:
    return frozenset(d for y in (year, year + 1) for d in _rule_dates(y) if d.year == year)


def us_federal_holidays(year: int) -> tuple[dt.date, ...]:
    """The observed US federal holidays falling in ``year``, in date order.

    >>> [d.isoformat() for d in us_federal_holidays(2021)][-3:]  # 1 Jan 2022 is a Saturday
    ['2021-11-25', '2021-12-24', '2021-12-31']
    """
    return tuple(sorted(_holiday_set(int(year))))


def is_us_federal_holiday(ts: object | pd.Series, tz: str = LOCAL_TZ) -> bool | None | pd.Series:
    """True when the local date (New York) is an observed US federal holiday.

    >>> is_us_federal_holiday(pd.Timestamp("2024-07-04 15:00", tz="UTC"))
    True
    >>> is_us_federal_holiday(pd.Timestamp("2024-07-05 02:00", tz="UTC"))  # 22:00 on 4 July in New York
    True
    >>> is_us_federal_holiday("2024-07-05 09:00")
    False
    """
    if isinstance(ts, pd.Series):
        local = _local_timestamp_series(ts, tz)
        if local.dt.tz is not None:
            local = local.dt.tz_localize(None)  # the local wall-clock time
        years = local.dt.year.dropna().unique()
        holidays = pd.DatetimeIndex(sorted(d for y in years for d in _holiday_set(int(y))))
        out = local.dt.normalize().isin(holidays).astype("boolean")
        out[local.isna()] = pd.NA
        return out.rename("is_us_federal_holiday")
    stamp = _local_timestamp_scalar(ts, tz)
    return None if stamp is None else stamp.date() in _holiday_set(stamp.year)
