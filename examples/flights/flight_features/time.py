"""On-demand features of the scheduled departure; each works on a scalar and on a pandas Series.

These are the functions declared under ``functions:`` in ``specs/functions.yaml``: the engine
calls them with Series when it builds training data and with scalars (request values) online,
so the two paths must agree — ``tests/test_features.py`` checks that they do.

Conventions: ``sched_dep_time`` is an ``hhmm`` integer in New York local time (``1545`` is
15:45); a missing value (None, NaN, ``pd.NA``) gives a missing result; an impossible time
(``2460``, ``-5``) raises ``ValueError``. Timestamps that carry a zone are converted to the
airport zone (``America/New_York``) before calendar features are taken; naive timestamps are
taken as already local.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

import pandas as pd

from flight_features._hhmm import hhmm_scalar, hhmm_series

LOCAL_TZ = "America/New_York"
PARTS_OF_DAY = ("night", "morning", "afternoon", "evening")  # [0,6) [6,12) [12,18) [18,24)


def dep_hour(sched_dep_time: int | float | None | pd.Series) -> int | None | pd.Series:
    """Hour (0–23) of the scheduled departure.

    >>> dep_hour(1545)
    15
    >>> dep_hour(pd.Series([5, 2359, None])).tolist()
    [0, 23, <NA>]
    """
    if isinstance(sched_dep_time, pd.Series):
        return (hhmm_series(sched_dep_time) // 100).rename("dep_hour")
    value = hhmm_scalar(sched_dep_time)
    return None if value is None else value // 100


def dep_minute(sched_dep_time: int | float | None | pd.Series) -> int | None | pd.Series:
    """Minute (0–59) within the hour of the scheduled departure.

    >>> dep_minute(1545)
    45
    """
    if isinstance(sched_dep_time, pd.Series):
        return (hhmm_series(sched_dep_time) % 100).rename("dep_minute")
    value = hhmm_scalar(sched_dep_time)
    return None if value is None else value % 100


def minutes_of_day(sched_dep_time: int | float | None | pd.Series) -> int | None | pd.Series:
    """Minutes since local midnight of the scheduled departure (0–1439).

    >>> minutes_of_day(1545)
    945
    """
    if isinstance(sched_dep_time, pd.Series):
        hhmm = hhmm_series(sched_dep_time)
        return (hhmm // 100 * 60 + hhmm % 100).rename("minutes_of_day")
    value = hhmm_scalar(sched_dep_time)
    return None if value is None else value // 100 * 60 + value % 100


def part_of_day(sched_dep_time: int | float | None | pd.Series) -> str | None | pd.Series:
    """``night`` (0–5h), ``morning`` (6–11h), ``afternoon`` (12–17h) or ``evening`` (18–23h).

    >>> part_of_day(515), part_of_day(1545)
    ('night', 'afternoon')
    """
    if isinstance(sched_dep_time, pd.Series):
        hours = dep_hour(sched_dep_time)
        labels = pd.Series(PARTS_OF_DAY, dtype="string")
        out = pd.Series(pd.NA, index=hours.index, dtype="string", name="part_of_day")
        present = hours.notna()
        out[present] = labels.iloc[(hours[present] // 6).astype("int64")].to_numpy()
        return out
    hour = dep_hour(sched_dep_time)
    return None if hour is None else PARTS_OF_DAY[hour // 6]


@lru_cache(maxsize=16)
def _zone(tz: str) -> ZoneInfo:
    return ZoneInfo(tz)


def _local_timestamp_scalar(ts: object, tz: str) -> dt.datetime | None:
    """The online path: plain ``datetime``/``zoneinfo`` arithmetic (a few µs, unlike pandas'
    ``tz_convert``), giving the same local calendar as the Series path."""
    if ts is None or ts is pd.NA or ts is pd.NaT:
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


def day_of_week(
    sched_dep_ts: object | pd.Series, tz: str = LOCAL_TZ
) -> int | None | pd.Series:
    """Local day of the week of the departure: Monday = 0 … Sunday = 6.

    >>> day_of_week(pd.Timestamp("2013-01-05 03:00", tz="UTC"))  # Friday 22:00 in New York
    4
    """
    if isinstance(sched_dep_ts, pd.Series):
        return _local_timestamp_series(sched_dep_ts, tz).dt.day_of_week.astype("Int64").rename(
            "day_of_week"
        )
    stamp = _local_timestamp_scalar(sched_dep_ts, tz)
    return None if stamp is None else stamp.weekday()


def is_weekend(sched_dep_ts: object | pd.Series, tz: str = LOCAL_TZ) -> bool | None | pd.Series:
    """True when the departure falls on a local Saturday or Sunday.

    A UTC event time is converted to New York time first, so Saturday 02:00 UTC (Friday evening
    in New York) is not a weekend departure.

    >>> is_weekend(pd.Timestamp("2013-01-05 15:00", tz="UTC")), is_weekend("2013-01-04 10:00")
    (True, False)
    """
    if isinstance(sched_dep_ts, pd.Series):
        return (day_of_week(sched_dep_ts, tz) >= 5).astype("boolean").rename("is_weekend")
    weekday = day_of_week(sched_dep_ts, tz)
    return None if weekday is None else weekday >= 5
