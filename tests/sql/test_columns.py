"""Static output-column inference for gated SELECTs (E4): names, types, unknown and ambiguous columns."""

from __future__ import annotations

import duckdb
import pytest

from engine.sql.columns import infer_output_columns
from engine.sql.gate import gate_select
from engine.sql.quote import quote_ident

from .conftest import check_golden

SCHEMAS = {
    "weather_raw": {
        "origin": "VARCHAR",
        "time_hour": "TIMESTAMP",
        "Temp": "DOUBLE",
        "wind_speed": "FLOAT",
        "visib": "INTEGER",
        "n": "BIGINT",
        "updated_at": "TIMESTAMPTZ",
        "raw": "UNKNOWN",
    },
    "flights": {"origin": "VARCHAR", "tailnum": "VARCHAR", "dep_delay": "INTEGER", "day": "DATE"},
}


def infer(sql: str, schemas: dict[str, dict[str, str]] = SCHEMAS) -> tuple[dict[str, str] | None, list[str]]:
    gated, messages = gate_select(sql, set(schemas))
    assert gated is not None, messages
    return infer_output_columns(gated, schemas)


def test_star_expands_in_declared_order_and_case() -> None:
    columns, problems = infer("SELECT * FROM weather_raw")
    assert problems == []
    assert columns == SCHEMAS["weather_raw"]
    assert list(columns) == list(SCHEMAS["weather_raw"])


def test_star_exclude_and_extra_columns() -> None:
    columns, _ = infer("SELECT * EXCLUDE (raw), visib * 2 AS v2 FROM weather_raw")
    assert columns is not None
    assert list(columns) == ["origin", "time_hour", "Temp", "wind_speed", "visib", "n", "updated_at", "v2"]


def test_aliases_keep_their_spelling() -> None:
    columns, _ = infer("SELECT Temp AS TempC, origin AS Airport FROM weather_raw ORDER BY TempC")
    assert columns == {"TempC": "DOUBLE", "Airport": "VARCHAR"}


def test_column_references_take_the_source_spelling() -> None:
    """Like DuckDB: `SELECT TEMP` outputs the catalog's 'Temp'; an inner alias keeps its own spelling."""
    columns, _ = infer("SELECT TEMP, w.ORIGIN, abc FROM (SELECT Temp, origin, n AS Abc FROM weather_raw) w")
    assert columns is not None and list(columns) == ["Temp", "origin", "Abc"]


def test_types_of_simple_expressions() -> None:
    columns, problems = infer(
        "SELECT origin, temp * 2 AS t2, n + 1 AS n1, visib > 3 AS clear, CAST(n AS VARCHAR) AS ns, "
        "time_hour::DATE AS d, updated_at, count(*) OVER (PARTITION BY origin) AS c, raw "
        "FROM weather_raw"
    )
    assert problems == []
    assert columns == {
        "origin": "VARCHAR",
        "t2": "DOUBLE",
        "n1": "BIGINT",
        "clear": "BOOLEAN",
        "ns": "VARCHAR",
        "d": "DATE",
        "updated_at": "TIMESTAMPTZ",
        "c": "BIGINT",
        "raw": "UNKNOWN",
    }


def test_ctes_joins_and_aggregates() -> None:
    columns, problems = infer(
        "WITH w AS (SELECT origin, avg(temp) AS mean_temp FROM weather_raw GROUP BY origin) "
        "SELECT f.tailnum, w.*, sum(f.dep_delay) OVER () AS total FROM flights f JOIN w ON f.origin = w.origin"
    )
    assert problems == []
    assert columns == {"tailnum": "VARCHAR", "origin": "VARCHAR", "mean_temp": "DOUBLE", "total": "HUGEINT"}


def test_using_join_merges_the_key() -> None:
    columns, problems = infer("SELECT origin, tailnum FROM flights JOIN weather_raw USING (origin)")
    assert problems == [] and columns == {"origin": "VARCHAR", "tailnum": "VARCHAR"}


def test_e4_unknown_column_suggests(golden) -> None:
    """E4: a column no input has is reported with the inputs and a did-you-mean."""
    columns, problems = infer("SELECT origin, tempp FROM weather_raw")
    assert columns is None
    assert problems == ["column 'tempp' not found in inputs (weather_raw) (did you mean 'temp'?)"]
    golden("columns_E4_unknown_column", "\n".join(problems))


