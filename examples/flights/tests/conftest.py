"""Test setup of the flights example: put the project root on sys.path; build the SQL tables once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Appended, not prepended: the project root holds a `tests/` folder of its own, and putting it
# first would shadow the repository's `tests` package for every other test in the same session.
if str(PROJECT_ROOT) not in sys.path:
    sys.path.append(str(PROJECT_ROOT))

try:  # the shared feature library the specs declare under requires (specs/sources.yaml)
    import nyc_features  # noqa: F401
except ImportError:
    try:  # run from the engine repository: its test support installs it (editable)
        from tests.support_libraries import ensure_example_library
    except ImportError:
        raise pytest.UsageError("the flights example needs its feature library: pip install -e examples/nyc_features") from None
    ensure_example_library()

# Feature groups computed by SQL files, in dependency order (inputs before readers).
SQL_GROUPS = ("flights", "landed_flights", "weather", "weather_complete", "airports", "airlines")
SOURCES = ("flights_raw", "weather_raw", "planes_raw", "airlines_raw", "airports_raw")


@pytest.fixture(scope="session")
def sql_groups() -> tuple[str, ...]:
    return SQL_GROUPS


@pytest.fixture(scope="session")
def sources() -> tuple[str, ...]:
    return SOURCES


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def con():
    """A plain DuckDB (TimeZone=UTC) with the sources registered by name and the SQL groups built.

    Sources are read as the engine is specified to read them: a naive timestamp of a source with
    ``timezone: America/New_York`` (flights_raw.time_hour) is taken as New York time and becomes
    a UTC instant; weather_raw.time_hour is a UTC instant already.
    """
    import duckdb

    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    data = PROJECT_ROOT / "data"
    connection.execute(
        "CREATE TABLE flights_raw AS SELECT * REPLACE (timezone('America/New_York', time_hour) "
        f"AS time_hour) FROM read_parquet(['{data / 'flights' / '*.parquet'}', '{data / 'new_flights' / '*.parquet'}'])"
    )
    for name in SOURCES[1:]:
        file = data / f"{name.removesuffix('_raw')}.parquet"
        connection.execute(f"CREATE TABLE {name} AS SELECT * FROM read_parquet('{file}')")
    for group in SQL_GROUPS:
        sql = (PROJECT_ROOT / "sql" / f"{group}.sql").read_text(encoding="utf-8")
        connection.execute(f"CREATE TABLE {group} AS {sql}")
    yield connection
    connection.close()
