"""Relative time ranges (``range: {last: 30d}``): the window a batch job scores at a given time.

The end is the run's time floored to the duration's unit — midnight UTC for days and weeks, the
hour for hours, the minute for minutes, the second for seconds — so every run within the same
unit scores the same range (re-running the day's apply changes nothing), and the start is the end
minus the duration. Pure: no clock of its own; the caller passes ``now``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_FLOOR = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "day"}


def relative_range(last: str, seconds: int, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of ``last`` (a duration such as ``30d``, ``seconds`` long) at ``now``.

    >>> now = datetime(2026, 12, 3, 22, 41, 7, tzinfo=UTC)
    >>> [t.isoformat() for t in relative_range("30d", 30 * 86400, now)]
    ['2026-11-03T00:00:00+00:00', '2026-12-03T00:00:00+00:00']
    >>> [t.isoformat() for t in relative_range("6h", 6 * 3600, now)]
    ['2026-12-03T16:00:00+00:00', '2026-12-03T22:00:00+00:00']
    """
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    unit = _FLOOR[last[-1]]
    end = now.replace(microsecond=0)
    if unit in ("minute", "hour", "day"):
        end = end.replace(second=0)
    if unit in ("hour", "day"):
        end = end.replace(minute=0)
    if unit == "day":
        end = end.replace(hour=0)
    return end - timedelta(seconds=seconds), end
