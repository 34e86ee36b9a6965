"""Batch inference: score the spine rows of an event-time range with a registered model version.

The rows are built exactly as training built them (``materialise`` restricted to the range), the
model version's stored transforms are applied by ``LoadedModel.predict_frame``, and the
predictions replace the job's ``predictions`` table in one transaction (and, if asked, a file,
atomically). Also holds the pieces streaming shares: model resolution with the feature-view
version check (M2) and building prediction rows. Must not train or touch HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from engine.errors import DataError, PlanError
from engine.model import objects as m
from engine.sql.quote import quote_ident

if TYPE_CHECKING:
    import pandas

    from engine.runtime.executor import StepContext
    from engine.serving.scoring import LoadedModel
    from engine.training.feature_view import ViewLayout


@dataclass(frozen=True)
class ScoreOutcome:
    job: str
    model_ref: str  # "model:delay_xgb@2"
    rows: int  # rows scored this run
    table: str  # quoted predictions relation, e.g. '"predictions"."delay_scores"'
    path: str | None  # file written, relative to the project root


@dataclass(frozen=True)
class Resolved:
    """A job's model version, loaded and checked against the project's feature view."""

    model: "LoadedModel"
    view: m.FeatureView
    spine: m.FeatureGroup


def resolve(ctx: "StepContext", job: m.InferenceJob) -> Resolved:
    """Load ``job.model`` from the registry; PlanError if its feature view version is not the project's (M2)."""
    from engine.serving.scoring import load_model, parse_model_reference

    project = ctx.checked.project
    name, selector = parse_model_reference(job.model)
    loaded = load_model(ctx.con, ctx.workspace.models_dir, name, selector)
    fv_name = loaded.manifest["feature_view"]
    trained_on = int(loaded.manifest["feature_view_version"])
    fv = project.feature_views.get(fv_name)
    if fv is None:
        raise PlanError(f"{job.id}: {loaded.ref} was trained on feature_view:{fv_name}@{trained_on}, which the project no longer defines")
    if fv.version != trained_on:
        raise PlanError(
            f"{job.id}: {loaded.ref} was trained on feature_view:{fv_name}@{trained_on} but the project "
            f"defines feature_view:{fv_name}@{fv.version}; retrain the model (engine apply) or select a "
            f"version trained on @{fv.version}"
        )
    return Resolved(loaded, fv, project.feature_groups[fv.spine])


def spine_relation(ctx: "StepContext", fv: m.FeatureView) -> str:
    """The spine as ``materialise`` reads it: the offline table, restricted by the view's filter."""
    from engine.errors import SpecError
    from engine.sql.gate import gate_select

    relation = ctx.relation_of(fv.spine)
    if not fv.filter:
        return relation
    gated, messages = gate_select(f"SELECT * FROM {quote_ident(fv.spine)} WHERE {fv.filter}", {fv.spine})
    if gated is None or messages:
        raise SpecError(f"{fv.id}: filter rejected: {'; '.join(messages)}")
    return f"(SELECT * FROM {relation} WHERE {fv.filter})"


def count_spine(ctx: "StepContext", fv: m.FeatureView, spine_where: str | None) -> int:
    """Spine rows (after the view's filter) that ``spine_where`` keeps."""
    from engine.training.feature_view import SPINE_ALIAS

    where = f" WHERE {spine_where}" if spine_where else ""
    sql = f"SELECT count(*) FROM {spine_relation(ctx, fv)} AS {quote_ident(SPINE_ALIAS)}{where}"
    return int(ctx.con.execute(sql).fetchall()[0][0])


def range_where(event_time: str, start: datetime, end: datetime) -> str:
    """``start <= t < end`` over the spine's event time, with validated UTC timestamp literals."""
    from engine.training.feature_view import SPINE_ALIAS

    column = f"{quote_ident(SPINE_ALIAS)}.{quote_ident(event_time)}"
    return f"{column} >= {_timestamp_literal(start)} AND {column} < {_timestamp_literal(end)}"


def _timestamp_literal(value: datetime) -> str:
    # isoformat() of an aware datetime is digits, '-', ':', '.', 'T' and '+': nothing to escape.
    text = value.isoformat()
    if value.tzinfo is None or not all(c.isdigit() or c in "-:.T+" for c in text):
        raise DataError(f"invalid timestamp {text!r}")
    return f"TIMESTAMPTZ '{text}'"


def published_view(ctx: "StepContext", fv: m.FeatureView) -> tuple[str, "ViewLayout"] | None:
    """The published view table and layout, when it is exactly what ``materialise`` would build now.

    The proof is the fingerprint: the view step's fingerprint compiled from the current project
    (definitions, on-demand code, upstream definitions and source-file contents) equals the one
    recorded when the table was published. Otherwise None, and the caller materialises.
    """
    from engine.compiler.planner import compile_steps
    from engine.training.feature_view import stored_layout

    stored = stored_layout(ctx.con, fv.name, fv.version)
    if stored is None:
        return None
    table, layout, fingerprint = stored
    step = next((s for s in compile_steps(ctx.checked).values() if s.id == fv.id), None)
    return (table, layout) if step is not None and step.fingerprint == fingerprint else None


