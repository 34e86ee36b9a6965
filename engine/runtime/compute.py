"""Compute one feature group into a staging table: one handler per transform kind.

Owns running user SQL (gated, sandboxed, timed), calling user Python, and the built-ins; must not
publish (engine.store.feature_store does that) nor build SQL for feature-store operations itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from engine.backends.duckdb_backend import check_single_select, run_sql
from engine.errors import ExecutionError, SpecError
from engine.model import objects as m
from engine.sql.quote import qualified, quote_ident
from engine.transforms.on_demand import import_function, user_frame


@dataclass
class ComputeContext:
    con: object  # duckdb connection (sandboxed)
    project: m.Project
    relation_of: Callable[[str], str]  # input name -> quoted physical relation
    sql_timeout_s: float | None
    fitted: dict = field(default_factory=dict)  # state fitted while computing (bin edges, PCA)


def staging_relation(fg: m.FeatureGroup) -> str:
    return qualified("staging", f"{fg.name}__v{fg.version}")


def compute(ctx: ComputeContext, fg: m.FeatureGroup) -> str:
    """Materialise ``fg`` into its staging table and return that relation."""
    target = staging_relation(fg)
    ctx.con.execute(f"DROP TABLE IF EXISTS {target}")
    match fg.transform:
        case m.SqlTransform() as t:
            _sql(ctx, fg, t, target)
        case m.PythonTransform() as t:
            _python(ctx, fg, t, target)
        case m.AggregationTransform() as t:
            from engine.sql.aggregations import window_aggregation_sql

            sql = window_aggregation_sql(ctx.relation_of(t.input), fg.primary_key, fg.event_time, t.aggregations)
            run_sql(ctx.con, f"CREATE TABLE {target} AS {sql}", timeout_s=ctx.sql_timeout_s)
        case m.BinningTransform() as t:
            _binning(ctx, fg, t, target)
        case m.PcaTransform() as t:
            _pca(ctx, fg, t, target)
    _normalise_event_time(ctx, fg, target)
    return target


def _sql(ctx: ComputeContext, fg: m.FeatureGroup, t: m.SqlTransform, target: str) -> None:
    from engine.sql.gate import gate_select, rewrite_tables

    # Defence in depth: the gate ran at validate time; run it again on exactly what executes.
    gated, messages = gate_select(t.sql, set(t.inputs))
    if gated is None or messages:
        raise SpecError(f"{fg.id}: {'; '.join(messages) or 'SQL rejected'}")
    sql = rewrite_tables(gated.expression, {name: ctx.relation_of(name) for name in gated.tables})
    check_single_select(ctx.con, sql)
    run_sql(ctx.con, f"CREATE TABLE {target} AS {sql}", timeout_s=ctx.sql_timeout_s)


def _python(ctx: ComputeContext, fg: m.FeatureGroup, t: m.PythonTransform, target: str) -> None:
    fn = import_function(ctx.project.root, t.module, t.function, str(fg.id))
    frames = [ctx.con.execute(f"SELECT * FROM {ctx.relation_of(name)}").df() for name in t.inputs]
    try:
        result = fn(*frames)
    except Exception as exc:
        raise ExecutionError(f"{fg.id}: {t.reference} raised {type(exc).__name__}: {exc}{user_frame(exc, ctx.project.root)}") from exc
    _register_result(ctx, fg, t.reference, result, target)


def _register_result(ctx: ComputeContext, fg: m.FeatureGroup, what: str, result: object, target: str) -> None:
    import pandas as pd
    import pyarrow as pa

    if isinstance(result, pd.DataFrame):
        result = result.reset_index(drop=True) if not isinstance(result.index, pd.RangeIndex) else result
    elif not isinstance(result, pa.Table):
        raise ExecutionError(f"{fg.id}: {what} returned {type(result).__name__}, expected a pandas DataFrame or an Arrow table")
    view = "_engine_result"
    ctx.con.register(view, result)
    try:
        ctx.con.execute(f"CREATE TABLE {target} AS SELECT * FROM {quote_ident(view)}")
    finally:
        ctx.con.unregister(view)
    columns = {r[0] for r in ctx.con.execute(f"DESCRIBE {target}").fetchall()}
    missing = [c for c in (*fg.primary_key, *([fg.event_time] if fg.event_time else [])) if c not in columns]
    if missing:
        raise ExecutionError(f"{fg.id}: {what} returned no column {', '.join(repr(c) for c in missing)} (columns: {', '.join(sorted(columns))})")


def _binning(ctx: ComputeContext, fg: m.FeatureGroup, t: m.BinningTransform, target: str) -> None:
    from engine.sql.binning import binning_sql, resolve_edges

    source = ctx.relation_of(t.input)
    resolved = []
    for b in t.bins:
        edges = resolve_edges(ctx.con, source, b)
        ctx.fitted.setdefault("bin_edges", {})[b.name] = list(edges)
        resolved.append((b, tuple(edges)))
    columns = [r[0] for r in ctx.con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
    run_sql(ctx.con, f"CREATE TABLE {target} AS {binning_sql(source, columns, resolved)}", timeout_s=ctx.sql_timeout_s)


def _pca(ctx: ComputeContext, fg: m.FeatureGroup, t: m.PcaTransform, target: str) -> None:
    from engine.transforms.pca import apply_pca, fit_pca

    pca = t.pca
    wanted = list(dict.fromkeys([*fg.primary_key, *([fg.event_time] if fg.event_time else []), *pca.keep, *pca.columns]))
    cols = ", ".join(quote_ident(c) for c in wanted)
    frame = ctx.con.execute(f"SELECT {cols} FROM {ctx.relation_of(t.input)}").df()
    fit = fit_pca(frame, pca)
    ctx.fitted["pca"] = fit.to_dict()
    out = frame[[c for c in wanted if c not in pca.columns or c in pca.keep or c in fg.primary_key]].copy()
    components = apply_pca(frame, fit, pca)
    for col in components.columns:
        out[col] = components[col].to_numpy()
    _register_result(ctx, fg, "pca", out, target)


def _normalise_event_time(ctx: ComputeContext, fg: m.FeatureGroup, target: str) -> None:
    """Event times are stored as UTC TIMESTAMPTZ (DESIGN §3 Time); naive values are read as UTC."""
    if not fg.event_time:
        return
    types = {r[0]: r[1] for r in ctx.con.execute(f"DESCRIBE {target}").fetchall()}
    typ = types.get(fg.event_time)
    if typ is None:
        raise ExecutionError(f"{fg.id}: output has no event time column '{fg.event_time}' (columns: {', '.join(types)})")
    if typ == "TIMESTAMP WITH TIME ZONE":
        return
    if not (typ.startswith("TIMESTAMP") or typ == "DATE"):
        raise SpecError(f"{fg.id}: event time column '{fg.event_time}' has type {typ}, expected TIMESTAMP, TIMESTAMPTZ or DATE")
    ctx.con.execute(f"ALTER TABLE {target} ALTER COLUMN {quote_ident(fg.event_time)} TYPE TIMESTAMPTZ")
