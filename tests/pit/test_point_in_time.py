"""The point-in-time join SQL against a brute-force Python oracle (DESIGN §3; RELIABILITY F3, P5)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.backends.duckdb.point_in_time import matched_joins, point_in_time_sql, spine_key_counts_sql
from engine.sql.ops import JoinSpec as JoinStep

from . import check_golden, connect

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
BASE_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z in microseconds
SECOND = 1_000_000

# ---------------------------------------------------------------- tables from Python data


@dataclass(frozen=True)
class Table:
    """Column names, a DuckDB-ish kind per column ('int', 'str', 'time' as UTC microseconds), rows."""

    columns: tuple[str, ...]
    kinds: tuple[str, ...]
    rows: tuple[tuple, ...]


def to_arrow(table: Table):
    """``table`` as Arrow: 'time' columns (UTC microseconds) as timestamp[us, UTC]."""
    import pyarrow as pa

    arrays = []
    for i, kind in enumerate(table.kinds):
        values = [row[i] for row in table.rows]
        if kind == "time":
            arrays.append(pa.array(values, pa.int64()).cast(pa.timestamp("us", tz="UTC")))
        else:
            arrays.append(pa.array(values, pa.int64() if kind == "int" else pa.string()))
    return pa.Table.from_arrays(arrays, names=list(table.columns))


def create(con, name: str, table: Table) -> None:
    """Create ``name`` from ``table`` through Arrow, 'time' columns as TIMESTAMPTZ."""
    con.register("_frame", to_arrow(table))
    con.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM _frame')
    con.unregister("_frame")
    types = {r[0]: r[1] for r in con.execute(f'DESCRIBE "{name}"').fetchall()}
    assert all(types[c] == "TIMESTAMP WITH TIME ZONE" for c, k in zip(table.columns, table.kinds) if k == "time")


def to_micros(value: object) -> object:
    """DuckDB returns TIMESTAMPTZ as aware datetimes; compare them as UTC microseconds."""
    if isinstance(value, dt.datetime):
        return (value - EPOCH) // dt.timedelta(microseconds=1)
    return value


def run(con, sql: str) -> list[tuple]:
    return [tuple(to_micros(v) for v in row) for row in con.execute(sql).fetchall()]


# ---------------------------------------------------------------- the brute-force oracle


def brute_force_point_in_time(
    spine: Table,
    spine_event_time: str | None,
    spine_columns: Sequence[str],
    joins_data: Sequence[tuple[JoinStep, Table]],
) -> list[tuple]:
    """DESIGN §3 read literally, one spine row and one feature row at a time."""
    out = []
    for srow in spine.rows:
        s = dict(zip(spine.columns, srow))
        t = s[spine_event_time] if spine_event_time is not None else None
        result = [s[c] for c in spine_columns]
        for step, table in joins_data:
            keys = [s[c] for c in step.left_on]
            match = None
            if not any(k is None for k in keys) and not (spine_event_time is not None and t is None):
                candidates = []
                for frow in table.rows:
                    f = dict(zip(table.columns, frow))
                    # NULL never equals anything, a NULL key included.
                    if any(f[r] is None or f[r] != k for r, k in zip(step.right_on, keys)):
                        continue
                    # as_of inclusive: at or before t; exclusive: strictly before t.
                    if step.event_time is not None and not (f[step.event_time] is not None and (f[step.event_time] < t if step.exclusive else f[step.event_time] <= t)):
                        continue
                    candidates.append(f)
                if step.event_time is None:
                    assert len(candidates) <= 1, "the offline store keeps one row per key"
                    match = candidates[0] if candidates else None
                elif candidates:
                    times = [c[step.event_time] for c in candidates]
                    assert len(set(times)) == len(times), "(primary key, event time) is unique in the offline store"
                    match = max(candidates, key=lambda c: c[step.event_time])
                    if step.ttl_seconds is not None and match[step.event_time] < t - step.ttl_seconds * SECOND:
                        match = None
            result.extend(match[c] if match is not None else None for c, _ in step.columns)
        out.append(tuple(result))
    return out


# ---------------------------------------------------------------- generated scenarios

# Spine and feature times share a small grid (whole seconds, ±1µs) so that equal times and
# exact ttl boundaries (t - ttl, and one microsecond older) come up often.
times = st.builds(lambda sec, off: BASE_US + sec * SECOND + off, st.integers(0, 6), st.sampled_from([0, 1, SECOND - 1]))
k1_values = st.integers(0, 3)
k2_values = st.sampled_from(["x", "y", "ü"])


@st.composite
def scenarios(draw):
    """(spine table, join steps with their tables) with 1-2 keys and 1-3 feature groups."""
    n_keys = draw(st.integers(1, 2))
    spine_keys = ("k1", "k2")[:n_keys]
    key_kinds = ("int", "str")[:n_keys]
    key_strats = (k1_values, k2_values)[:n_keys]
    row = st.tuples(
        *(st.one_of(st.none(), s) for s in key_strats),
        st.one_of(st.none(), times),
        st.integers(0, 1),
    )
    base = draw(st.lists(row, max_size=15))
    duplicates = draw(st.lists(st.integers(0, max(len(base) - 1, 0)), max_size=4)) if base else []
    rows = base + [base[i] for i in duplicates]
    rows = draw(st.permutations(rows)) if rows else rows
    spine = Table((*spine_keys, "t", "label"), (*key_kinds, "time", "int"), tuple(rows))

    joins = []
    for number in range(1, draw(st.integers(1, 3)) + 1):
        has_time = draw(st.booleans())
        same_names = draw(st.booleans())
        right_keys = spine_keys if same_names else tuple(f"g{number}_key_{i}" for i in range(n_keys))
        fg_key = st.tuples(*(st.one_of(st.none(), s) if draw(st.booleans()) else s for s in key_strats))
        if has_time:
            ident = st.tuples(fg_key, times).map(lambda kt: (*kt[0], kt[1]))
        else:
            ident = fg_key
        idents = draw(st.lists(ident, max_size=12, unique=True))
        values = draw(st.lists(st.one_of(st.none(), st.integers(-50, 50)), min_size=len(idents), max_size=len(idents)))
        table_rows = tuple((*i, v) for i, v in zip(idents, values))
        time_cols = ("ts",) if has_time else ()
        table = Table((*right_keys, *time_cols, "v"), (*key_kinds, *(("time",) if has_time else ()), "int"), table_rows)
        columns = [("v", f"g{number}_v")]
        if has_time:
            columns.append(("ts", f"g{number}_ts"))  # brought in to check "no feature later than t"
        ttl = draw(st.one_of(st.none(), st.integers(0, 3))) if has_time else None
        exclusive = draw(st.booleans()) if has_time else False
        step = JoinStep(f'"g{number}"', spine_keys, right_keys, "ts" if has_time else None, tuple(columns), ttl, exclusive=exclusive)
        joins.append((step, table))
    return spine, joins


def _run_scenario(spine: Table, joins: list[tuple[JoinStep, Table]]) -> tuple[list[str], list[tuple]]:
    con = connect()
    create(con, "spine", spine)
    for number, (_, table) in enumerate(joins, start=1):
        create(con, f"g{number}", table)
    spine_columns = list(spine.columns)
    sql = point_in_time_sql('"spine"', "t", spine_columns, [step for step, _ in joins])
    return spine_columns, run(con, sql)


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_F3_join_equals_brute_force_oracle(scenario) -> None:
    """F3: ties, ttl boundaries, missing and NULL keys, duplicate spine rows, 1-3 groups."""
    spine, joins = scenario
    spine_columns, got = _run_scenario(spine, joins)
    expected = brute_force_point_in_time(spine, "t", spine_columns, joins)
    assert got == expected


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_F3_spine_kept_and_no_feature_later_than_spine_time(scenario) -> None:
    """One output row per spine row, spine columns untouched and in order; every matched event time <= t (and >= t - ttl)."""
    spine, joins = scenario
    spine_columns, got = _run_scenario(spine, joins)
    assert len(got) == len(spine.rows)
    assert [row[: len(spine_columns)] for row in got] == list(spine.rows)
    t_index = spine_columns.index("t")
    offset = len(spine_columns)
    for step, _ in joins:
        names = [out for _, out in step.columns]
        if step.event_time is not None:
            ts_index = offset + names.index(next(out for col, out in step.columns if col == step.event_time))
            for row in got:
                if row[ts_index] is not None:
                    assert row[t_index] is not None and (row[ts_index] < row[t_index] if step.exclusive else row[ts_index] <= row[t_index])
                    if step.ttl_seconds is not None:
                        assert row[ts_index] >= row[t_index] - step.ttl_seconds * SECOND
        offset += len(names)


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_F3_small_spine_forms_equal_brute_force_oracle(scenario) -> None:
    """F3, an incremental view's small spine: pruned to its keys, and every event-time join a hash
    join with arg_max per spine row (``matched``) instead of ASOF, the rows are the oracle's, in spine
    order (NULL keys and times, duplicate spine rows, ttl, exclusive, NULL feature values)."""
    spine, joins = scenario
    con = connect()
    create(con, "spine", spine)
    for number, (_, table) in enumerate(joins, start=1):
        create(con, f"g{number}", table)
    steps = [step for step, _ in joins]
    matched = frozenset(number for number, step in enumerate(steps, start=1) if step.event_time is not None)
    expected = brute_force_point_in_time(spine, "t", list(spine.columns), joins)
    assert run(con, point_in_time_sql('"spine"', "t", list(spine.columns), steps, prune=True, matched=matched)) == expected
    unordered = run(con, point_in_time_sql('"spine"', "t", list(spine.columns), steps, prune=True, ordered=False, matched=matched))
    assert sorted(unordered, key=repr) == sorted(expected, key=repr)


def test_small_spine_hash_join_only_where_no_key_repeats_much() -> None:
    """The hash join compares each spine row with every group row of its key: a key with more than
    ``most`` spine rows keeps ASOF (no quadratic work); keys-only joins and an empty spine too."""
    timed = JoinStep('"g1"', ("id",), ("id",), "ts", (("v", "v"),))
    keyed = JoinStep('"g2"', ("id",), ("id",), None, (("w", "w"),))
    assert matched_joins([4, 1], [timed, keyed]) == {1}
    assert matched_joins([5, 1], [timed, keyed]) == frozenset()
    assert matched_joins([None, None], [timed, keyed]) == frozenset()
    assert matched_joins([1, 1], [timed, timed], most=0) == frozenset()
    with pytest.raises(ValueError, match="no event time"):
        point_in_time_sql('"spine"', "t", ["id", "t"], [keyed], prune=True, matched={1})
    con = connect()
    con.execute('CREATE TABLE spine (id BIGINT, "Other Key" BIGINT, t TIMESTAMPTZ)')
    con.execute("INSERT INTO spine VALUES (1, 7, NULL), (1, 8, NULL), (1, 7, NULL), (2, NULL, NULL), (NULL, NULL, NULL), (NULL, NULL, NULL)")
    pair = JoinStep('"g3"', ("id", "Other Key"), ("id", "k2"), "ts", (("v", "v3"),))
    assert con.execute(spine_key_counts_sql('"spine"', [timed, pair])).fetchall() == [(3, 2)]
    assert con.execute(spine_key_counts_sql('(SELECT * FROM "spine" WHERE false)', [timed])).fetchall() == [(None,)]


# ---------------------------------------------------------------- pinned cases


def _one_join(spine_rows, feature_rows, ttl=None, *, event_time: str | None = "ts", spine_time: str | None = "t", exclusive: bool = False):
    con = connect()
    create(con, "spine", Table(("id", "t"), ("int", "time"), tuple(spine_rows)))
    fg_cols = ("fid", "ts", "v") if event_time else ("fid", "v")
    create(con, "fg", Table(fg_cols, ("int", "time", "int") if event_time else ("int", "int"), tuple(feature_rows)))
    step = JoinStep('"fg"', ("id",), ("fid",), event_time, (("v", "v"),), ttl, exclusive=exclusive)
    return run(con, point_in_time_sql('"spine"', spine_time, ["id", "t"], [step]))


def test_F3_equal_time_is_visible() -> None:
    """A feature row at exactly the spine time is taken (<= t), one a microsecond later is not."""
    t = BASE_US + 10 * SECOND
    got = _one_join([(1, t), (2, t)], [(1, t, 7), (1, t - SECOND, 6), (2, t + 1, 9)])
    assert got == [(1, t, 7), (2, t, None)]


def test_F3_exclusive_takes_only_rows_strictly_before_the_spine_time() -> None:
    """as_of: exclusive ("activity before this transaction"): the row at exactly t is the spine
    row's own event; the one a microsecond earlier is the latest before it."""
    t = BASE_US + 10 * SECOND
    got = _one_join([(1, t), (2, t), (3, t)], [(1, t, 7), (1, t - SECOND, 6), (2, t, 9), (3, t - 1, 5)], exclusive=True)
    assert got == [(1, t, 6), (2, t, None), (3, t, 5)]


