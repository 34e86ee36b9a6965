"""The static SQL gate (Q1-Q7, V16) and input-table rewriting."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import InternalError
from engine.sql.gate import gate_select, rewrite_tables

from .conftest import check_golden

INPUTS = {"weather_raw", "flights"}

# (case id, SQL). Every case must be refused; its messages are pinned in tests/golden/sql/gate_<id>.txt.
REFUSED = [
    # Q1 file-reading table functions
    ("Q1_read_csv", "SELECT * FROM read_csv('/etc/passwd')"),
    ("Q1_read_text", "SELECT content FROM read_text('/etc/passwd')"),
    ("Q1_read_parquet_s3", "SELECT * FROM read_parquet('s3://bucket/x.parquet')"),
    ("Q1_glob", "SELECT * FROM glob('/*')"),
    ("Q1_sniff_csv", "SELECT * FROM sniff_csv('/etc/passwd')"),
    ("Q1_read_csv_in_join", "SELECT * FROM flights JOIN read_csv_auto('x.csv') r ON true"),
    ("Q1_read_csv_lateral", "SELECT * FROM flights, LATERAL read_csv('x.csv')"),
    ("Q1_read_text_in_cte", "WITH s AS (SELECT * FROM read_text('/etc/passwd')) SELECT * FROM s"),
    ("Q1_qualified_table_function", "SELECT * FROM main.read_csv('/etc/passwd')"),
    # Q2 replacement scans (a string literal as table name, normalised to an identifier by sqlglot, V16)
    ("Q2_relative_path", "SELECT * FROM '../secret.csv'"),
    ("Q2_quoted_file_name", 'SELECT * FROM "secret.csv"'),
    ("Q2_absolute_path", "SELECT * FROM '/etc/passwd'"),
    ("Q2_windows_path", "SELECT * FROM 'C:\\secret.csv'"),
    # Q3 writing files
    ("Q3_copy_to", "COPY (SELECT * FROM flights) TO 'sources/orders.csv'"),
    # Q4 statements that are not queries
    ("Q4_attach", "ATTACH 'other.duckdb'"),
    ("Q4_install", "INSTALL httpfs"),
    ("Q4_load", "LOAD httpfs"),
    ("Q4_pragma", "PRAGMA enable_profiling"),
    ("Q4_set", "SET enable_external_access = true"),
    ("Q4_call", "CALL pragma_version()"),
    ("Q4_export", "EXPORT DATABASE 'out'"),
    ("Q4_create", "CREATE TABLE x AS SELECT * FROM flights"),
    ("Q4_drop", "DROP TABLE flights"),
    ("Q4_insert", "INSERT INTO flights SELECT * FROM flights"),
    ("Q4_create_secret", "CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')"),
    # Q5 extension autoload / remote scans
    ("Q5_https_replacement_scan", "SELECT * FROM 'https://example.invalid/x.parquet'"),
    ("Q5_iceberg_scan", "SELECT * FROM iceberg_scan('s3://b/t')"),
    ("Q5_delta_scan", "SELECT * FROM delta_scan('s3://b/t')"),
    ("Q5_sqlite_scan", "SELECT * FROM sqlite_scan('x.db', 't')"),
    # Q6 more than one statement
    ("Q6_two_statements", "SELECT 1; DROP TABLE registry_models"),
    ("Q6_line_comment_trick", "SELECT 1 --\n; DROP TABLE registry_models"),
    ("Q6_block_comment_trick", "SELECT 1 /* ; */ ; DROP TABLE registry_models"),
    ("Q6_empty", ""),
    ("Q6_only_semicolon", ";"),
    # Q7 undeclared tables, catalog probes, SQL-in-a-string
    ("Q7_registry_table", "SELECT * FROM registry_models"),
    ("Q7_runs_table", "SELECT * FROM runs"),
    ("Q7_other_feature_group", "SELECT * FROM weather_raw JOIN planes USING (tailnum)"),
    ("Q7_typo_did_you_mean", "SELECT * FROM weather_rw"),
    ("Q7_engine_schema", "SELECT * FROM _engine.runs"),
    ("Q7_main_schema", "SELECT * FROM main.flights"),
    ("Q7_catalog_qualified", 'SELECT * FROM "db"."main"."flights"'),
    ("Q7_duckdb_settings", "SELECT * FROM duckdb_settings()"),
    ("Q7_query", "SELECT * FROM query('SELECT * FROM registry_models')"),
    ("Q7_query_table", "SELECT * FROM query_table('registry_models')"),
    ("Q7_getenv_scalar", "SELECT getenv('HOME') AS home FROM flights"),
    ("Q7_current_setting_in_subquery", "SELECT (SELECT current_setting('memory_limit')) AS m FROM flights"),
    ("Q7_duckdb_tables_in_exists", "SELECT * FROM flights WHERE EXISTS (SELECT 1 FROM duckdb_tables())"),
    ("Q7_json_execute", "SELECT json_execute_serialized_sql('{}') AS x"),
    ("Q7_shadowed_cte_name", "SELECT * FROM (WITH registry AS (SELECT 1) SELECT * FROM registry), registry"),
    ("Q7_non_recursive_self_reference", "WITH registry AS (SELECT * FROM registry) SELECT * FROM registry"),
    # Strictness beyond Q: nested statements DuckDB accepts as subqueries (harmless on declared inputs)
    ("strict_describe_subquery", "SELECT * FROM (DESCRIBE flights)"),
    ("strict_summarize_subquery", "SELECT * FROM (SUMMARIZE flights)"),
    ("Q7_union_branch", "SELECT origin FROM flights UNION ALL SELECT name FROM registry_models"),
    ("Q7_several_problems", "SELECT getenv('x') FROM registry_models, read_csv('y')"),
    # V16: misspelled keywords parse as an expression, and real syntax errors
    ("V16_misspelled_select", "SELEC * FORM x"),
    ("V16_syntax_error", "SELECT (1 FROM flights"),
    ("V16_unterminated_string", "SELECT 'abc FROM flights"),
]

ALLOWED = [
    ("simple", "SELECT origin, temp FROM weather_raw", ("weather_raw",)),
    ("star", "SELECT * FROM flights", ("flights",)),
    ("duckdb_from_first", "FROM flights SELECT origin", ("flights",)),
    ("case_insensitive_name", "SELECT * FROM Weather_Raw w", ("weather_raw",)),
    ("join", "SELECT f.*, w.temp FROM flights f JOIN weather_raw w ON f.origin = w.origin", ("flights", "weather_raw")),
    ("cte", "WITH w AS (SELECT origin, temp FROM weather_raw) SELECT * FROM w", ("weather_raw",)),
    ("cte_chain", "WITH a AS (SELECT * FROM flights), b AS (SELECT * FROM a) SELECT * FROM b", ("flights",)),
    (
        "recursive_cte",
        "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT n FROM r",
        (),
    ),
    ("subquery", "SELECT * FROM (SELECT origin FROM flights) s WHERE origin IN (SELECT origin FROM weather_raw)", ("flights", "weather_raw")),
    ("window", "SELECT origin, avg(temp) OVER (PARTITION BY origin ORDER BY time_hour ROWS 3 PRECEDING) AS t FROM weather_raw", ("weather_raw",)),
    ("range", "SELECT * FROM range(10)", ()),
    ("generate_series_join", "SELECT * FROM flights, generate_series(1, 3) g(i)", ("flights",)),
    ("unnest", "SELECT * FROM unnest([1, 2, 3]) AS u(x)", ()),
    ("union", "SELECT origin FROM flights UNION SELECT origin FROM weather_raw", ("flights", "weather_raw")),
    ("lateral_subquery", "SELECT * FROM flights f, LATERAL (SELECT temp FROM weather_raw w WHERE w.origin = f.origin) x", ("flights", "weather_raw")),
    ("lambda_and_functions", "SELECT list_transform([1, 2], x -> x + 1) AS l, upper(origin) AS o FROM flights", ("flights",)),
    ("timezone_function", "SELECT timezone('America/New_York', time_hour) AS local FROM weather_raw", ("weather_raw",)),
    ("trailing_semicolon", "SELECT 1 AS one;", ()),
    ("qualify_asof", "SELECT * FROM flights f ASOF JOIN weather_raw w ON f.origin = w.origin AND f.t >= w.t", ("flights", "weather_raw")),
]


@pytest.mark.parametrize(("case_id", "sql"), REFUSED, ids=[c[0] for c in REFUSED])
def test_gate_refuses(case_id: str, sql: str) -> None:
    """Q1-Q7: each hostile SQL is refused, with messages pinned by a golden file."""
    gated, messages = gate_select(sql, INPUTS)
    assert gated is None
    assert messages, "a refusal must say why"
    check_golden(f"gate_{case_id}", f"sql: {sql!r}\n" + "\n".join(messages))


@pytest.mark.parametrize(("case_id", "sql", "tables"), ALLOWED, ids=[c[0] for c in ALLOWED])
def test_gate_allows(case_id: str, sql: str, tables: tuple[str, ...]) -> None:
    gated, messages = gate_select(sql, INPUTS)
    assert messages == []
    assert gated is not None
    assert gated.tables == tables


def test_q1_message_names_the_function() -> None:
    assert gate_select("SELECT * FROM read_csv('/etc/passwd')", INPUTS)[1] == ["table function read_csv not allowed"]


def test_q6_exact_message() -> None:
    assert gate_select("SELECT 1 --\n; DROP TABLE x", INPUTS)[1] == ["exactly one SELECT statement expected (found 2)"]


def test_q4_names_the_statement_type() -> None:
    assert gate_select("COPY (SELECT 1) TO 'x.csv'", INPUTS)[1] == ["only SELECT is allowed (found COPY)"]
    assert gate_select("LOAD httpfs", INPUTS)[1] == ["only SELECT is allowed (found LOAD)"]


def test_q7_lists_declared_inputs_and_suggests() -> None:
    (message,) = gate_select("SELECT * FROM weather_rw", INPUTS)[1]
    assert "inputs: flights, weather_raw" in message
    assert "did you mean 'weather_raw'?" in message


def test_v16_misspelled_select_is_not_a_select() -> None:
    gated, messages = gate_select("SELEC * FORM x", INPUTS)
    assert gated is None and "only SELECT is allowed" in messages[0]


def test_no_inputs_declared() -> None:
    assert gate_select("SELECT * FROM t", set())[1] == ["table 't' is not a declared input (inputs: none)"]


def test_gated_expression_is_the_parsed_select() -> None:
    gated, _ = gate_select("SELECT origin FROM flights WHERE x > 1", INPUTS)
    assert gated is not None
    assert gated.expression.sql(dialect="duckdb") == "SELECT origin FROM flights WHERE x > 1"


# --- rewrite_tables ----------------------------------------------------------------------------

MAPPING = {"weather_raw": '"offline"."weather_raw__v1"', "flights": '"offline"."flights__v2"'}


def test_rewrite_keeps_original_name_as_alias() -> None:
    gated, _ = gate_select("SELECT weather_raw.temp FROM weather_raw", INPUTS)
    assert gated is not None
    sql = rewrite_tables(gated.expression, MAPPING)
    assert sql == 'SELECT weather_raw.temp FROM "offline"."weather_raw__v1" AS weather_raw'


def test_rewrite_golden_keeps_ctes_and_aliases() -> None:
    gated, _ = gate_select(
        "WITH flights_2 AS (SELECT * FROM flights WHERE dep_delay > 0) "
        "SELECT f.origin, weather_raw.temp FROM flights_2 f JOIN weather_raw ON f.origin = weather_raw.origin "
        "WHERE f.origin IN (SELECT origin FROM flights)",
        INPUTS,
    )
    assert gated is not None
    check_golden("rewrite_tables", rewrite_tables(gated.expression, MAPPING))


def test_rewrite_does_not_mutate_the_gated_expression() -> None:
    gated, _ = gate_select("SELECT * FROM flights", INPUTS)
    assert gated is not None
    rewrite_tables(gated.expression, MAPPING)
    assert gated.expression.sql(dialect="duckdb") == "SELECT * FROM flights"


def test_rewrite_missing_mapping_is_an_engine_bug() -> None:
    gated, _ = gate_select("SELECT * FROM flights", INPUTS)
    assert gated is not None
    with pytest.raises(InternalError):
        rewrite_tables(gated.expression, {})


def test_rewritten_sql_reads_the_physical_tables() -> None:
    """The rewritten query on versioned tables returns what the original returns on tables named like the inputs."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA offline")
    for schema in ("main", "offline"):
        suffix = "" if schema == "main" else "__v1"
        con.execute(f'CREATE TABLE "{schema}"."weather_raw{suffix}" AS SELECT * FROM (VALUES (\'JFK\', 3.5), (\'LGA\', 1.0)) v(origin, temp)')
        suffix = "" if schema == "main" else "__v2"
        con.execute(f'CREATE TABLE "{schema}"."flights{suffix}" AS SELECT * FROM (VALUES (\'JFK\', 10), (\'EWR\', 5)) v(origin, dep_delay)')
    # Poison the unversioned names in 'offline' resolution: the rewrite must not read them.
    sql = (
        "WITH w AS (SELECT origin, temp FROM weather_raw) "
        "SELECT flights.origin, w.temp, flights.dep_delay FROM flights LEFT JOIN w ON flights.origin = w.origin ORDER BY 1"
    )
    gated, _ = gate_select(sql, INPUTS)
    assert gated is not None
    expected = con.execute(sql).fetchall()
    con.execute("UPDATE main.flights SET dep_delay = -1")  # the original tables now differ
    assert con.execute(rewrite_tables(gated.expression, MAPPING)).fetchall() == expected


