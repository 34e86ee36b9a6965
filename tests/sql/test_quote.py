"""quote_ident / qualified: the one identifier-quoting helper (P5, V22)."""

from __future__ import annotations

import string

import duckdb
import pytest
import sqlglot
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from engine.errors import InternalError
from engine.sql.quote import MAX_IDENTIFIER_LENGTH, qualified, quote_ident


_ASCII_SWAP = str.maketrans(string.ascii_letters, string.ascii_lowercase.upper() + string.ascii_lowercase)


_CONNECTION: list[duckdb.DuckDBPyConnection] = []


def _shared_connection() -> duckdb.DuckDBPyConnection:
    """One in-memory database for all hypothesis examples (connecting costs ~40 ms); tests drop what they create."""
    if not _CONNECTION:
        _CONNECTION.append(duckdb.connect())
    return _CONNECTION[0]


def test_plain_name_is_double_quoted() -> None:
    assert quote_ident("weather") == '"weather"'


def test_inner_quotes_are_doubled() -> None:
    assert quote_ident('x"; DROP TABLE y; --') == '"x""; DROP TABLE y; --"'


@pytest.mark.parametrize(
    "bad",
    ["", "a\x00b", "x" * (MAX_IDENTIFIER_LENGTH + 1)],
    ids=["empty", "nul", "too_long"],
)
def test_unquotable_names_are_engine_bugs(bad: str) -> None:
    with pytest.raises(InternalError):
        quote_ident(bad)


def test_non_string_is_rejected() -> None:
    with pytest.raises(InternalError):
        quote_ident(None)  # type: ignore[arg-type]


def test_max_length_is_accepted() -> None:
    assert quote_ident("x" * MAX_IDENTIFIER_LENGTH) == '"' + "x" * MAX_IDENTIFIER_LENGTH + '"'


def test_qualified_quotes_both_parts() -> None:
    assert qualified("offline", 'we"ird') == '"offline"."we""ird"'


def test_v22_quoted_identifiers_are_case_insensitive_in_duckdb() -> None:
    """V22: quoting does not make 'Orders' and 'orders' different tables, so names must be case-folded upstream."""
    con = duckdb.connect()
    con.execute(f"CREATE TABLE {quote_ident('Orders')} (x INTEGER)")
    with pytest.raises(duckdb.CatalogException):
        con.execute(f"CREATE TABLE {quote_ident('orders')} (x INTEGER)")
    assert con.execute("SELECT table_name FROM duckdb_tables()").fetchall() == [("Orders",)]


@settings(max_examples=120, deadline=None)
@given(name=st.text(min_size=0, max_size=40) | st.sampled_from(['"', '""', "a\"b", "x\"; DROP TABLE y; --", "--", "/*", ";"]))
def test_p5_quoted_ddl_is_one_statement_and_round_trips(name: str) -> None:
    """P5: any text is either rejected or yields DDL that is exactly one statement creating exactly that name."""
    try:
        quoted = quote_ident(name)
    except InternalError:
        assert name == "" or "\x00" in name or len(name) > MAX_IDENTIFIER_LENGTH
        return
    ddl = f"CREATE TABLE {quoted} (x INTEGER)"
    con = _shared_connection()
    try:
        assert len(con.extract_statements(ddl)) == 1
        assert len([s for s in sqlglot.parse(ddl, read="duckdb") if s is not None]) == 1
        con.execute(ddl)
        names = [row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        assert names == [name]
        # Case-insensitive even when quoted (V22): an ASCII case variant reaches the same table.
        variant = name.translate(_ASCII_SWAP)
        assert con.execute(f"SELECT count(*) FROM {quote_ident(variant)}").fetchone() == (0,)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {quoted}")


@settings(max_examples=50, deadline=None)
@given(schema=st.text(min_size=1, max_size=20), table=st.text(min_size=1, max_size=20))
def test_p5_qualified_names_round_trip(schema: str, table: str) -> None:
    """P5: schema-qualified DDL stays one statement and names exactly (schema, table)."""
    if "\x00" in schema + table:
        with pytest.raises(InternalError):
            qualified(schema, table)
        return
    assume(schema.lower() not in {"main", "temp", "information_schema", "pg_catalog"})
    con = _shared_connection()
    try:
        con.execute(f"CREATE SCHEMA {quote_ident(schema)}")
        ddl = f"CREATE TABLE {qualified(schema, table)} (x INTEGER)"
        assert len(con.extract_statements(ddl)) == 1
        con.execute(ddl)
        rows = con.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()
        assert rows == [(schema, table)]
    finally:
        con.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
