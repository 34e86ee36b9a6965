"""DuckDB SQL for the point-in-time join of a spine with feature groups (DESIGN §3): ``ASOF LEFT JOIN``.

Compiles ``engine.sql.ops.PointInTimeJoin``; owns SQL text only, never a connection.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from engine.sql.ops import JoinSpec
from engine.sql.quote import quote_ident

# Internal names. The `_engine` prefix is reserved (DESIGN §3, Identity), so no user column or
# relation can take them.
_SPINE = "_engine_spine"
_ROW = "_engine_spine_row"


def _check(spine_event_time: str | None, spine_columns: Sequence[str], joins: Sequence[JoinSpec]) -> None:
    """Reject step lists the caller should have caught at validate time (programming errors)."""
    if not spine_columns and not any(join.columns for join in joins):
        raise ValueError("a point-in-time join needs at least one output column")
    seen: set[str] = set()
    for name in (*spine_columns, *(out for join in joins for _, out in join.columns)):
        if name in seen:
            raise ValueError(f"output column {name!r} appears twice")
        seen.add(name)
    for join in joins:
        if not join.left_on or len(join.left_on) != len(join.right_on):
            raise ValueError(f"join with {join.relation}: left_on {join.left_on!r} and right_on {join.right_on!r} must pair up")
        if join.event_time is not None and spine_event_time is None:
            raise ValueError(f"join with {join.relation} is point-in-time but the spine has no event time")
        if join.ttl_seconds is not None:
            if isinstance(join.ttl_seconds, bool) or not isinstance(join.ttl_seconds, int) or join.ttl_seconds < 0:
                raise ValueError(f"ttl_seconds must be a non-negative integer, got {join.ttl_seconds!r}")
            if join.event_time is None:
                raise ValueError(f"join with {join.relation} has a ttl but the feature group has no event time")


def point_in_time_sql(
    spine: str,
    spine_event_time: str | None,
    spine_columns: Sequence[str],
    joins: Sequence[JoinSpec],
    *,
    prune: bool = False,
    ordered: bool = True,
    matched: Collection[int] = (),
) -> str:
    """One DuckDB SELECT joining ``spine`` point-in-time with each feature group in ``joins``.

    ``spine`` is an already-quoted relation or a parenthesised subquery. The result has the
    ``spine_columns`` (in the given order) then each join's output columns, and exactly one row per
    spine row, in spine order: a row number is taken from the spine (``row_number() OVER ()``, which
    DuckDB computes in scan order) and the result is ordered by it.

    For a feature group with an event time the join is ``ASOF LEFT JOIN ... ON keys AND
    spine.t >= group.t``: the group's row with equal keys and the largest event time at or before
    the spine time, none giving NULLs (``exclusive``: ``spine.t > group.t``, strictly before). A ``ttl`` nulls the columns of a matched row whose event time
    is strictly older than ``t - ttl`` (a row exactly ``ttl`` old is kept). A group without an event
    time is a plain ``LEFT JOIN`` on keys, which relies on the offline store's one row per key. A
    spine row with a NULL key or a NULL event time gets NULLs from every join, keys-only ones
    included: with the time unknown, no feature value can be shown to precede it.

    All joins are chained in one SELECT rather than one CTE or subquery per feature group. DuckDB
    plans both forms identically (a left-deep chain of ASOF joins, then one sort by row number), and
    the chained form is what one writes by hand, so it is used; the benchmark
    (``benchmarks/training_data.py``) measures it against a hand-written ASOF query: at 1M spine
    rows and 10M feature rows, 1.05-1.06x its time (the final sort that keeps spine order) and
    1.01-1.02x its peak memory (figures in ``benchmarks/README.md``).

    ``prune`` (a small spine: an incremental view's new rows) reads of each group only the rows
    whose keys some spine row has. ``matched`` (numbers of event-time joins, from 1; the caller has
    bounded the work, see ``matched_joins``) computes those joins without ``ASOF``: a hash join of
    the spine with the group on the keys and ``group.t <= spine.t`` (``<`` when exclusive; the
    ttl a third condition, ``group.t >= spine.t - ttl``), then per spine row ``arg_max`` of the
    group's columns (one struct, so NULL values are kept) by event time. Same rows (the group has
    one row per key and time); no sort of the group, which an ``ASOF`` join does over every row it
    reads: 0.55 s against 0.77 s for 10,000 new spine rows joined with three groups of 10M rows
    (``benchmarks/e2e_apply.py`` incremental). The spine is then numbered once
    (``MATERIALIZED``), so each join's matches find their spine row again.

    Raises ``ValueError`` for step lists the semantic check rejects earlier: an event-time join with
    a spine that has no event time, unpaired keys, a ttl on a keys-only group, duplicate output
    columns.

    >>> step = JoinSpec('"offline"."plane__v1"', ("tailnum",), ("tailnum",), None, (("seats", "seats"),))
    >>> print(point_in_time_sql('"offline"."flights__v1"', None, ["tailnum"], [step]))
    WITH "_engine_spine" AS (
        SELECT *, row_number() OVER () AS "_engine_spine_row" FROM "offline"."flights__v1"
    )
    SELECT
        "s"."tailnum",
        "j1"."seats" AS "seats"
    FROM "_engine_spine" AS "s"
    LEFT JOIN "offline"."plane__v1" AS "j1" ON "s"."tailnum" = "j1"."tailnum"
    ORDER BY "s"."_engine_spine_row"
    """
    _check(spine_event_time, spine_columns, joins)
    s = quote_ident("s")
    select = [f"{s}.{quote_ident(c)}" for c in spine_columns]
    from_lines = [f"FROM {quote_ident(_SPINE)} AS {s}"]
    spine_time = f"{s}.{quote_ident(spine_event_time)}" if spine_event_time is not None else None
    for number, join in enumerate(joins, start=1):
        j = quote_ident(f"j{number}")
        conditions = [f"{s}.{quote_ident(left)} = {j}.{quote_ident(right)}" for left, right in zip(join.left_on, join.right_on)]
        if join.event_time is not None:
            join_time = f"{j}.{quote_ident(join.event_time)}"
            conditions.append(f"{spine_time} {'>' if join.exclusive else '>='} {join_time}")
            kind = "ASOF LEFT JOIN"
        else:
            join_time = None
            if spine_time is not None:
                conditions.append(f"{spine_time} IS NOT NULL")
            kind = "LEFT JOIN"
        if number in matched:
            if join.event_time is None or spine_time is None:
                raise ValueError(f"join {number} with {join.relation} has no event time to match by")
            _matched_join(join, number, spine_time, select, from_lines)
            continue
        relation = str(join.relation)
        if prune:  # only the group's rows whose keys some spine row has (a semi-join, no sort of the rest)
            r, k = quote_ident("r"), quote_ident("k")
            on = " AND ".join(f"{r}.{quote_ident(right)} = {k}.{quote_ident(left)}" for left, right in zip(join.left_on, join.right_on))
            keys = ", ".join(quote_ident(left) for left in join.left_on)
            relation = f"(SELECT {r}.* FROM {join.relation} AS {r} SEMI JOIN (SELECT DISTINCT {keys} FROM {quote_ident(_SPINE)}) AS {k} ON {on})"
        from_lines.append(f"{kind} {relation} AS {j} ON {' AND '.join(conditions)}")
        for column, out in join.columns:
            value = f"{j}.{quote_ident(column)}"
            if join.ttl_seconds is not None:
                # The only inlined value: an integer checked in _check.
                value = f"CASE WHEN {join_time} >= {spine_time} - INTERVAL ({int(join.ttl_seconds)}) SECOND THEN {value} END"
            select.append(f"{value} AS {quote_ident(out)}")
    numbered = f", row_number() OVER () AS {quote_ident(_ROW)}" if ordered or matched else ""
    return "\n".join(
        [
            f"WITH {quote_ident(_SPINE)} AS {'MATERIALIZED ' if matched else ''}(",
            f"    SELECT *{numbered} FROM {spine}",
            ")",
            "SELECT",
            ",\n".join(f"    {item}" for item in select),
            *from_lines,
            *([f"ORDER BY {s}.{quote_ident(_ROW)}"] if ordered else []),
        ]
    )


def _matched_join(join: JoinSpec, number: int, spine_time: str, select: list[str], from_lines: list[str]) -> None:
    """One event-time join as a hash join and ``arg_max`` per spine row (``matched`` above): adds its
    output columns to ``select`` and its ``LEFT JOIN`` to ``from_lines``."""
    s, r, m, v, row = quote_ident("s"), quote_ident("r"), quote_ident(f"m{number}"), quote_ident("v"), quote_ident(_ROW)
    group_time = f"{r}.{quote_ident(join.event_time)}"
    on = [f"{s}.{quote_ident(left)} = {r}.{quote_ident(right)}" for left, right in zip(join.left_on, join.right_on)]
    on.append(f"{spine_time} {'>' if join.exclusive else '>='} {group_time}")
    if join.ttl_seconds is not None:  # a row exactly ttl old is kept; the only inlined value, an integer checked in _check
        on.append(f"{group_time} >= {spine_time} - INTERVAL ({int(join.ttl_seconds)}) SECOND")
    fields = ", ".join(f"{quote_ident(out)} := {r}.{quote_ident(column)}" for column, out in join.columns)
    from_lines.append(
        f"LEFT JOIN (SELECT {s}.{row} AS {row}, arg_max(struct_pack({fields}), {group_time}) AS {v} "
        f"FROM {quote_ident(_SPINE)} AS {s} JOIN {join.relation} AS {r} ON {' AND '.join(on)} GROUP BY 1) AS {m} "
        f"ON {s}.{row} = {m}.{row}"
    )
    select.extend(f"{m}.{v}.{quote_ident(out)} AS {quote_ident(out)}" for _, out in join.columns)


def spine_key_counts_sql(spine: str, joins: Sequence[JoinSpec]) -> str:
    """One row: per join, the most rows of ``spine`` (a quoted relation or subquery) that share one
    value of its keys (NULL for an empty spine): what ``matched_joins`` decides by."""
    most = [
        f"(SELECT max(\"n\") FROM (SELECT count(*) AS \"n\" FROM {quote_ident(_SPINE)} GROUP BY {', '.join(quote_ident(c) for c in join.left_on)}))"
        for join in joins
    ]
    return f"WITH {quote_ident(_SPINE)} AS (SELECT * FROM {spine}) SELECT {', '.join(most)}"


def matched_joins(spine_keys_max: Sequence[int | None], joins: Sequence[JoinSpec], *, most: int = 4) -> frozenset[int]:
    """The event-time joins (numbers, from 1) to compute by ``_matched_join`` over a small spine:
    those where no key has more than ``most`` spine rows (``spine_keys_max``: per join, the most
    spine rows any one key has; None for an empty spine). The hash join compares each spine row with
    every group row of its key, so its work is at most ``most`` times the group's rows; a key
    with many spine rows and many group rows would make it quadratic, and the ``ASOF`` join stays."""
    return frozenset(
        number
        for number, (join, most_rows) in enumerate(zip(joins, spine_keys_max, strict=True), start=1)
        if join.event_time is not None and most_rows is not None and most_rows <= most
    )