def test_F3_ttl_boundary_kept_at_exactly_ttl_nulled_one_microsecond_older() -> None:
    t = BASE_US + 100 * SECOND
    got = _one_join([(1, t), (2, t), (3, t)], [(1, t - 60 * SECOND, 1), (2, t - 60 * SECOND - 1, 2), (3, t - 59 * SECOND, 3)], ttl=60)
    assert got == [(1, t, 1), (2, t, None), (3, t, 3)]


def test_F3_ttl_zero_keeps_only_same_instant() -> None:
    t = BASE_US
    assert _one_join([(1, t), (2, t)], [(1, t, 1), (2, t - 1, 2)], ttl=0) == [(1, t, 1), (2, t, None)]


def test_F3_ttl_nulls_rather_than_falling_back_to_an_older_row() -> None:
    """The latest row at or before t decides; when it is too old, every older one is too."""
    t = BASE_US + 100 * SECOND
    assert _one_join([(1, t)], [(1, t - 10 * SECOND, 1), (1, t - 20 * SECOND, 2)], ttl=5) == [(1, t, None)]


def test_F3_null_key_and_null_time_get_nulls_and_are_kept() -> None:
    t = BASE_US
    got = _one_join([(None, t), (1, None), (1, t)], [(1, t, 5)])
    assert got == [(None, t, None), (1, None, None), (1, t, 5)]


