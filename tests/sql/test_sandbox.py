"""The sandboxed DuckDB connection and bounded execution: the second layer behind the gate (Q1-Q8, V2-V5, V11, V18)."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from engine.backends.duckdb.connection import connect, run_sql
from engine.errors import ExecutionError, InternalError
from engine.sql.gate import gate_select

from .test_gate import INPUTS, REFUSED

SECRET_TOKEN = "s3cr3t-token-7f1c"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A workspace DB with engine tables, a source CSV and a planted secret, written unsandboxed then closed (V5)."""
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "orders.csv").write_text("id,amount\n1,10\n2,20\n", encoding="utf-8")
    (tmp_path / "secret.csv").write_text(f"token\n{SECRET_TOKEN}\n", encoding="utf-8")
    (tmp_path / "work").mkdir()
    con = connect(tmp_path / "engine.duckdb", sandboxed=False)
    con.execute("CREATE TABLE flights AS SELECT * FROM (VALUES ('JFK', 10), ('EWR', 5)) v(origin, dep_delay)")
    con.execute("CREATE TABLE registry_models AS SELECT 'm' AS name, 1 AS version")
    con.close()
    return tmp_path


@pytest.fixture
def sandbox(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[duckdb.DuckDBPyConnection]:
    """A sandboxed connection whose working directory sits next to the planted secret (so '../secret.csv' resolves)."""
    monkeypatch.chdir(project / "work")
    con = connect(project / "engine.duckdb", sandboxed=True, memory_limit="256MB", threads=2)
    yield con
    con.close()


def _tables(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute("SELECT schema_name, table_name, estimated_size FROM duckdb_tables() ORDER BY ALL").fetchall()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- defence in depth: every gate case also fails at execution ------------------------------

EXECUTION_CASES = [c for c in REFUSED if c[0][:2] in {"Q1", "Q2", "Q3", "Q4", "Q5", "Q6"}]


@pytest.mark.parametrize(("case_id", "sql"), EXECUTION_CASES, ids=[c[0] for c in EXECUTION_CASES])
def test_execution_layer_refuses_what_the_gate_refuses(
    case_id: str, sql: str, sandbox: duckdb.DuckDBPyConnection, project: Path
) -> None:
    """Q1-Q6: with the gate bypassed, the execution layer (DuckDB parser + sandbox) still refuses; nothing changes."""
    assert gate_select(sql, INPUTS)[0] is None
    before_tables = _tables(sandbox)
    before_source = _sha256(project / "sources" / "orders.csv")
    with pytest.raises(ExecutionError) as info:
        run_sql(sandbox, sql, timeout_s=5, select_only=True)
    assert SECRET_TOKEN not in str(info.value)
    assert _tables(sandbox) == before_tables
    assert _sha256(project / "sources" / "orders.csv") == before_source
    assert run_sql(sandbox, "SELECT count(*) FROM registry_models", timeout_s=5).fetchone() == (1,)


# SQL the DuckDB sandbox itself must refuse, with no help from the gate or the SELECT-only check.
SANDBOX_ONLY = [
    ("Q1_read_csv", "SELECT * FROM read_csv('{root}/secret.csv')"),
    ("Q1_read_text", "SELECT content FROM read_text('{root}/secret.csv')"),
    ("Q1_read_parquet_s3", "SELECT * FROM read_parquet('s3://bucket/x.parquet')"),
    ("Q1_glob", "SELECT * FROM glob('{root}/*')"),
    ("Q1_sniff_csv", "SELECT * FROM sniff_csv('{root}/secret.csv')"),
    ("Q2_relative_replacement_scan", "SELECT * FROM '../secret.csv'"),
    ("Q2_absolute_replacement_scan", "SELECT * FROM '{root}/secret.csv'"),
    ("Q2_quoted_file_name", 'SELECT * FROM "../secret.csv"'),
    ("Q3_copy_to_source", "COPY (SELECT * FROM flights) TO '{root}/sources/orders.csv'"),
    ("Q3_copy_relative", "COPY (SELECT * FROM flights) TO '../sources/orders.csv'"),
    ("Q4_attach", "ATTACH '{root}/other.duckdb'"),
    ("Q4_install", "INSTALL httpfs"),
    ("Q4_load", "LOAD httpfs"),
    ("Q4_set_external_access", "SET enable_external_access = true"),
    ("Q4_pragma_memory_limit", "PRAGMA memory_limit = '100GB'"),
    ("Q4_set_autoload", "SET autoload_known_extensions = true"),
    ("Q4_reset_lock", "RESET lock_configuration"),
    ("Q4_call_table_function", "CALL read_csv('{root}/secret.csv')"),
    ("Q4_export", "EXPORT DATABASE '{root}/export'"),
    ("Q5_https_replacement_scan", "SELECT * FROM 'https://example.invalid/x.parquet'"),
    ("Q5_iceberg_scan", "SELECT * FROM iceberg_scan('s3://b/t')"),
    ("Q5_delta_scan", "SELECT * FROM delta_scan('s3://b/t')"),
    ("Q5_sqlite_scan", "SELECT * FROM sqlite_scan('{root}/x.db', 't')"),
]


@pytest.mark.parametrize(("case_id", "sql"), SANDBOX_ONLY, ids=[c[0] for c in SANDBOX_ONLY])
def test_sandbox_alone_refuses(
    case_id: str, sql: str, sandbox: duckdb.DuckDBPyConnection, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Q1-Q5 (V2, V3): file, network and extension access fail inside DuckDB itself; no socket is ever opened."""

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    sql = sql.format(root=project)
    assert gate_select(sql, INPUTS)[0] is None  # the first layer refuses too
    before_tables = _tables(sandbox)
    before_source = _sha256(project / "sources" / "orders.csv")
    with pytest.raises(ExecutionError) as info:
        run_sql(sandbox, sql, timeout_s=5)
    message = str(info.value)
    assert SECRET_TOKEN not in message
    assert "socket" not in message
    assert any(
        marker in message
        for marker in ("disabled by configuration", "configuration has been locked", "does not exist", "not in the catalog", "disabled through configuration")
    ), message
    assert _tables(sandbox) == before_tables
    assert _sha256(project / "sources" / "orders.csv") == before_source
    assert not (project / "other.duckdb").exists()
    assert not (project / "export").exists()


def test_q2_secret_never_reaches_a_table(sandbox: duckdb.DuckDBPyConnection, project: Path) -> None:
    """Q2: a CREATE TABLE AS over a replacement scan fails, and no table holds the secret."""
    with pytest.raises(ExecutionError):
        run_sql(sandbox, f"CREATE TABLE leak AS SELECT * FROM '{project}/secret.csv'", timeout_s=5)
    for schema, table, _ in _tables(sandbox):
        rows = sandbox.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
        assert SECRET_TOKEN not in repr(rows)


def test_sandbox_settings_are_in_force(sandbox: duckdb.DuckDBPyConnection) -> None:
    """V2/V3: external access off, no extension autoload/autoinstall, configuration locked."""
    settings = dict(
        sandbox.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('enable_external_access', 'autoload_known_extensions', 'autoinstall_known_extensions', "
            "'allow_community_extensions', 'lock_configuration', 'TimeZone')"
        ).fetchall()
    )
    assert settings == {
        "enable_external_access": "false",
        "autoload_known_extensions": "false",
        "autoinstall_known_extensions": "false",
        "allow_community_extensions": "false",
        "lock_configuration": "true",
        "TimeZone": "UTC",
    }


def test_sandbox_keeps_engine_tables_usable(sandbox: duckdb.DuckDBPyConnection) -> None:
    """V2: the engine's own tables can be created, written and read inside the sandbox."""
    run_sql(sandbox, "CREATE SCHEMA staging", timeout_s=5)
    run_sql(sandbox, "CREATE TABLE staging.t AS SELECT origin, dep_delay * 2 AS d FROM flights", timeout_s=5)
    run_sql(sandbox, "INSERT INTO staging.t VALUES (?, ?)", timeout_s=5, params=["LGA", 7])
    rows = run_sql(sandbox, "SELECT origin, d FROM staging.t ORDER BY origin", timeout_s=5).fetchall()
    assert rows == [("EWR", 10), ("JFK", 20), ("LGA", 7)]


def test_icu_timezone_functions_work_sandboxed(sandbox: duckdb.DuckDBPyConnection) -> None:
    """ICU is built in: timezone conversion needs no LOAD, so it works with extensions locked out."""
    row = run_sql(
        sandbox, "SELECT timezone('America/New_York', TIMESTAMPTZ '2024-01-01 00:00:00+00')::VARCHAR", timeout_s=5
    ).fetchone()
    assert row == ("2023-12-31 19:00:00",)


def test_reopening_a_sandboxed_instance(project: Path) -> None:
    """V5: a second sandboxed connection joins the locked instance; an unsandboxed one is refused loudly."""
    first = connect(project / "engine.duckdb", sandboxed=True)
    try:
        second = connect(project / "engine.duckdb", sandboxed=True)
        assert second.execute("SELECT count(*) FROM flights").fetchone() == (2,)
        with pytest.raises(InternalError, match="locked configuration"):
            connect(project / "engine.duckdb", sandboxed=False)
        second.close()
    finally:
        first.close()
    # Once every connection is closed the file reopens unsandboxed (two-phase pattern).
    again = connect(project / "engine.duckdb", sandboxed=False)
    assert again.execute("SELECT current_setting('enable_external_access')").fetchone() == (True,)
    again.close()


# --- Q8: resource bombs ------------------------------------------------------------------------


def test_q8_cross_join_times_out_and_connection_survives(sandbox: duckdb.DuckDBPyConnection) -> None:
    """Q8/V11: an endless cross join is interrupted after the timeout; the connection stays usable."""
    sql = "SELECT count(*) FROM range(1000000000) a, range(1000000000) b"
    assert gate_select(sql, {"a"})[0] is not None  # the gate cannot see cost: only the runtime bounds it
    started = time.monotonic()
    with pytest.raises(ExecutionError, match=r"^SQL timed out after 1s$"):
        run_sql(sandbox, sql, timeout_s=1, select_only=True)
    assert time.monotonic() - started < 3
    assert run_sql(sandbox, "SELECT 42", timeout_s=1).fetchone() == (42,)


def test_q8_unbounded_recursive_cte_is_stopped(sandbox: duckdb.DuckDBPyConnection) -> None:
    """Q8: a recursive CTE without a bound ends in a timeout or a memory error, never a hang."""
    sql = "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
    started = time.monotonic()
    with pytest.raises(ExecutionError, match="timed out|memory limit"):
        run_sql(sandbox, sql, timeout_s=1, select_only=True)
    assert time.monotonic() - started < 5


def test_q8_memory_bomb_reports_memory_limit(tmp_path: Path) -> None:
    """Q8/V11: a giant list() aggregate under memory_limit=64MB fails with a memory-limit message."""
    con = connect(None, sandboxed=True, memory_limit="64MB", threads=2)
    try:
        with pytest.raises(ExecutionError, match="memory limit"):
            run_sql(con, "SELECT list(range) FROM range(200000000)", timeout_s=20)
        assert run_sql(con, "SELECT 1", timeout_s=5).fetchone() == (1,)
    finally:
        con.close()


def test_spilling_works_with_external_access_disabled(tmp_path: Path) -> None:
    """A sort larger than memory_limit spills to temp_directory even though SQL cannot touch files."""
    spill = tmp_path / "spill"
    con = connect(None, sandboxed=True, memory_limit="64MB", threads=2, temp_directory=spill)
    try:
        run_sql(con, "CREATE TABLE t AS SELECT md5(range::VARCHAR) || md5((range + 1)::VARCHAR) AS s FROM range(1000000)", timeout_s=30)
        row = run_sql(con, "SELECT min(s), count(*) FROM (SELECT s FROM t ORDER BY s)", timeout_s=30).fetchone()
        assert row[1] == 1000000
        assert spill.is_dir()  # DuckDB created it to offload blocks
    finally:
        con.close()


# --- error mapping and statement checks --------------------------------------------------------


def test_run_sql_maps_duckdb_errors_to_first_line() -> None:
    con = connect(None, sandboxed=True)
    try:
        with pytest.raises(ExecutionError) as info:
            run_sql(con, "SELECT * FROM nowhere", timeout_s=5)
        assert str(info.value).startswith("Catalog Error: Table with name nowhere does not exist")
        assert "\n" not in str(info.value)
        with pytest.raises(ExecutionError, match="does not parse"):
            run_sql(con, "SELEC 1", timeout_s=5)
        with pytest.raises(ExecutionError, match=r"exactly one SQL statement expected \(found 2\)"):
            run_sql(con, "SELECT 1; SELECT 2", timeout_s=5)
        assert run_sql(con, "SELECT ? + 1", timeout_s=None, params=[41]).fetchone() == (42,)
    finally:
        con.close()


def test_v18_session_is_utc_whatever_the_process_tz(tmp_path: Path) -> None:
    """V18: under TZ=America/New_York the connection, its cursors and later connections still run in UTC."""
    code = f"""
from engine.backends.duckdb.connection import connect
con = connect({str(tmp_path / 'tz.duckdb')!r}, sandboxed=True)
for c in (con, con.cursor(), connect({str(tmp_path / 'tz.duckdb')!r}, sandboxed=True)):
    row = c.execute("SELECT current_setting('TimeZone'), TIMESTAMP '2024-01-01' = TIMESTAMPTZ '2024-01-01 00:00:00+00'").fetchone()
    assert row == ('UTC', True), row
plain = connect(None, sandboxed=False)
assert plain.execute("SELECT current_setting('TimeZone')").fetchone() == ('UTC',)
print('ok')
"""
    env = {**os.environ, "TZ": "America/New_York"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
