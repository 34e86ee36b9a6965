"""The static SQL gate: user SQL is one SELECT over declared inputs (Q1-Q7). Pure sqlglot; opens nothing.

The gate is the first layer of defence; the sandboxed DuckDB connection
(the DuckDB backend's sandboxed connection, ``engine.backends.duckdb``) is the second, so a hole here
must still fail at execution. Messages are plain texts: callers position them on the spec key.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError, TokenError

from engine.errors import InternalError, did_you_mean

DIALECT = "duckdb"
MAX_SQL_LENGTH = 100_000

# Table functions a feature-group SELECT may use: they only generate values.
ALLOWED_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})

# Functions refused anywhere in the tree: file/network readers, catalog and settings probes,
# SQL-in-a-string executors, extension management.
DENIED_FUNCTION_PREFIXES = (
    "read_",
    "duckdb_",
    "pragma_",
    "parquet_",
    "sqlite_",
    "postgres_",
    "mysql_",
    "iceberg_",
    "delta_",
    "json_execute",
)
DENIED_FUNCTIONS = frozenset(
    {
        "glob",
        "query",
        "query_table",
        "getenv",
        "current_setting",
        "sniff_csv",
        "parquet_metadata",
        "parquet_schema",
        "parquet_scan",
        "iceberg_scan",
        "delta_scan",
        "sqlite_scan",
        "postgres_scan",
        "mysql_scan",
        "load",
        "install",
        "which_secret",
        "checkpoint",
        "force_checkpoint",
    }
)

# Leading keywords of statements that are not queries, named when sqlglot cannot parse them.
_STATEMENT_KEYWORDS = frozenset(
    {
        "ALTER", "ATTACH", "BEGIN", "CALL", "CHECKPOINT", "COMMIT", "COPY", "CREATE", "DELETE",
        "DETACH", "DROP", "EXPORT", "IMPORT", "INSERT", "INSTALL", "LOAD", "MERGE", "PRAGMA",
        "RESET", "ROLLBACK", "SET", "TRUNCATE", "UPDATE", "USE", "VACUUM",
    }
)

# Statements that DuckDB accepts as a subquery (`FROM (DESCRIBE t)`) or sqlglot nests; never needed.
_NESTED_STATEMENTS = (
    exp.DDL, exp.DML, exp.Command, exp.Pragma, exp.Attach, exp.Detach, exp.Install, exp.Set,
    exp.Describe, exp.Show, exp.Summarize, exp.Use, exp.Transaction, exp.Commit, exp.Rollback,
    exp.Drop, exp.Alter, exp.Kill, exp.Analyze,
)

# Characters that make a table name look like a file path or URL (a replacement scan, V16).
_PATH_CHARS = ("/", ".", ":", "\\")


@dataclass(frozen=True)
class GatedSelect:
    """A user SELECT that passed the gate."""

    expression: exp.Query  # the parsed SELECT (do not mutate: rewrite_tables copies it)
    tables: tuple[str, ...]  # declared inputs it reads, sorted, lowercase


def gate_select(sql: str, allowed_tables: set[str]) -> tuple[GatedSelect | None, list[str]]:
    """Check that ``sql`` is exactly one SELECT reading only ``allowed_tables``.

    Returns the gated SELECT and no messages, or ``None`` and every problem found.

    >>> gated, problems = gate_select("SELECT origin, temp FROM weather_raw", {"weather_raw"})
    >>> gated.tables, problems
    (('weather_raw',), [])
    >>> gate_select("SELECT * FROM read_csv('/etc/passwd')", set())[1]
    ['table function read_csv not allowed']
    """
    if len(sql) > MAX_SQL_LENGTH:
        return None, [f"SQL is too long ({len(sql)} characters, max {MAX_SQL_LENGTH})"]
    try:
        statements = [s for s in _parse(sql) if s is not None]
    except RecursionError:
        return None, ["SQL is nested too deeply to check"]
    except SqlglotError as exc:
        keyword = _first_word(sql).upper()
        if keyword in _STATEMENT_KEYWORDS:  # e.g. EXPORT DATABASE, CREATE SECRET (V16)
            return None, [f"only SELECT is allowed (found {keyword})"]
        return None, [f"SQL does not parse: {_parse_reason(exc)}"]
    if len(statements) != 1:
        return None, [f"exactly one SELECT statement expected (found {len(statements)})"]
    statement = statements[0]
    if not isinstance(statement, (exp.Select, exp.SetOperation, exp.Subquery)):
        return None, [_not_a_select(statement, sql)]

    try:
        return _gate_statement(statement, {t.lower() for t in allowed_tables})
    except RecursionError:
        return None, ["SQL is nested too deeply to check"]


def _gate_statement(statement: exp.Query, allowed: set[str]) -> tuple[GatedSelect | None, list[str]]:
    messages: list[str] = []
    for node in statement.find_all(*_NESTED_STATEMENTS):
        kind = str(node.this).upper() if isinstance(node, exp.Command) else type(node).__name__.upper()
        messages.append(f"only SELECT is allowed (found {kind} inside the query)")
    read: set[str] = set()
    for table in statement.find_all(exp.Table):
        message = _check_table(table, allowed, read)
        if message:
            messages.append(message)
    for lateral in statement.find_all(exp.Lateral):
        if isinstance(lateral.this, exp.Func):
            name = _function_name(lateral.this)
            if name not in ALLOWED_TABLE_FUNCTIONS:
                messages.append(f"table function {name} not allowed")
    for func in statement.find_all(exp.Func):
        if isinstance(func.parent, (exp.Table, exp.Lateral)) and func.parent.this is func:
            continue  # already judged as a table function
        for name in _function_names(func):
            if _is_denied(name):
                messages.append(f"function {name}() not allowed")
                break
    messages = list(dict.fromkeys(messages))
    if messages:
        return None, messages
    return GatedSelect(expression=statement, tables=tuple(sorted(read))), []


def gate_filter(text: str, columns: Mapping[str, str] | None = None) -> tuple[exp.Expression | None, list[str]]:
    """Check that ``text`` is one boolean expression over ``columns`` (a feature view's ``filter``).

    It is parsed as an expression, never pasted as text: a trailing comment or a ``UNION`` cannot
    change the query it ends up in. No subqueries, table functions or denied functions; every column
    must be a column of ``columns`` when they are known (name -> type). Returns the expression or
    ``None`` and every problem found.

    >>> gate_filter("dep_delay > 0 AND origin = 'EWR'", {"dep_delay": "DOUBLE", "origin": "VARCHAR"})[1]
    []
    >>> gate_filter("x > 0 UNION ALL SELECT 1")[1]
    ['filter must be one boolean expression: SQL does not parse (UNION)']
    """
    if len(text) > MAX_SQL_LENGTH:
        return None, [f"filter is too long ({len(text)} characters, max {MAX_SQL_LENGTH})"]
    try:
        with _quiet_sqlglot():
            expression = sqlglot.parse_one(text, read=DIALECT, into=exp.Condition)
    except RecursionError:
        return None, ["filter is nested too deeply to check"]
    except SqlglotError as exc:
        word = next((w for w in ("UNION", "SELECT", "INTERSECT", "EXCEPT", ";") if w in text.upper()), None)
        reason = f"SQL does not parse ({word})" if word else f"SQL does not parse: {_parse_reason(exc)}"
        return None, [f"filter must be one boolean expression: {reason}"]
    messages: list[str] = []
    if any(isinstance(node, (exp.Query, exp.Subquery, exp.Table, exp.Lateral)) for node in expression.walk()):
        messages.append("filter must not contain a subquery; use a column condition such as dep_delay > 0")
    for func in expression.find_all(exp.Func):
        for name in _function_names(func):
            if _is_denied(name):
                messages.append(f"function {name}() not allowed")
                break
    if isinstance(expression, exp.Literal) or (isinstance(expression, exp.Column) and columns and str(columns.get(expression.name, "BOOLEAN")).upper() != "BOOLEAN"):
        messages.append(f"filter must be a boolean expression (got {expression.sql(dialect=DIALECT)})")
    if columns is not None:
        known = {c.lower(): c for c in columns}
        for column in expression.find_all(exp.Column):
            if column.name.lower() not in known:
                from engine.errors import did_you_mean

                hint = did_you_mean(column.name, list(columns))
                messages.append(f"column '{column.name}' is not a column of the spine{f' ({hint})' if hint else ''}")
    messages = list(dict.fromkeys(messages))
    return (None, messages) if messages else (expression, [])


def filter_sql(expression: exp.Expression, dialect: str = DIALECT) -> str:
    """A gated filter in ``dialect``, comments dropped."""
    return expression.sql(dialect=dialect, comments=False)


def rewrite_tables(expression: exp.Query, mapping: dict[str, str], dialect: str = DIALECT) -> str:
    """Return SQL in ``dialect`` where each input table ``x`` reads ``mapping['x']`` instead.

    User SQL is written in the spec's dialect (DuckDB's) and gated once; this is where sqlglot
    transpiles it to the backend's dialect.

    ``mapping`` values are already-quoted relation names (``"offline"."weather__v1"``). The
    original name stays as the alias, so ``weather.temp`` still resolves; CTE names are untouched.

    >>> gated, _ = gate_select("SELECT weather.temp FROM weather", {"weather"})
    >>> rewrite_tables(gated.expression, {"weather": '"offline"."weather__v1"'})
    'SELECT weather.temp FROM "offline"."weather__v1" AS weather'
    """
    lowered = {k.lower(): v for k, v in mapping.items()}
    tree = expression.copy()
    for table in list(input_tables(tree)):
        name = table.name.lower()
        if name not in lowered:
            raise InternalError(f"no physical relation given for input table '{name}'")
        physical = sqlglot.parse_one(lowered[name], read=DIALECT, into=exp.Table)
        if table.args.get("alias") is None:
            table.set("alias", exp.TableAlias(this=table.this.copy()))
        table.set("this", physical.this)
        table.set("db", physical.args.get("db"))
        table.set("catalog", physical.args.get("catalog"))
    return tree.sql(dialect=dialect)


def input_tables(expression: exp.Expression) -> Iterator[exp.Table]:
    """Yield the table references of ``expression`` that name real relations (not CTEs, not functions)."""
    for table in expression.find_all(exp.Table):
        if isinstance(table.this, exp.Identifier) and not _is_cte_reference(table):
            yield table


# --- internals -------------------------------------------------------------------------------


def _parse(sql: str) -> list[exp.Expression | None]:
    # sqlglot logs a warning when it falls back to a generic Command (LOAD, CALL); the gate
    # reports that itself, so keep `engine validate` output clean.
    with _quiet_sqlglot():
        return sqlglot.parse(sql, read=DIALECT)


@contextlib.contextmanager
def _quiet_sqlglot() -> Iterator[None]:
    logger = logging.getLogger("sqlglot")
    previous = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = previous


def _parse_reason(exc: SqlglotError) -> str:
    errors = getattr(exc, "errors", None) or []
    if errors:
        first = errors[0]
        reason = str(first.get("description") or "invalid syntax")
        line, col = first.get("line"), first.get("col")
        if line:
            reason += f" (line {line}, col {col})"
        return reason
    if isinstance(exc, TokenError):
        # No position, and its text repeats the SQL, which the caller already shows.
        return "cannot split it into tokens (unterminated string or quoted identifier?)"
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _not_a_select(statement: exp.Expression, sql: str) -> str:
    if isinstance(statement, exp.Command):
        kind = str(statement.this).upper()
    elif isinstance(statement, (exp.Condition, exp.Alias, exp.Identifier, exp.Star)):
        # Not a statement at all: sqlglot read a misspelled keyword as an expression (V16).
        first = _first_word(sql)
        hint = did_you_mean(first.upper(), ["SELECT", "WITH", "FROM"])
        text = f"only SELECT is allowed (found '{first[:40]}', not a statement keyword)"
        return f"{text} ({hint})" if hint else text
    else:
        kind = type(statement).__name__.upper()
    return f"only SELECT is allowed (found {kind})"


def _first_word(sql: str) -> str:
    match = re.match(r"\s*([A-Za-z_]+)", sql)
    return match.group(1) if match else ""


def _check_table(table: exp.Table, allowed: set[str], read: set[str]) -> str | None:
    if isinstance(table.this, exp.Func):
        name = _function_name(table.this)
        if name in ALLOWED_TABLE_FUNCTIONS and not table.args.get("db") and not table.args.get("catalog"):
            return None
        return f"table function {name} not allowed"
    if not isinstance(table.this, exp.Identifier):
        return f"table reference '{table.sql(dialect=DIALECT)}' is not supported"
    name = table.name
    inputs = ", ".join(sorted(allowed)) or "none"
    if table.args.get("db") is not None or table.args.get("catalog") is not None:
        full = ".".join(p.name for p in table.parts)
        return (
            f"table '{full}' is not a declared input (inputs: {inputs}); "
            "qualified names are not allowed"
        )
    if _is_cte_reference(table):
        return None
    if any(c in name for c in _PATH_CHARS):
        return (
            f"table '{name}' is not a declared input: reading files from SQL is not allowed; "
            "declare a source"
        )
    if name.lower() not in allowed:
        text = f"table '{name}' is not a declared input (inputs: {inputs})"
        hint = did_you_mean(name.lower(), allowed)
        return f"{text} ({hint})" if hint else text
    read.add(name.lower())
    return None


def _is_cte_reference(table: exp.Table) -> bool:
    """Whether ``table`` names a CTE visible where it stands.

    Visibility is kept narrow on purpose: inside CTE *j* only CTEs before *j* (and *j* itself
    when RECURSIVE) count, so the gate can only be stricter than DuckDB, never looser.
    """
    if table.args.get("db") is not None or table.args.get("catalog") is not None:
        return False
    name = table.name.lower()
    node: exp.Expression = table
    while node.parent is not None:
        parent = node.parent
        if isinstance(parent, exp.With) and isinstance(node, exp.CTE):
            names = [cte.alias_or_name.lower() for cte in parent.expressions]
            index = next(i for i, cte in enumerate(parent.expressions) if cte is node)
            visible = names[: index + 1] if parent.args.get("recursive") else names[:index]
            if name in visible:
                return True
        elif isinstance(parent, exp.Query):
            with_ = parent.args.get("with_")
            if with_ is not None and node is not with_:
                if name in {cte.alias_or_name.lower() for cte in with_.expressions}:
                    return True
        node = parent
    return False


def _function_name(func: exp.Func) -> str:
    if isinstance(func, exp.Anonymous):
        return str(func.name).lower()
    return func.sql_name().lower()


def _function_names(func: exp.Func) -> list[str]:
    names = [_function_name(func)]
    if not isinstance(func, exp.Anonymous):
        names.extend(n.lower() for n in getattr(type(func), "_sql_names", []) or [])
    return names


def _is_denied(name: str) -> bool:
    return name in DENIED_FUNCTIONS or name.startswith(DENIED_FUNCTION_PREFIXES)