# --- purity ------------------------------------------------------------------------------------


def test_gate_and_columns_import_no_heavy_modules() -> None:
    """`engine validate` imports the gate: it must not pull in duckdb or pandas."""
    code = (
        "import sys, engine.sql.gate, engine.sql.columns, engine.sql.quote\n"
        "heavy = [m for m in ('duckdb', 'pandas', 'sklearn', 'xgboost') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_gate_logs_nothing_for_command_fallback(caplog: pytest.LogCaptureFixture) -> None:
    """sqlglot warns when it falls back to Command (LOAD, CALL); the gate keeps validate output clean."""
    with caplog.at_level("WARNING"):
        gate_select("LOAD httpfs", INPUTS)
    assert caplog.records == []


# --- robustness --------------------------------------------------------------------------------

_TOKENS = [
    "SELECT", "FROM", "WHERE", "(", ")", ",", "*", "flights", "weather_raw", "read_csv", "'x'", '"y"', ";",
    "--", "\n", "WITH", "AS", "JOIN", "ON", "1", "=", ".", "->", "x", "UNION", "LATERAL", "range", "ASOF",
    "[", "]", "{", "}", ":", "::", "$1", "?", "COLUMNS(*)", "GROUP BY ALL", "/*", "*/", "PIVOT", "USING",
]


@settings(max_examples=300, deadline=None)
@given(sql=st.text(max_size=80) | st.lists(st.sampled_from(_TOKENS), max_size=16).map(" ".join))
def test_gate_never_raises(sql: str) -> None:
    """Any text yields either a gated SELECT or messages, never an exception (validate must not crash)."""
    gated, messages = gate_select(sql, INPUTS)
    assert (gated is None) == bool(messages)
    if gated is not None:
        assert set(gated.tables) <= INPUTS


def test_deeply_nested_sql_is_refused_not_crashing() -> None:
    sql = "SELECT " + "(" * 3000 + "1" + ")" * 3000
    assert gate_select(sql, INPUTS) == (None, ["SQL is nested too deeply to check"])


def test_oversized_sql_is_refused() -> None:
    gated, messages = gate_select("SELECT 1" + " " * 200_000, INPUTS)
    assert gated is None and messages[0].startswith("SQL is too long")
