"""Compute one feature group into a staging table: one handler per transform kind.

Owns running user SQL (gated, sandboxed, timed), calling user Python, and the built-ins; must not
publish (engine.store.offline does that) nor build SQL: feature-store work goes to the backend as operations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from engine.backends.base import Backend
from engine.errors import ExecutionError, SpecError
from engine.model import objects as m
from engine.sql.ops import Bin, Relation, Scan, WindowAggregation, key_columns
from engine.transforms.on_demand import import_function, user_frame


@dataclass
class ComputeContext:
    backend: Backend  # sandboxed
    project: m.Project
    relation_of: Callable[[str], Relation]  # input name -> physical relation
    sql_timeout_s: float | None
    fitted: dict = field(default_factory=dict)  # state fitted while computing (bin edges, PCA)


def staging_relation(fg: m.FeatureGroup) -> Relation:
    return Relation("staging", f"{fg.name}__v{fg.version}")


def writes_directly(fg: m.FeatureGroup) -> bool:
    """Whether ``compute`` can write ``fg`` straight into its offline table (``into``): a SQL
    group, whose one SELECT the backend writes as a commit, checked before it is recorded. Not
    with ``dedupe: latest``, whose "last row in input order" needs the rows in the SELECT's order,
    which a parallel write into several files does not keep."""
    return isinstance(fg.transform, m.SqlTransform) and fg.dedupe is not m.Dedupe.LATEST


def compute(ctx: ComputeContext, fg: m.FeatureGroup, *, into: Relation | None = None) -> Relation:
    """Materialise ``fg`` into its staging table and return that relation; with ``into`` (a group
    that ``writes_directly``), into that table instead: a commit the caller's transaction records
    or, on failure, discards."""
    if into is not None and not writes_directly(fg):
        raise ExecutionError(f"{fg.id}: only a SQL group is written straight into its table")
    target = into or staging_relation(fg)
    if into is None:
        ctx.backend.drop(target)
    match fg.transform:
        case m.SqlTransform() as t:
            _sql(ctx, fg, t, target)
        case m.PythonTransform() as t:
            _python(ctx, fg, t, target)
        case m.AggregationTransform() as t:
            op = WindowAggregation(ctx.relation_of(t.input), fg.primary_key, fg.event_time, t.aggregations)
            ctx.backend.create(target, op, timeout_s=ctx.sql_timeout_s)
        case m.BinningTransform() as t:
            _binning(ctx, fg, t, target)
        case m.PcaTransform() as t:
            _pca(ctx, fg, t, target)
    _normalise_event_time(ctx, fg, target)
    return target


def _sql(ctx: ComputeContext, fg: m.FeatureGroup, t: m.SqlTransform, target: Relation) -> None:
    from engine.sql.gate import gate_select

    # Defence in depth: the gate ran at validate time; run it again on exactly what executes.
    gated, messages = gate_select(t.sql, set(t.inputs))
    if gated is None or messages:
        raise SpecError(f"{fg.id}: {'; '.join(messages) or 'SQL rejected'}")
    tables = {name: ctx.relation_of(name) for name in gated.tables}
    ctx.backend.run_select(target, t.sql, tables, timeout_s=ctx.sql_timeout_s, order_by=key_columns(fg.primary_key, fg.event_time))


def _python(ctx: ComputeContext, fg: m.FeatureGroup, t: m.PythonTransform, target: Relation) -> None:
    fn = import_function(ctx.project.root, t.module, t.function, str(fg.id))
    frames = [ctx.backend.frame(ctx.relation_of(name)) for name in t.inputs]
    try:
        result = fn(*frames)
    except Exception as exc:
        raise ExecutionError(f"{fg.id}: {t.reference} raised {type(exc).__name__}: {exc}{user_frame(exc, ctx.project.root)}") from exc
    _register_result(ctx, fg, t.reference, result, target)


def _register_result(ctx: ComputeContext, fg: m.FeatureGroup, what: str, result: object, target: Relation) -> None:
    import pandas as pd
    import pyarrow as pa

    if not isinstance(result, pd.DataFrame | pa.Table):
        raise ExecutionError(f"{fg.id}: {what} returned {type(result).__name__}, expected a pandas DataFrame or an Arrow table")
    ctx.backend.write(target, result)
    columns = set(ctx.backend.columns(target))
    missing = [c for c in key_columns(fg.primary_key, fg.event_time) if c not in columns]
    if missing:
        raise ExecutionError(f"{fg.id}: {what} returned no column {', '.join(repr(c) for c in missing)} (columns: {', '.join(sorted(columns))})")


def _binning(ctx: ComputeContext, fg: m.FeatureGroup, t: m.BinningTransform, target: Relation) -> None:
    from engine.transforms.binning import resolve_edges

    source = ctx.relation_of(t.input)
    resolved = []
    for b in t.bins:
        edges = resolve_edges(ctx.backend, source, b)
        ctx.fitted.setdefault("bin_edges", {})[b.name] = list(edges)
        resolved.append((b, tuple(edges)))
    columns = tuple(ctx.backend.columns(source))
    ctx.backend.create(target, Bin(source, columns, tuple(resolved)), timeout_s=ctx.sql_timeout_s)


def _pca(ctx: ComputeContext, fg: m.FeatureGroup, t: m.PcaTransform, target: Relation) -> None:
    from engine.transforms.pca import apply_pca, fit_pca

    pca = t.pca
    wanted = list(dict.fromkeys([*key_columns(fg.primary_key, fg.event_time), *pca.keep, *pca.columns]))
    frame = ctx.backend.frame(Scan(ctx.relation_of(t.input), columns=tuple(wanted)))
    fit = fit_pca(frame, pca)
    ctx.fitted["pca"] = fit.to_dict()
    out = frame[[c for c in wanted if c not in pca.columns or c in pca.keep or c in fg.primary_key]].copy()
    components = apply_pca(frame, fit, pca)
    for col in components.columns:
        out[col] = components[col].to_numpy()
    _register_result(ctx, fg, "pca", out, target)


def _normalise_event_time(ctx: ComputeContext, fg: m.FeatureGroup, target: Relation) -> None:
    """Event times are stored as UTC TIMESTAMPTZ (DESIGN §3 Time); naive values are read as UTC."""
    if not fg.event_time:
        return
    types = ctx.backend.columns(target)
    typ = types.get(fg.event_time)
    if typ is None:
        raise ExecutionError(f"{fg.id}: output has no event time column '{fg.event_time}' (columns: {', '.join(types)})")
    if typ == "TIMESTAMP WITH TIME ZONE":
        return
    if not (typ.startswith("TIMESTAMP") or typ == "DATE"):
        raise SpecError(f"{fg.id}: event time column '{fg.event_time}' has type {typ}, expected TIMESTAMP, TIMESTAMPTZ or DATE")
    ctx.backend.cast_column(target, fg.event_time, "TIMESTAMPTZ")
