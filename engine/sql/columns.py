"""Static column inference for a gated SELECT (E4): output columns and types via sqlglot; touches no data.

When sqlglot cannot decide (table functions, unknown input schemas, constructs it does not
model) the answer is "unknown" — ``(None, [])`` or type ``UNKNOWN`` — and the caller falls back
to checking at run time. Only mistakes that are certainly the user's are reported.
"""

from __future__ import annotations

import re

from sqlglot import exp
from sqlglot.errors import OptimizeError, SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, traverse_scope

from engine.errors import did_you_mean
from engine.sql.gate import DIALECT, GatedSelect

UNKNOWN = "UNKNOWN"

# sqlglot's DuckDB spelling -> the name DuckDB itself reports (typeof / DESCRIBE).
_TYPE_WORDS = {"TEXT": "VARCHAR", "INT": "INTEGER", "INT128": "HUGEINT", "REAL": "FLOAT", "UINT128": "UHUGEINT"}
_TYPE_WORD_RE = re.compile(r"\b(" + "|".join(_TYPE_WORDS) + r")\b")
_INTEGRAL = exp.DataType.INTEGER_TYPES


def infer_output_columns(
    gated: GatedSelect, input_schemas: dict[str, dict[str, str]]
) -> tuple[dict[str, str] | None, list[str]]:
    """Infer the output columns (name -> DuckDB type) of a gated SELECT from its inputs' schemas.

    Returns ``(columns, [])``, ``(None, problems)`` for a user mistake (unknown or ambiguous
    column), or ``(None, [])`` when the shape cannot be known statically.

    >>> from engine.sql.gate import gate_select
    >>> gated, _ = gate_select("SELECT origin, temp * 2 AS t2 FROM w", {"w"})
    >>> infer_output_columns(gated, {"w": {"origin": "VARCHAR", "temp": "DOUBLE"}})
    ({'origin': 'VARCHAR', 't2': 'DOUBLE'}, [])
    >>> gated, _ = gate_select("SELECT tempp FROM w", {"w"})
    >>> infer_output_columns(gated, {"w": {"origin": "VARCHAR", "temp": "DOUBLE"}})
    (None, ["column 'tempp' not found in inputs (w) (did you mean 'temp'?)"])
    """
    schemas = {name.lower(): cols for name, cols in input_schemas.items()}
    if any(table not in schemas for table in gated.tables):
        return None, []
    spelling = _spellings(gated.expression, schemas)
    try:
        schema = {
            table: {col: _schema_type(typ) for col, typ in schemas[table].items()} for table in gated.tables
        }
        tree = qualify(
            gated.expression.copy(),
            dialect=DIALECT,
            schema=schema,
            validate_qualify_columns=False,
            quote_identifiers=False,
        )
    except OptimizeError as exc:
        match = re.match(r"Unknown column: (.+)", str(exc))
        if match:
            column = match.group(1).strip('"')
            return None, [_not_found(column, list(gated.tables), _all_columns(gated.tables, schemas))]
        return None, []
    except (SqlglotError, RecursionError):
        return None, []

    problems: list[str] = []
    try:
        for scope in traverse_scope(tree):
            verdict = _check_scope(scope, schemas)
            if verdict is None:
                return None, []
            problems.extend(verdict)
    except (SqlglotError, RecursionError):
        return None, []
    if problems:
        return None, list(dict.fromkeys(problems))

    try:
        annotated = annotate_types(tree, schema=schema, dialect=DIALECT)
    except (SqlglotError, RecursionError):
        annotated = None
    selects = (annotated or tree).selects
    columns: dict[str, str] = {}
    for select in selects:
        name = select.alias_or_name
        if not name or name == "*" or isinstance(select, exp.Star):
            return None, []
        columns[spelling.get(name.lower(), name)] = _duckdb_type(select) if annotated else UNKNOWN
    if len(columns) != len(selects):
        return None, [f"output column names are not unique: {', '.join(s.alias_or_name for s in selects)}"]
    return columns, []


# --- internals -------------------------------------------------------------------------------


