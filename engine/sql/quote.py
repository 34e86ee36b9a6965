"""Identifier quoting for generated DuckDB SQL: the one place names become SQL text; builds no statements."""

from __future__ import annotations

from engine.errors import InternalError

MAX_IDENTIFIER_LENGTH = 255


def quote_ident(name: str) -> str:
    """Quote one identifier for DuckDB, doubling inner double quotes.

    Names reach this helper after the spec checks, so a bad name here is an engine bug
    (``InternalError``), never a user error.

    >>> quote_ident("weather")
    '"weather"'
    >>> quote_ident('x"; DROP TABLE y; --')
    '"x""; DROP TABLE y; --"'
    """
    if not isinstance(name, str):
        raise InternalError(f"identifier must be a string, got {type(name).__name__}")
    if not name:
        raise InternalError("identifier must not be empty")
    if "\x00" in name:
        raise InternalError(f"identifier contains a NUL byte: {name!r}")
    if len(name) > MAX_IDENTIFIER_LENGTH:
        raise InternalError(
            f"identifier is {len(name)} characters long (max {MAX_IDENTIFIER_LENGTH}): {name[:40]!r}…"
        )
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    """Quote a schema-qualified relation name.

    >>> qualified("offline", "weather__v1")
    '"offline"."weather__v1"'
    """
    return f"{quote_ident(schema)}.{quote_ident(table)}"
