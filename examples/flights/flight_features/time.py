"""On-demand features of the scheduled departure; each works on a scalar and on a pandas Series.

These are the functions declared under ``functions:`` in ``specs/functions.yaml``: the engine
calls them with Series when it builds training data and with scalars (request values) online,
so the two paths must agree — ``tests/test_features.py`` checks that they do.

Conventions: ``sched_dep_time`` is an ``hhmm`` integer in New York local time (``1545`` is
15:45); a missing value (None, NaN, ``pd.NA``) gives a missing result; an impossible time
(``2460``, ``-5``) raises ``ValueError``. Calendar features of the departure timestamp
(``day_of_week``, ``is_weekend``) come from the shared ``nyc_features.calendar`` library, which
the taxi example uses too.
"""

from __future__ import annotations

import pandas as pd

from flight_features._hhmm import hhmm_scalar, hhmm_series

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
