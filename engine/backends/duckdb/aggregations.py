"""SQL for the declared windowed aggregations built-in. Owns SQL text only; never a connection."""

from __future__ import annotations

from collections.abc import Sequence

from engine.model.objects import AggFunction, Aggregation
from engine.sql.quote import quote_ident

# DuckDB aggregate per declared function; every one ignores NULL inputs, as SQL does.
_SQL_FUNCTION: dict[AggFunction, str] = {
    AggFunction.COUNT: "count",
    AggFunction.SUM: "sum",
    AggFunction.MEAN: "avg",
    AggFunction.MIN: "min",
    AggFunction.MAX: "max",
    AggFunction.STD: "stddev_samp",
}


def _window_microseconds(window_seconds: object) -> int:
    """The frame width as a validated integer literal (the window minus one microsecond)."""
    if isinstance(window_seconds, bool) or not isinstance(window_seconds, int) or window_seconds < 1:
        raise ValueError(f"window_seconds must be a positive integer, got {window_seconds!r}")
    return window_seconds * 1_000_000 - 1


def window_aggregation_sql(
    relation: str,
    primary_key: Sequence[str],
    event_time: str,
    aggregations: Sequence[Aggregation],
    integer_columns: frozenset[str] = frozenset(),
) -> str:
    """A SELECT computing each aggregation over a trailing time window, per primary key.

    A ``sum`` over one of ``integer_columns`` is a BIGINT (DuckDB's own sum of integers is a
    HUGEINT, which pandas reads as a float and the online store as a decimal: the same feature
    would reach a model as 7.0 offline and '7' online; Spark sums integers to a BIGINT too). A
    sum past BIGINT's range fails the write rather than wrapping.

    ``relation`` is an already-quoted relation name (``"staging"."in_1"``). The output has one row
    per distinct (primary key, event time) pair of the input. For the row with keys *k* and time *t*
    each aggregate covers the input rows with keys *k* and event time in ``(t - window, t]``: the
    lower bound is open, the upper bound closed, so a later row is never included and every input
    row at exactly *t* is. The open lower bound is a ``RANGE`` frame of ``window - 1µs`` preceding,
    exact for DuckDB ``TIMESTAMP`` / ``TIMESTAMPTZ`` (microsecond resolution).

    ``count`` counts non-NULL values; ``std`` is the sample standard deviation (NULL below two
    values); NULL values are ignored. Columns: primary key, event time, then each aggregation's
    ``name``; rows are ordered by keys and event time.

    >>> from engine.model.objects import Aggregation, AggFunction
    >>> sql = window_aggregation_sql('"t"', ["k"], "ts",
    ...     [Aggregation("x", AggFunction.SUM, "1h", 3600, "x_sum_1h")])
    >>> "RANGE BETWEEN INTERVAL 3599999999 MICROSECONDS PRECEDING AND CURRENT ROW" in sql
    True
    """
    if not aggregations:
        raise ValueError("at least one aggregation is required")
    keys = [quote_ident(k) for k in primary_key]
    time = quote_ident(event_time)
    partition = f"PARTITION BY {', '.join(keys)} " if keys else ""
    key_list = "".join(f"{k}, " for k in keys)

    measures = []
    for agg in aggregations:
        width = _window_microseconds(agg.window_seconds)
        function = _SQL_FUNCTION[AggFunction(agg.function)]
        window = (
            f"{function}({quote_ident(agg.column)}) OVER ("
            f"{partition}ORDER BY {time} "
            f"RANGE BETWEEN INTERVAL {width} MICROSECONDS PRECEDING AND CURRENT ROW"
            f")"
        )
        if AggFunction(agg.function) is AggFunction.SUM and agg.column in integer_columns:
            window = f"CAST({window} AS BIGINT)"
        measures.append(f"    {window} AS {quote_ident(agg.name)}")
    names = ", ".join(quote_ident(a.name) for a in aggregations)
    # Peers (rows sharing keys and time) get identical frames, hence identical values: keep one.
    peer = f"row_number() OVER (PARTITION BY {key_list}{time}) AS \"__engine_peer\""
    return (
        f"SELECT {key_list}{time}, {names}\n"
        f"FROM (\n"
        f"  SELECT {key_list}{time},\n"
        + ",\n".join(measures)
        + f",\n    {peer}\n"
        f"  FROM {relation}\n"
        f") AS \"__engine_windows\"\n"
        f"WHERE \"__engine_peer\" = 1\n"
        f"ORDER BY {key_list}{time}"
    )
