"""The feature-store operations of ``engine.sql.ops`` as Spark DataFrames.

Spark has no ASOF join and no QUALIFY: the point-in-time join is a union of spine and feature rows
per key with a window taking the last feature row at or before each spine row ("last value,
ignoring nulls"), then a ttl check; latest-per-key and dedupe are ``row_number`` windows; windowed
aggregations are ``RANGE`` frames over the event time in microseconds. Owns the DataFrame plans
only; reading and writing tables is ``backend.py``'s. Every frame keeps the hidden ``ROW`` column
where row order means something (spine order, the order rows were written).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from engine.model.objects import AggFunction
from engine.sql import ops
from engine.sql.ops import Relation

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

ROW = "_engine_row"  # row order: spine order, or the order rows were written (reserved prefix)
_TIME = "_engine_pit_time"
_KIND = "_engine_pit_kind"
_FEATURES = "_engine_pit_row"
_LAST = "_engine_pit_last"
_CARRIED = "_engine_pit_spine"

Table = Callable[[Relation], "DataFrame"]  # a relation's rows, with ROW


def compile_op(source: Relation | ops.FeatureStoreOp, table: Table) -> "DataFrame":
    """The DataFrame of a relation or an operation (with ``ROW`` when its rows have an order)."""
    match source:
        case Relation():
            return table(source)
        case ops.Scan():
            df = filtered(table(source.source), source.filters, table)
            if source.columns is not None:
                df = df.select(*source.columns, ROW)
            if source.order_by:
                df = _renumbered(df.orderBy(*source.order_by, ROW))
            return df
        case ops.PointInTimeJoin():
            return point_in_time(source, table)
        case ops.WindowAggregation():
            return window_aggregation(table(source.source), source)
        case ops.Bin():
            return binned(table(source.source), source)
        case ops.LatestPerKey():
            df = table(source.source)
            if not source.event_time:
                return df
            return _first_per(df, source.primary_key, [_desc(source.event_time), _desc(ROW)])
        case ops.DedupeLatest():
            return _first_per(table(source.source), source.key, [*([_desc(source.order_by)] if source.order_by else []), _desc(ROW)])
    raise TypeError(f"not an operation the Spark backend compiles: {type(source).__name__}")


def filtered(df: "DataFrame", filters: Sequence[ops.SpineFilter], table: Table) -> "DataFrame":
    """``df`` restricted by each spine filter in turn."""
    from pyspark.sql import functions as F

    for f in filters:
        match f:
            case ops.UserFilter(condition=condition):
                from engine.sql.gate import filter_sql

                df = df.where(F.expr(filter_sql(condition, "spark")))
            case ops.TimeRange():
                from engine.errors import DataError

                for bound in (f.start, f.end):
                    if bound.tzinfo is None:
                        raise DataError(f"invalid timestamp {bound.isoformat()!r}: a time range needs aware (UTC) bounds")
                col = F.col(f.column)
                df = df.where((col >= F.lit(f.start)) & (col < F.lit(f.end)))
            case ops.NotIn():
                other = table(f.relation).select(*f.keys).distinct()
                df = df.join(other, on=[df[k] == other[k] for k in f.keys], how="left_anti")
            case _:
                raise TypeError(f"not a spine filter: {type(f).__name__}")
    return df


# --- the point-in-time join --------------------------------------------------------------------------


def point_in_time(op: ops.PointInTimeJoin, table: Table) -> "DataFrame":
    """One row per spine row, in spine order: the spine columns, then per join the columns of the
    feature row with equal keys and the largest event time at or before the spine's (DESIGN §3).

    Per event-time join: spine rows and feature rows are unioned per key; ordered by time with a
    feature row before a spine row at the same time (so "at or before"), and by write order among
    feature rows, ``last(struct, ignorenulls)`` over the rows so far is the matching feature row,
    packed as one struct so that a feature row whose values are NULL still matches. A ttl nulls a
    match older than the spine time minus the ttl. A spine row with a NULL key or time matches
    nothing. A group without an event time is a left join on its keys (one row per key).
    """
    from pyspark.sql import functions as F

    _check(op)
    spine = filtered(table(op.spine), op.filters, table)
    spine_time = op.spine_event_time
    # Working columns are spine columns renamed positionally, so feature names cannot collide.
    names = {c: f"_engine_s{i}" for i, c in enumerate(dict.fromkeys((*op.spine_columns, *(k for j in op.joins for k in j.left_on), *((spine_time,) if spine_time else ()))))}
    acc = spine.select(*(F.col(c).alias(n) for c, n in names.items()), ROW)
    outputs: list[tuple[str, str]] = []  # (working column, output name)
    for number, join in enumerate(op.joins, start=1):
        feats = table(join.relation)
        fields = [(col, f"_engine_j{number}_{i}") for i, (col, _out) in enumerate(join.columns)]
        valid_spine = F.lit(True)
        for left in join.left_on:
            valid_spine = valid_spine & F.col(names[left]).isNotNull()
        if spine_time is not None:
            valid_spine = valid_spine & F.col(names[spine_time]).isNotNull()
        if join.event_time is None:
            right = feats.select(*(F.col(r).alias(f"_engine_k{i}") for i, r in enumerate(join.right_on)), *(F.col(c).alias(w) for c, w in fields))
            cond = valid_spine
            for i, left in enumerate(join.left_on):
                cond = cond & (acc[names[left]] == right[f"_engine_k{i}"])
            acc = acc.join(right, on=cond, how="left").drop(*(f"_engine_k{i}" for i in range(len(join.right_on))))
        else:
            if getattr(op, "prune", False):
                # Only the group's rows whose keys some spine row has (a semi-join): same result.
                wanted = acc.where(valid_spine).select(*(F.col(names[left]).alias(right) for left, right in zip(join.left_on, join.right_on))).distinct()
                feats = feats.join(wanted, on=list(join.right_on), how="left_semi")
            acc = _as_of(acc, feats, join, fields, names, spine_time, valid_spine)
        outputs += [(w, out) for (col, w), (_c, out) in zip(fields, join.columns)]
    return acc.select(*(F.col(names[c]).alias(c) for c in op.spine_columns), *(F.col(w).alias(out) for w, out in outputs), ROW).orderBy(ROW)


def _as_of(acc, feats, join: ops.JoinSpec, fields, names, spine_time, valid_spine):
    """``acc`` with the columns of its ASOF match in ``feats``: one window over the union of the
    spine rows and the feature rows per key. The spine rows carry all their columns through the
    union (one struct), so the matches need no join back to the spine: one shuffle per joined
    group, not three (the window's, and both sides of a join on the spine row id)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    keys = [f"_engine_k{i}" for i in range(len(join.left_on))]
    key_types = {names[left]: acc.schema[names[left]].dataType for left in join.left_on}
    time_type = acc.schema[names[spine_time]].dataType
    packed = F.struct(F.col(join.event_time).cast(time_type).alias("t"), *(F.col(c).alias(w) for c, w in fields))
    carried = F.struct(*(F.col(c) for c in acc.columns))
    # A spine row with a NULL key or time matches nothing: all its keys are set NULL, a partition
    # no feature row is in (theirs are filtered out below). One pass over ``acc``: a second branch
    # for these rows would evaluate ``acc`` twice at every join, twice as often per join chained.
    left = acc.select(
        *(F.when(valid_spine, F.col(names[lft])).alias(k) for lft, k in zip(join.left_on, keys)),
        F.col(names[spine_time]).alias(_TIME),
        F.lit(1).alias(_KIND),
        F.lit(None).cast("long").alias("_engine_order"),
        carried.alias(_CARRIED),
    )
    right = feats.where(F.col(join.event_time).isNotNull())
    for r in join.right_on:
        right = right.where(F.col(r).isNotNull())
    right = right.select(
        *(F.col(r).cast(key_types[names[left]]).alias(k) for r, left, k in zip(join.right_on, join.left_on, keys)),
        F.col(join.event_time).cast(time_type).alias(_TIME),
        # At equal times a feature row sorts before the spine row (kind 0 < 1: at or before t) or,
        # for an exclusive join, after it (2 > 1: strictly before t).
        F.lit(2 if join.exclusive else 0).alias(_KIND),
        F.col(ROW).alias("_engine_order"),
        packed.alias(_FEATURES),
        F.lit(None).cast(left.schema[_CARRIED].dataType).alias(_CARRIED),
    )
    left = left.withColumn(_FEATURES, F.lit(None).cast(right.schema[_FEATURES].dataType))
    window = Window.partitionBy(*keys).orderBy(_TIME, _KIND, "_engine_order").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    matched = left.unionByName(right).withColumn(_LAST, F.last(_FEATURES, ignorenulls=True).over(window)).where(F.col(_KIND) == 1)
    if join.ttl_seconds is not None:
        fresh = F.col(f"{_LAST}.t") >= F.col(_TIME) - F.expr(f"INTERVAL {int(join.ttl_seconds)} SECONDS")
        matched = matched.withColumn(_LAST, F.when(fresh, F.col(_LAST)))
    return matched.select(*(F.col(f"{_CARRIED}.{c}").alias(c) for c in acc.columns), *(F.col(f"{_LAST}.{w}").alias(w) for _c, w in fields))


def _check(op: ops.PointInTimeJoin) -> None:
    """The same programming-error checks as the DuckDB compiler (the semantic check runs first)."""
    if not op.spine_columns and not any(j.columns for j in op.joins):
        raise ValueError("a point-in-time join needs at least one output column")
    seen: set[str] = set()
    for name in (*op.spine_columns, *(out for j in op.joins for _, out in j.columns)):
        if name in seen:
            raise ValueError(f"output column {name!r} appears twice")
        seen.add(name)
    for join in op.joins:
        if not join.left_on or len(join.left_on) != len(join.right_on):
            raise ValueError(f"join with {join.relation}: left_on {join.left_on!r} and right_on {join.right_on!r} must pair up")
        if join.event_time is not None and op.spine_event_time is None:
            raise ValueError(f"join with {join.relation} is point-in-time but the spine has no event time")
        if join.ttl_seconds is not None:
            if isinstance(join.ttl_seconds, bool) or not isinstance(join.ttl_seconds, int) or join.ttl_seconds < 0:
                raise ValueError(f"ttl_seconds must be a non-negative integer, got {join.ttl_seconds!r}")
            if join.event_time is None:
                raise ValueError(f"join with {join.relation} has a ttl but the feature group has no event time")


# --- windowed aggregations, binning, latest-per-key -------------------------------------------------------

_FUNCTIONS: dict[AggFunction, str] = {
    AggFunction.COUNT: "count",
    AggFunction.SUM: "sum",
    AggFunction.MEAN: "avg",
    AggFunction.MIN: "min",
    AggFunction.MAX: "max",
    AggFunction.STD: "stddev_samp",
}


_RUNNING = (AggFunction.COUNT, AggFunction.SUM, AggFunction.MEAN)
_ENTRY = "_engine_entry"


def window_aggregation(df: "DataFrame", op: ops.WindowAggregation) -> "DataFrame":
    """Per key and event time t, each aggregation over the rows with time in (t - window, t]: one
    row per (key, t), ordered by key and time (as on DuckDB).

    Spark evaluates a moving ``RANGE`` frame by aggregating the whole frame again for every row
    (its sliding frame cannot remove a row from an aggregate), so a dense key with a long window
    costs rows x rows-per-window: 33 s for a 30-day rate per carrier over 336,000 flights. Counts,
    and sums and means of integer columns, are therefore running totals instead: every row enters
    at its time t and leaves, negated, at t + window, and a total over the events up to t (a
    cumulative frame, evaluated incrementally) is exactly the window (t - window, t]; integer
    arithmetic keeps it exact. Float sums and means, minimum, maximum and standard deviation keep
    the ``RANGE`` frame (window - 1µs preceding to the current row, peers included), over the
    entering rows only: the difference of two running float totals cancels (a window of zeros came
    out as -5.8e-16, failing a ``between [0, …]`` expectation).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if not op.aggregations:
        raise ValueError("at least one aggregation is required")
    micros = "_engine_micros"
    keys = list(op.primary_key)
    for agg in op.aggregations:
        seconds = agg.window_seconds
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 1:
            raise ValueError(f"window_seconds must be a positive integer, got {seconds!r}")
    types = {f.name: f.dataType for f in df.schema.fields}
    integral = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)

    def running(agg) -> bool:
        function = AggFunction(agg.function)
        return function is AggFunction.COUNT or (function in _RUNNING and isinstance(types.get(agg.column), integral))

    base = df.withColumn(micros, F.unix_micros(F.col(op.event_time).cast("timestamp")))
    columns = sorted({agg.column for agg in op.aggregations})
    windows = sorted({agg.window_seconds for agg in op.aggregations if running(agg)})
    # What each row adds to the running totals of a column: 1 if it holds a value; the value itself
    # for an integer column (as a long: exact).
    parts: list[tuple[str, "Column"]] = []
    for column in sorted({agg.column for agg in op.aggregations if running(agg)}):
        col = F.col(column)
        parts.append((f"n_{column}", F.when(col.isNotNull(), F.lit(1)).otherwise(F.lit(0)).cast("long")))
        if isinstance(types.get(column), integral):
            parts.append((f"v_{column}", F.coalesce(col.cast("long"), F.lit(0).cast("long"))))
    # generated names only (a user's column may hold dots or backticks, which F.col would parse)
    alias = {(name, w): f"_engine_part{i}_{w}" for w in windows for i, (name, _) in enumerate(parts)}
    payload = [c for c in columns if c not in keys and c != op.event_time]

    events = base.select(
        *keys, op.event_time, micros, *payload, F.lit(True).alias(_ENTRY),
        *[expr.alias(alias[(name, w)]) for w in windows for name, expr in parts],
    )  # fmt: skip
    timed = base.where(F.col(micros).isNotNull())
    for w in windows:  # the same rows leaving, negated, one window later; only their own totals move
        leaving = timed.select(
            *keys, op.event_time, (F.col(micros) + F.lit(w * 1_000_000)).alias(micros),
            *[F.lit(None).cast(types[c]).alias(c) for c in payload], F.lit(False).alias(_ENTRY),
            *[(-expr if other == w else F.lit(0).cast("long")).alias(alias[(name, other)]) for other in windows for name, expr in parts],
        )  # fmt: skip
        events = events.unionByName(leaving)
    so_far = Window.partitionBy(*keys).orderBy(micros).rangeBetween(Window.unboundedPreceding, 0)
    totals = {key: F.sum(F.col(name)).over(so_far) for key, name in alias.items()}
    measures = []
    for agg in op.aggregations:
        function, w, column = AggFunction(agg.function), agg.window_seconds, agg.column
        if running(agg):
            count = totals[(f"n_{column}", w)]
            if function is AggFunction.COUNT:
                measures.append(count.alias(agg.name))
                continue
            total = totals[(f"v_{column}", w)]
            if function is AggFunction.MEAN:
                total = total.cast("double") / count
            measures.append(F.when(count > 0, total).alias(agg.name))
        else:
            frame = Window.partitionBy(*keys).orderBy(micros).rangeBetween(-(w * 1_000_000 - 1), 0)
            entering = F.when(F.col(_ENTRY), F.col(column))
            measures.append(getattr(F, _FUNCTIONS[function])(entering).over(frame).alias(agg.name))
    peers = Window.partitionBy(*keys, op.event_time).orderBy(micros)
    out = events.select(*keys, op.event_time, F.col(_ENTRY), *measures, F.row_number().over(peers).alias("_engine_peer"))
    out = out.where(F.col(_ENTRY) & (F.col("_engine_peer") == 1)).drop("_engine_peer", _ENTRY).orderBy(*keys, op.event_time)
    return _renumbered(out)


def binned(df: "DataFrame", op: ops.Bin) -> "DataFrame":
    """Every input column, plus one bin column per (binning, edges): ``v < e1`` → 0,
    ``e_i <= v < e_{i+1}`` → i, ``v >= en`` → n; NULL and NaN → NULL; labels replace indices."""
    from pyspark.sql import functions as F

    if not op.columns:
        raise ValueError("binning needs at least one input column")
    out = [F.col(c) for c in op.columns]
    for binning, edges in op.bins:
        edges = tuple(float(e) for e in edges)
        if any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError(f"bin edges must be strictly ascending, got {list(edges)}")
        labels = binning.labels
        if labels is not None and len(labels) != len(edges) + 1:
            raise ValueError(f"binning of {binning.column!r} needs {len(edges) + 1} labels for {len(edges)} edges, got {len(labels)}")

        def value(i: int):
            return F.lit(labels[i]) if labels is not None else F.lit(i)

        v = F.col(binning.column).cast("double")
        expr = F.when(v.isNull() | F.isnan(v), F.lit(None))
        for i, edge in enumerate(edges):
            expr = expr.when(v < F.lit(edge), value(i))
        out.append(expr.otherwise(value(len(edges))).alias(binning.name))
    return df.select(*out, ROW)


def _first_per(df: "DataFrame", keys: Sequence[str], order: list["Column"]) -> "DataFrame":
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    window = Window.partitionBy(*keys).orderBy(*order)
    return df.withColumn("_engine_rank", F.row_number().over(window)).where(F.col("_engine_rank") == 1).drop("_engine_rank")


def _desc(column: str) -> "Column":
    from pyspark.sql import functions as F

    return F.col(column).desc_nulls_last()


def _renumbered(df: "DataFrame") -> "DataFrame":
    """``df`` (ordered) with ROW numbering its rows in that order."""
    from pyspark.sql import functions as F

    return df.drop(ROW).withColumn(ROW, F.monotonically_increasing_id()) if ROW in df.columns else df.withColumn(ROW, F.monotonically_increasing_id())