def _check_scope(scope: Scope, schemas: dict[str, dict[str, str]]) -> list[str] | None:
    """Problems with unresolved columns in one scope; ``None`` if the scope cannot be judged."""
    problems: list[str] = []
    source_columns: dict[str, list[str] | None] = {}
    for alias, source in scope.sources.items():
        if isinstance(source, exp.Table):
            cols = schemas.get(source.name.lower()) if isinstance(source.this, exp.Identifier) else None
            source_columns[alias] = [c.lower() for c in cols] if cols is not None else None
        elif isinstance(source, Scope):
            names = source.expression.named_selects if isinstance(source.expression, exp.Query) else []
            source_columns[alias] = None if (not names or "*" in names) else [n.lower() for n in names]
        else:
            source_columns[alias] = None
    aliases = _output_aliases(scope.expression)
    for column in scope.unqualified_columns:
        if column.find_ancestor(exp.Lambda) is not None:
            continue
        name = column.name.lower()
        if name in aliases:
            continue  # a reference to an output alias (ORDER BY, QUALIFY)
        if any(cols is None for cols in source_columns.values()):
            return None
        holders = [alias for alias, cols in source_columns.items() if cols is not None and name in cols]
        if not holders:
            everything = sorted({c for cols in source_columns.values() for c in cols or []})
            problems.append(_not_found(column.name, sorted(source_columns), everything))
        elif len(holders) > 1:
            problems.append(
                f"column '{column.name}' is ambiguous (in {', '.join(sorted(holders))}); "
                "qualify it with a table name"
            )
    return problems


def _output_aliases(expression: exp.Expression) -> set[str]:
    """Names a SELECT defines for its own outputs (qualify's ``x AS x`` padding is not one)."""
    if not isinstance(expression, exp.Select):
        return set()
    aliases = set()
    for select in expression.selects:
        if isinstance(select, exp.Alias):
            inner = select.this
            if isinstance(inner, exp.Column) and not inner.table and inner.name.lower() == select.alias.lower():
                continue
            aliases.add(select.alias.lower())
    return aliases


def _not_found(column: str, inputs: list[str], candidates: list[str]) -> str:
    text = f"column '{column}' not found in inputs ({', '.join(inputs) or 'none'})"
    hint = did_you_mean(column.lower(), candidates)
    return f"{text} ({hint})" if hint else text


def _all_columns(tables: tuple[str, ...], schemas: dict[str, dict[str, str]]) -> list[str]:
    return sorted({c.lower() for t in tables for c in schemas.get(t, {})})


def _spellings(expression: exp.Expression, schemas: dict[str, dict[str, str]]) -> dict[str, str]:
    """Lower-case name -> the spelling DuckDB shows (sqlglot folds case, DuckDB preserves it).

    DuckDB names an output after its explicit alias as written, else after the referenced
    column as the source spells it (catalog or inner alias), whatever the query's spelling.
    """
    spelling: dict[str, str] = {}
    for cols in schemas.values():
        for col in cols:
            spelling.setdefault(col.lower(), col)
    top = set(map(id, expression.selects)) if isinstance(expression, exp.Query) else set()
    for alias in expression.find_all(exp.Alias):
        if id(alias) not in top and alias.alias:
            spelling[alias.alias.lower()] = alias.alias
    for select in expression.selects if isinstance(expression, exp.Query) else []:
        if isinstance(select, exp.Alias) and select.alias:
            spelling[select.alias.lower()] = select.alias
    return spelling


def _schema_type(duckdb_type: str) -> str:
    return "UNKNOWN" if not duckdb_type or duckdb_type.upper() == UNKNOWN else duckdb_type


def _duckdb_type(select: exp.Expression) -> str:
    data_type = select.type
    if data_type is None or data_type.this in (exp.DataType.Type.UNKNOWN, exp.DataType.Type.NULL):
        return UNKNOWN
    inner = select.this if isinstance(select, exp.Alias) else select
    if isinstance(inner, exp.Window):
        inner = inner.this
    # DuckDB types 1.5 as DECIMAL(2,1) and propagates it; sqlglot says DOUBLE. Do not guess.
    if data_type.is_type(*exp.DataType.REAL_TYPES) and any(
        lit.is_number and not lit.is_int for lit in inner.find_all(exp.Literal)
    ):
        return UNKNOWN
    # DuckDB widens integer SUM to HUGEINT; sqlglot keeps the argument type.
    if isinstance(inner, exp.Sum) and data_type.this in _INTEGRAL:
        return "HUGEINT"
    try:
        text = data_type.sql(dialect=DIALECT)
    except SqlglotError:
        return UNKNOWN
    return _TYPE_WORD_RE.sub(lambda m: _TYPE_WORDS[m.group(1)], text)