def test_F3_keys_only_group_ignores_time_but_not_a_null_spine_time() -> None:
    t = BASE_US
    got = _one_join([(1, t), (1, t - 999 * SECOND), (1, None), (2, t)], [(1, 5)], event_time=None)
    assert got == [(1, t, 5), (1, t - 999 * SECOND, 5), (1, None, None), (2, t, None)]


def test_F3_keys_only_join_without_spine_time() -> None:
    got = _one_join([(1, None), (3, None)], [(1, 5)], event_time=None, spine_time=None)
    assert got == [(1, None, 5), (3, None, None)]


def test_F3_duplicate_spine_rows_stay_duplicated_in_order() -> None:
    t = BASE_US
    got = _one_join([(2, t), (1, t), (2, t), (1, t)], [(1, t, 1), (2, t, 2)])
    assert got == [(2, t, 2), (1, t, 1), (2, t, 2), (1, t, 1)]


def test_F3_empty_spine_gives_empty_result() -> None:
    assert _one_join([], [(1, BASE_US, 1)]) == []


def test_F3_spine_order_kept_on_a_parallel_scan() -> None:
    """Many row groups (DuckDB scans them in parallel): output still in spine insertion order."""
    con = connect()
    con.execute("SET threads = 4")
    con.execute(
        "CREATE TABLE spine AS SELECT i AS pos, hash(i) % 1000 AS id, "
        "TIMESTAMPTZ '2024-01-01' + to_seconds(hash(i * 7) % 86400) AS t FROM range(300000) r(i) ORDER BY hash(i * 3)"
    )
    con.execute("CREATE TABLE fg AS SELECT i % 1000 AS id, TIMESTAMPTZ '2024-01-01' + to_seconds(i // 1000 * 60) AS ts, i AS v FROM range(1000 * 1440) r(i)")
    expected = [r[0] for r in con.execute("SELECT pos FROM spine").fetchall()]
    step = JoinStep('"fg"', ("id",), ("id",), "ts", (("v", "v"),))
    sql = point_in_time_sql('"spine"', "t", ["pos", "id", "t"], [step])
    got = con.execute(f"SELECT pos, v IS NULL FROM ({sql})").fetchall()
    assert [r[0] for r in got] == expected
    assert not any(r[1] for r in got)  # every spine time is at or after the first feature row