@pytest.mark.parametrize(
    ("case_id", "sql"),
    [
        ("E4_qualified_unknown", "SELECT weather_raw.tempp FROM weather_raw"),
        ("E4_unknown_in_where", "SELECT origin FROM weather_raw WHERE visibility > 3"),
        ("E4_unknown_in_cte_output", "WITH w AS (SELECT origin FROM weather_raw) SELECT w.origin, temp FROM w"),
        ("E4_unknown_in_subquery", "SELECT * FROM (SELECT origni FROM flights) s"),
        ("E4_ambiguous", "SELECT origin FROM weather_raw, flights"),
    ],
)
def test_e4_problems_golden(case_id: str, sql: str) -> None:
    columns, problems = infer(sql)
    assert columns is None and problems
    check_golden(f"columns_{case_id}", f"sql: {sql!r}\n" + "\n".join(problems))


def test_ambiguous_column_is_reported() -> None:
    _, problems = infer("SELECT origin FROM weather_raw, flights")
    assert problems == ["column 'origin' is ambiguous (in flights, weather_raw); qualify it with a table name"]


def test_lambda_parameters_are_not_columns() -> None:
    columns, problems = infer("SELECT list_transform([visib], x -> x + 1) AS l FROM weather_raw")
    assert problems == [] and columns is not None and list(columns) == ["l"]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM range(3)",  # a table function's columns are not known statically
        "SELECT * FROM weather_raw, range(3) r",
    ],
)
def test_unknowable_shape_falls_back_to_runtime(sql: str) -> None:
    assert infer(sql) == (None, [])


def test_missing_input_schema_falls_back() -> None:
    gated, _ = gate_select("SELECT * FROM flights", {"flights"})
    assert gated is not None
    assert infer_output_columns(gated, {}) == (None, [])


def test_duplicate_output_names_are_reported() -> None:
    columns, problems = infer("SELECT origin, origin FROM flights")
    assert columns is None and problems == ["output column names are not unique: origin, origin"]


ORACLE_SQL = [
    "SELECT * FROM weather_raw",
    "SELECT origin, temp * 2 AS t2, n + 1 AS n1, visib > 3 AS clear, visib + 1 AS v1, wind_speed AS ws FROM weather_raw",
    "SELECT CAST(n AS VARCHAR) AS ns, time_hour::DATE AS d, updated_at, 1 AS one, 'a' AS s, 1.5 AS x FROM weather_raw",
    "SELECT origin, count(*) AS c, sum(visib) AS sv, sum(n) AS sn, avg(temp) AS at, max(time_hour) AS mt, min(origin) AS mo FROM weather_raw GROUP BY origin",
    "SELECT row_number() OVER (ORDER BY n) AS rn, lag(temp) OVER (ORDER BY n) AS lt FROM weather_raw",
    "SELECT f.tailnum, f.day, w.temp FROM flights f JOIN weather_raw w ON f.origin = w.origin",
    "SELECT TEMP, w.ORIGIN, abc FROM (SELECT Temp, origin, n AS Abc FROM weather_raw) w",
    "SELECT temp AS TEMP, visib AS Vis FROM weather_raw",
    "WITH a AS (SELECT origin, visib FROM weather_raw) SELECT a.*, f.dep_delay FROM a JOIN flights f USING (origin)",
    "SELECT origin FROM weather_raw UNION ALL SELECT tailnum FROM flights",
    "SELECT visib + 1.5 AS a, temp * 1.5 AS b, n * 2.25 AS c, -0.5 AS d, 1e3 AS e FROM weather_raw",
    "SELECT upper(origin) AS u, length(origin) AS l, coalesce(visib, 0) AS cv, visib / 2 AS half FROM weather_raw",
]


@pytest.mark.parametrize("sql", ORACLE_SQL)
def test_inferred_types_match_duckdb(sql: str) -> None:
    """Oracle: every type inference commits to (not UNKNOWN) equals what DuckDB's DESCRIBE says."""
    schemas = {t: {c: ("VARCHAR" if ty == "UNKNOWN" else ty) for c, ty in cols.items()} for t, cols in SCHEMAS.items()}
    columns, problems = infer(sql, schemas)
    assert problems == [] and columns is not None
    con = duckdb.connect()
    for table, cols in schemas.items():
        con.execute(f"CREATE TABLE {quote_ident(table)} ({', '.join(f'{quote_ident(c)} {t}' for c, t in cols.items())})")
    described = [(name, typ) for name, typ, *_ in con.execute(f"DESCRIBE {sql}").fetchall()]
    assert [name for name, _ in described] == list(columns)
    for name, typ in described:
        typ = {"TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ"}.get(typ, typ)
        assert columns[name] in (typ, "UNKNOWN"), f"{name}: inferred {columns[name]}, DuckDB says {typ}"