def view_rows(ctx: "StepContext", fv: m.FeatureView, spine_where: str | None) -> tuple["pandas.DataFrame", "ViewLayout"]:
    """The feature-view rows of the spine rows ``spine_where`` keeps, built point-in-time as for training.

    Reads the published view table when its fingerprint proves it current (the usual case in an
    apply, where the view step precedes scoring), else materialises the view for those rows.
    """
    from engine.backends.duckdb_backend import run_sql
    from engine.training.feature_view import SPINE_ALIAS, materialise

    con = ctx.con
    current = published_view(ctx, fv)
    if current is not None:
        table, layout = current
        where = f" WHERE {spine_where}" if spine_where else ""
        return con.execute(f"SELECT * FROM {table} AS {quote_ident(SPINE_ALIAS)}{where}").df(), layout
    staging = None
    try:
        staging, layout = materialise(
            con, fv, ctx.checked.project, ctx.relation_of,
            run_sql=run_sql, timeout_s=ctx.options.sql_timeout_s, spine_where=spine_where,
        )
        return con.execute(f"SELECT * FROM {staging}").df(), layout
    finally:
        if staging:
            con.execute(f"DROP TABLE IF EXISTS {staging}")


def prediction_rows(ctx: "StepContext", res: Resolved, spine_where: str | None) -> tuple["pandas.DataFrame", "ViewLayout"]:
    """Feature-view rows for the selected spine rows, predicted: ids + prediction columns."""
    import pandas as pd

    frame, layout = view_rows(ctx, res.view, spine_where)
    missing = [c for c in res.model.features if c not in frame.columns]
    if missing:
        raise PlanError(f"{res.view.id} no longer has the feature(s) {missing} that {res.model.ref} was trained on")
    try:
        predicted = res.model.predict_frame(frame)
    except ValueError as exc:
        raise DataError(f"{res.model.ref}: cannot score the rows of {res.view.id}: {exc}") from exc
    ids: list[str] = []
    for c in (*layout.keys, *((layout.event_time,) if layout.event_time else ()), *layout.helpers):
        if c not in ids:
            ids.append(c)
    from engine.serving.outputs import STAMP_COLUMNS

    clash = sorted((set(ids) & set(predicted.columns)) | (set(ids) & set(STAMP_COLUMNS)))
    if clash:
        raise PlanError(f"{res.view.id}: column(s) {clash} clash with the predictions columns; rename them in the view")
    return pd.concat([frame[ids], predicted], axis=1), layout


def stamp(ctx: "StepContext", res: Resolved):
    from engine.serving.outputs import Stamp, run_timestamp

    mv = res.model.version
    return Stamp(mv.name, int(mv.version), res.view.name, int(res.view.version), run_timestamp(ctx.con, ctx.run_id), ctx.run_id)


def relative_path(ctx: "StepContext", path) -> str:
    return str(path.relative_to(ctx.checked.project.root.resolve()))


def score_batch(ctx: "StepContext", job: m.InferenceJob) -> ScoreOutcome:
    """Score the spine rows with event time in ``[range[0], range[1])`` and replace the job's predictions.

    Raises PlanError (model trained on another feature-view version, M2), DataError (no spine rows
    in the range, or rows the stored transforms cannot handle), StorageIOError (the file could not
    be written; nothing is published under its final name and the table keeps its old rows).
    """
    from engine.serving import outputs
    from engine.training.splits import parse_utc

    if job.range is None:
        raise PlanError(f"{job.id}: a batch job needs range: [start, end)")
    res = resolve(ctx, job)
    if res.spine.event_time is None:
        raise PlanError(f"{job.id}: the spine {res.spine.id} has no event time, so there is no range to score")
    try:
        start, end = parse_utc(job.range[0]), parse_utc(job.range[1])
    except ValueError as exc:
        raise PlanError(f"{job.id}: range: {exc}") from exc
    if not start < end:
        raise PlanError(f"{job.id}: range start {job.range[0]} must be before its end {job.range[1]}")
    target = outputs.output_file(ctx.checked.project.root, job.output_path) if job.output_path else None
    where = range_where(res.spine.event_time, start, end)
    if count_spine(ctx, res.view, where) == 0:
        raise DataError(
            f"{job.id}: no spine rows in [{start.isoformat()}, {end.isoformat()}) "
            f"({res.spine.id}, event time '{res.spine.event_time}'{', after the view filter' if res.view.filter else ''}); nothing written"
        )
    frame, _ = prediction_rows(ctx, res, where)
    outputs.ensure_schema(ctx.con)
    relation = outputs.predictions_table(job)
    pending = outputs.PendingFile(target) if target else None
    try:
        with outputs.transaction(ctx.con):
            rows = outputs.replace_table(ctx.con, relation, frame, stamp(ctx, res))
            if pending:
                pending.write(outputs.table_arrow(ctx.con, relation))
        if pending:
            pending.publish()
    finally:
        if pending:
            pending.discard()
    return ScoreOutcome(job.name, res.model.ref, rows, relation, relative_path(ctx, target) if target else None)
