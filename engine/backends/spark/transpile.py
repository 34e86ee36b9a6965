"""User SQL from the spec's dialect (DuckDB's) to Spark SQL: sqlglot's transpiler, plus the
constructs it gets wrong for Spark. Owns SQL text generation only; never runs anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlglot import exp


def spark_sql(expression: "exp.Query", mapping: dict[str, str]) -> str:
    """Spark SQL for a gated query whose input tables read ``mapping[name]`` (quoted view names).

    DuckDB's table functions ``range(n)`` / ``generate_series(a, b)`` in FROM become Spark's
    ``range(start, end)`` with the column named as DuckDB names it (sqlglot would generate an
    ``EXPLODE(SEQUENCE(...))`` that Spark cannot parse in FROM).
    """
    from sqlglot import exp

    from engine.sql.gate import rewrite_tables

    tree = expression.copy()
    for table in list(tree.find_all(exp.Table)):
        series = table.this
        if not isinstance(series, exp.GenerateSeries):
            continue
        start = series.args.get("start") or exp.Literal.number(0)
        end = series.args.get("end")
        column = "range" if series.args.get("is_end_exclusive") else "generate_series"
        if not series.args.get("is_end_exclusive"):
            end = exp.Add(this=end.copy(), expression=exp.Literal.number(1))
        alias = table.args.get("alias")
        name = alias.this.copy() if alias is not None and alias.this is not None else exp.to_identifier(f"_engine_{column}")
        function = exp.Anonymous(this="range", expressions=[start.copy(), end.copy()])
        subquery = exp.select(exp.column("id").as_(column)).from_(exp.Table(this=function)).subquery(name)
        table.replace(subquery)
    for call in list(tree.find_all(exp.Anonymous)):
        if str(call.this).lower() == "timezone" and len(call.expressions) == 2:
            call.replace(_timezone(*call.expressions))
    return rewrite_tables(tree, mapping, "spark")


_NAIVE = ("TIMESTAMP", "DATETIME", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S")


def _timezone(zone: "exp.Expression", value: "exp.Expression") -> "exp.Expression":
    """DuckDB's ``timezone(zone, x)``: a naive ``x`` read as wall-clock time in ``zone`` gives the
    instant (Spark: ``to_utc_timestamp``); an instant ``x`` gives its wall-clock time in ``zone``
    (``from_utc_timestamp``). Which one is known from the expression when it builds or casts a
    naive timestamp (``make_timestamp``, ``CAST(... AS TIMESTAMP)``, ``::TIMESTAMP``); otherwise the
    value is taken to be an instant, the only kind the engine stores (DESIGN §3 Time)."""
    from sqlglot import exp

    naive = isinstance(value, exp.TimestampFromParts | exp.StrToTime) or (
        isinstance(value, exp.Cast) and value.to.sql(dialect="duckdb").upper() in _NAIVE
    )
    name = "to_utc_timestamp" if naive else "from_utc_timestamp"
    return exp.Anonymous(this=name, expressions=[value.copy(), zone.copy()])