def test_F3_spine_may_be_a_filtered_subquery() -> None:
    con = connect()
    create(con, "spine", Table(("id", "t"), ("int", "time"), ((1, BASE_US), (2, BASE_US), (1, BASE_US + 5))))
    create(con, "fg", Table(("id", "ts", "v"), ("int", "time", "int"), ((1, BASE_US, 10), (1, BASE_US + 5, 11))))
    step = JoinStep('"fg"', ("id",), ("id",), "ts", (("v", "v"),))
    got = run(con, point_in_time_sql('(SELECT * FROM "spine" WHERE id = 1)', "t", ["id", "t"], [step]))
    assert got == [(1, BASE_US, 10), (1, BASE_US + 5, 11)]


def test_P5_hostile_identifiers_are_quoted_end_to_end() -> None:
    """P5: names with quotes, semicolons and comment markers stay identifiers."""
    con = connect()
    key, col, out = 'k"; DROP TABLE fg; --', "v' OR 1=1 --", 'o"ut'
    con.execute('CREATE TABLE spine ("k""; DROP TABLE fg; --" BIGINT, t TIMESTAMPTZ)')
    con.execute("INSERT INTO spine VALUES (1, TIMESTAMPTZ '2024-01-02')")
    con.execute('CREATE TABLE fg ("k""; DROP TABLE fg; --" BIGINT, ts TIMESTAMPTZ, "v\' OR 1=1 --" INT)')
    con.execute("INSERT INTO fg VALUES (1, TIMESTAMPTZ '2024-01-01', 42)")
    step = JoinStep('"fg"', (key,), (key,), "ts", ((col, out),), 86400)
    cursor = con.execute(point_in_time_sql('"spine"', "t", [key], [step]))
    assert [d[0] for d in cursor.description] == [key, out]
    assert cursor.fetchall() == [(1, 42)]
    assert con.execute("SELECT count(*) FROM fg").fetchone() == (1,)


