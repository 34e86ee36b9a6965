"""Each sql/*.sql runs in a plain DuckDB (TimeZone=UTC) over the committed data and is sane."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from flight_features.ids import flight_id

UTC = dt.timezone.utc
SQL_FILES = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "sql").glob("*.sql"))


def _one(con, sql: str):
    return con.sql(sql).fetchall()[0]


def test_every_sql_file_is_built(sql_groups) -> None:
    assert SQL_FILES == sorted(sql_groups)


@pytest.mark.parametrize("group", SQL_FILES)
def test_sql_file_is_one_select_over_declared_tables(project_root, sql_groups, sources, group) -> None:
    """Q-gate shape: one SELECT statement; it reads only sources and feature groups by name."""
    import duckdb
    import sqlglot
    from sqlglot import exp

    sql = (project_root / "sql" / f"{group}.sql").read_text(encoding="utf-8")
    statements = duckdb.connect().extract_statements(sql)
    assert [s.type.name for s in statements] == ["SELECT"]
    tree = sqlglot.parse_one(sql, read="duckdb")
    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    tables = {t.name for t in tree.find_all(exp.Table)} - ctes
    assert tables and tables <= set(sources) | set(sql_groups) | {"planes"}
    assert group not in tables


def test_flights_one_row_per_flight_with_unique_id(con) -> None:
    rows, ids, null_ids = _one(
        con, "SELECT count(*), count(DISTINCT flight_id), count(*) - count(flight_id) FROM flights"
    )
    assert rows == ids == 336_776 and null_ids == 0


def test_flight_id_sql_matches_python(con) -> None:
    raw = con.sql(
        "SELECT year, month, day, carrier, flight, origin, sched_dep_time FROM flights_raw "
        "ORDER BY year, month, day, sched_dep_time, carrier, flight, origin"
    ).df()
    sql_ids = con.sql("SELECT flight_id FROM flights").df()["flight_id"]
    python_ids = flight_id(*(raw[c] for c in raw.columns))
    assert python_ids.is_unique and set(python_ids) == set(sql_ids)
    first = raw.iloc[0]
    assert flight_id(*first.tolist()) == "20130101-UA-1545-EWR-0515"


def test_event_time_is_utc_scheduled_departure(con) -> None:
    kind = con.sql("SELECT typeof(sched_dep_ts) FROM flights LIMIT 1").fetchall()[0][0]
    assert kind == "TIMESTAMP WITH TIME ZONE"
    # Winter (EST, UTC-5) and summer (EDT, UTC-4) departures of known flights.
    winter = _one(con, "SELECT sched_dep_ts FROM flights WHERE flight_id = '20130101-UA-1545-EWR-0515'")
    assert winter[0] == dt.datetime(2013, 1, 1, 10, 15, tzinfo=UTC)
    summer = con.sql(
        "SELECT sched_dep_ts, sched_dep_time FROM flights "
        "WHERE flight_id LIKE '20130701-%' ORDER BY sched_dep_ts LIMIT 1"
    ).fetchall()[0]
    local = summer[0] - dt.timedelta(hours=4)
    assert (local.hour, local.minute) == divmod(summer[1], 100)
    # Agrees, row by row, with the source's own hour (read in America/New_York) + minutes.
    mismatches = _one(
        con,
        "SELECT count(*) FROM flights f JOIN ("
        "  SELECT strftime(make_date(year, month, day), '%Y%m%d') || '-' || carrier || '-' ||"
        "         flight || '-' || origin || '-' || lpad(sched_dep_time::VARCHAR, 4, '0') AS id,"
        "         time_hour + (sched_dep_time % 100) * INTERVAL '1' MINUTE AS expected"
        "  FROM flights_raw"
        ") r ON f.flight_id = r.id WHERE f.sched_dep_ts IS DISTINCT FROM r.expected",
    )
    assert mismatches == (0,)
    span = _one(con, "SELECT min(sched_dep_ts), max(sched_dep_ts) FROM flights")
    assert span[0] >= dt.datetime(2013, 1, 1, 5, tzinfo=UTC)
    assert span[1] < dt.datetime(2014, 1, 1, 5, tzinfo=UTC)


def test_landed_at_after_departure_for_flown_flights(con) -> None:
    """A flight lands after its own scheduled departure: it can never see its own label (PIT)."""
    flown, early, missing = _one(
        con,
        "SELECT count(landed_at), count(*) FILTER (WHERE landed_at <= sched_dep_ts), "
        "count(*) FILTER (WHERE landed_at IS NULL AND NOT (is_cancelled OR is_diverted)) "
        "FROM flights",
    )
    assert flown == 327_346 and early == 0 and missing == 0
    shortest = _one(con, "SELECT min(landed_at - sched_dep_ts) FROM flights")[0]
    assert shortest >= dt.timedelta(minutes=1)


def test_label_and_outcome_flags(con) -> None:
    total, delayed, cancelled, diverted, late, null_label = _one(
        con,
        "SELECT count(*), count(*) FILTER (WHERE is_delayed), count(*) FILTER (WHERE is_cancelled), "
        "count(*) FILTER (WHERE is_diverted), count(*) FILTER (WHERE arr_delay > 15), "
        "count(*) - count(is_delayed) FROM flights",
    )
    assert (cancelled, diverted, null_label) == (8_255, 1_175, 0)
    assert delayed == late + cancelled + diverted  # cancelled/diverted count as delayed
    assert 0.2 < delayed / total < 0.3


def test_landed_flights_rows_and_time(con) -> None:
    rows, ids, values, null_delay = _one(
        con,
        "SELECT count(*), count(DISTINCT flight_id), list(DISTINCT delayed ORDER BY delayed), "
        "count(*) - count(arr_delay) FROM landed_flights",
    )
    assert rows == ids == 327_346 and values == [0, 1] and null_delay == 0
    kind = con.sql("SELECT typeof(landed_at) FROM landed_flights LIMIT 1").fetchall()[0][0]
    assert kind == "TIMESTAMP WITH TIME ZONE"


def test_weather_hourly_utc_and_cleaned(con) -> None:
    rows, keys, max_wind, origins = _one(
        con,
        "SELECT count(*), count(DISTINCT (origin, time_hour)), max(wind_speed), "
        "list(DISTINCT origin ORDER BY origin) FROM weather",
    )
    assert rows == keys == 26_115  # unique per (origin, UTC hour) — not true of local hours
    assert max_wind < 100 and origins == ["EWR", "JFK", "LGA"]
    first = _one(con, "SELECT min(time_hour) FROM weather WHERE origin = 'EWR'")[0]
    assert first == dt.datetime(2013, 1, 1, 6, tzinfo=UTC)  # 01:00 EST
    local_dupes = _one(
        con,
        "SELECT count(*) FROM (SELECT origin, timezone('America/New_York', time_hour) AS h "
        "FROM weather GROUP BY ALL HAVING count(*) > 1)",
    )
    assert local_dupes == (3,)  # why weather_raw keeps UTC instants (DST fall-back hour)


def test_weather_complete_has_no_missing_pca_inputs(con) -> None:
    rows, gaps = _one(
        con,
        "SELECT count(*), count(*) FILTER (WHERE temp IS NULL OR dewp IS NULL OR humid IS NULL "
        "OR pressure IS NULL) FROM weather_complete",
    )
    assert 20_000 < rows < 26_115 and gaps == 0


def test_static_groups(con) -> None:
    assert _one(con, "SELECT count(*), count(DISTINCT faa) FROM airports") == (1458, 1458)
    assert _one(con, "SELECT carrier_name FROM airlines WHERE carrier = 'UA'") == (
        "United Air Lines Inc.",
    )
    unknown_carriers = _one(
        con, "SELECT count(DISTINCT carrier) FROM flights WHERE carrier NOT IN (SELECT carrier FROM airlines)"
    )
    assert unknown_carriers == (0,)


def test_trailing_route_delay_rate_is_a_rate(con) -> None:
    """A brute-force 30-day route window over landed_flights stays in [0, 1] and counts >= 1."""
    frame = con.sql(
        "SELECT origin, dest, landed_at, "
        " avg(delayed) OVER w AS rate, count(delayed) OVER w AS n FROM landed_flights "
        "WINDOW w AS (PARTITION BY origin, dest ORDER BY landed_at "
        "             RANGE BETWEEN INTERVAL 30 DAYS PRECEDING AND CURRENT ROW)"
    ).df()
    assert frame["rate"].between(0, 1).all() and (frame["n"] >= 1).all()
    assert isinstance(frame["landed_at"].dtype, pd.DatetimeTZDtype)
