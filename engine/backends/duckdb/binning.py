"""DuckDB SQL for the declared binning built-in: quantile edges and bin columns. Owns SQL text only."""

from __future__ import annotations

import math
from collections.abc import Sequence

from engine.model.objects import Binning
from engine.sql.quote import quote_ident


def _float_literal(value: float) -> str:
    """A DuckDB DOUBLE literal that round-trips ``value`` exactly (scientific notation is DOUBLE)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"bin edge must be a finite number, got {value!r}")
    text = repr(float(value))
    return text if "e" in text else f"{text}e0"


def _text_literal(value: str) -> str:
    """A label as SQL text without splicing user text: hex digits decoded by DuckDB."""
    if not isinstance(value, str):
        raise ValueError(f"bin label must be text, got {value!r}")
    return f"decode(from_hex('{value.encode('utf-8').hex()}'))"


def _check_edges(edges: Sequence[float]) -> tuple[float, ...]:
    out = tuple(float(e) for e in edges)
    for e in out:
        _float_literal(e)
    if any(b <= a for a, b in zip(out, out[1:])):
        raise ValueError(f"bin edges must be strictly ascending, got {list(out)}")
    return out


def quantile_edges_sql(relation: str, column: str, quantiles: int) -> str:
    """A SELECT returning one row, one LIST column: the inner equal-frequency edges of ``column``.

    The list holds ``quantile_cont`` at 1/n … (n−1)/n over the finite, non-NULL values (NaN and
    ±inf are left out so they cannot turn an edge into NaN); it is NULL on an empty input.

    >>> quantile_edges_sql('"t"', "x", 4)
    'SELECT quantile_cont(CAST("x" AS DOUBLE), [0.25, 0.5, 0.75]) AS "edges" FROM "t" WHERE isfinite(CAST("x" AS DOUBLE))'
    """
    if isinstance(quantiles, bool) or not isinstance(quantiles, int) or quantiles < 2:
        raise ValueError(f"quantiles must be an integer >= 2, got {quantiles!r}")
    value = f"CAST({quote_ident(column)} AS DOUBLE)"
    fractions = ", ".join(repr(i / quantiles) for i in range(1, quantiles))
    return (
        f'SELECT quantile_cont({value}, [{fractions}]) AS "edges" '
        f"FROM {relation} WHERE isfinite({value})"
    )


def bin_expression(column: str, edges: Sequence[float], labels: Sequence[str] | None = None) -> str:
    """The CASE expression mapping one column to its bin (see ``binning_sql`` for the convention)."""
    edges = _check_edges(edges)
    if labels is not None and len(labels) != len(edges) + 1:
        raise ValueError(
            f"binning of {column!r} needs {len(edges) + 1} labels for {len(edges)} edges, "
            f"got {len(labels)}"
        )

    def out(i: int) -> str:
        return _text_literal(labels[i]) if labels is not None else str(i)

    value = f"CAST({quote_ident(column)} AS DOUBLE)"
    whens = [f"WHEN {value} IS NULL OR isnan({value}) THEN NULL"]
    whens += [f"WHEN {value} < {_float_literal(e)} THEN {out(i)}" for i, e in enumerate(edges)]
    return f"CASE {' '.join(whens)} ELSE {out(len(edges))} END"


def binning_sql(
    relation: str,
    columns_in: Sequence[str],
    bins: Sequence[tuple[Binning, tuple[float, ...]]],
) -> str:
    """A SELECT keeping every input column and adding one bin column per ``(binning, edges)``.

    Edge convention (bins are closed on the left, open on the right, like
    ``numpy.searchsorted(edges, v, side="right")``): with ascending edges e1 < … < en,
    ``v < e1`` → 0, ``e_i <= v < e_{i+1}`` → i, ``v >= en`` → n (so -inf → 0, +inf → n).
    NULL and NaN values get a NULL bin. With ``labels`` (exactly ``len(edges) + 1`` of them) the
    bin column holds the label text of that index instead of the index.

    >>> b = Binning("x", "x_bin", edges=(0.0, 10.0))
    >>> sql = binning_sql('"t"', ["x"], [(b, (0.0, 10.0))])
    >>> '< 0.0e0 THEN 0 WHEN CAST("x" AS DOUBLE) < 10.0e0 THEN 1 ELSE 2 END AS "x_bin"' in sql
    True
    """
    if not columns_in:
        raise ValueError("binning needs at least one input column")
    select = [", ".join(quote_ident(c) for c in columns_in)]
    for binning, edges in bins:
        expr = bin_expression(binning.column, edges, binning.labels)
        select.append(f"{expr} AS {quote_ident(binning.name)}")
    return "SELECT\n  " + ",\n  ".join(select) + f"\nFROM {relation}"