@pytest.mark.parametrize(
    ("spine_time", "step", "message"),
    [
        (None, JoinStep('"fg"', ("id",), ("id",), "ts", (("v", "v"),)), "spine has no event time"),
        ("t", JoinStep('"fg"', ("id",), ("id", "x"), "ts", (("v", "v"),)), "must pair up"),
        ("t", JoinStep('"fg"', (), (), "ts", (("v", "v"),)), "must pair up"),
        ("t", JoinStep('"fg"', ("id",), ("id",), None, (("v", "v"),), 60), "has no event time"),
        ("t", JoinStep('"fg"', ("id",), ("id",), "ts", (("v", "v"),), -1), "non-negative integer"),
        ("t", JoinStep('"fg"', ("id",), ("id",), "ts", (("v", "v"),), True), "non-negative integer"),
        ("t", JoinStep('"fg"', ("id",), ("id",), "ts", (("v", "v"),), "60; DROP"), "non-negative integer"),  # type: ignore[arg-type]
        ("t", JoinStep('"fg"', ("id",), ("id",), "ts", (("v", "id"),)), "appears twice"),
    ],
)
def test_steps_the_semantic_check_rejects_raise(spine_time, step, message) -> None:
    with pytest.raises(ValueError, match=message):
        point_in_time_sql('"spine"', spine_time, ["id", "t"], [step])


def test_generated_sql_golden() -> None:
    """The SQL for a fixed two-join view: one ASOF join with a ttl, one keys-only join."""
    weather = JoinStep(
        '"offline"."weather__v1"', ("origin", "carrier"), ("airport", "carrier"), "time_hour", (("temp", "weather_temp"), ("wind", "weather_wind")), 3600
    )
    planes = JoinStep('"offline"."planes__v1"', ("tailnum",), ("tailnum",), None, (("seats", "seats"),))
    sql = point_in_time_sql('"offline"."flights__v1"', "sched_dep", ["flight_id", "sched_dep", "delayed"], [weather, planes])
    assert sql.count("ASOF LEFT JOIN") == 1 and sql.count("\nLEFT JOIN") == 1  # the ttl join by time, the other by key
    check_golden("two_joins", sql)  # asserts the whole text against tests/golden


def test_small_spine_hash_join_quotes_every_identifier_and_keeps_types() -> None:
    """The ``matched`` form names columns inside a struct and reads them back: names with spaces,
    quotes, a keyword and a renamed output give the ASOF form's rows and types (NULL features and a
    NULL spine key included)."""
    con = connect()
    con.execute('CREATE TABLE spine ("Entity Id" BIGINT, "t ""q""" TIMESTAMPTZ, v INT)')
    con.execute("INSERT INTO spine VALUES (1, '2024-01-02 00:00:00+00', 1), (2, '2024-01-02 00:00:00+00', 2), (NULL, '2024-01-02 00:00:00+00', 3)")
    con.execute('CREATE TABLE g ("Entity Id" BIGINT, "ev time" TIMESTAMPTZ, "my col" DOUBLE, v INT, "Select" VARCHAR)')
    con.execute(
        "INSERT INTO g VALUES (1, '2024-01-01 00:00:00+00', 1.5, 10, 'a'), (1, '2024-01-03 00:00:00+00', 9.9, 11, 'b'), "
        "(2, '2024-01-01 12:00:00+00', NULL, NULL, NULL)"
    )
    step = JoinStep('"g"', ("Entity Id",), ("Entity Id",), "ev time", (("my col", "my col"), ("v", "g v"), ("Select", "Select"), ("ev time", "ev time")))
    columns = ["Entity Id", 't "q"', "v"]
    asof = point_in_time_sql('"spine"', 't "q"', columns, [step], prune=True)
    hashed = point_in_time_sql('"spine"', 't "q"', columns, [step], prune=True, matched={1})
    assert run(con, hashed) == run(con, asof)
    assert [r[3:6] for r in run(con, hashed)] == [(1.5, 10, "a"), (None, None, None), (None, None, None)]
    assert con.execute(f"DESCRIBE {hashed}").fetchall() == con.execute(f"DESCRIBE {asof}").fetchall()
