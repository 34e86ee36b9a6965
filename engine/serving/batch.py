"""Batch inference: score the spine rows of an event-time range with a registered model version.

The rows are built exactly as training built them (``materialise`` restricted to the range), the
model version's stored transforms are applied by ``LoadedModel.predict_frame``, and the
predictions replace the job's ``predictions`` table in one transaction (and, if asked, a file,
atomically). Also holds the pieces streaming shares: model resolution with the feature-view
version check (M2) and building prediction rows. Must not train or touch HTTP.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import DataError, PlanError
from engine.ids import ModelRef
from engine.model import objects as m
from engine.sql.ops import Relation, Scan, SpineFilter, TimeRange
from engine.state import metadata

log = logging.getLogger("engine.serving")

if TYPE_CHECKING:
    import pandas

    from engine.serving.scoring import LoadedModel
    from engine.session import Stores
    from engine.store.views import ViewLayout


@dataclass(frozen=True)
class ScoringContext:
    """What scoring needs from a run: its stores, the project, and the current fingerprint of each
    feature view (from the plan) that proves a published view table current; a view missing here
    is materialised."""

    stores: "Stores"
    project: m.Project
    run_id: str
    sql_timeout_s: float | None
    view_fingerprints: Mapping[str, str]  # feature_view:name@version -> fingerprint
    relation_of: Callable[[str], Relation]
    allow_code_drift: bool = False  # score although the on-demand functions' code changed since training
    output_root: "Path | None" = None  # an environment's run: files go here, at the path the job names

    def output_target(self, job: m.InferenceJob) -> "Path | None":
        """Where ``job``'s file goes: its ``output.path`` in the project (checked, P1-P3), or the
        same relative path under ``output_root`` in an environment's run."""
        from engine.serving import outputs

        if not job.output_path:
            return None
        target = outputs.output_file(self.project.root, job.output_path)
        if self.output_root is None:
            return target
        moved = Path(self.output_root) / target.relative_to(self.project.root.resolve())
        moved.parent.mkdir(parents=True, exist_ok=True)
        return moved

    @property
    def backend(self):
        return self.stores.backend

    @classmethod
    def for_project(cls, stores: "Stores", checked, run_id: str, *, sql_timeout_s: float | None = 600.0) -> "ScoringContext":
        """Scoring outside an apply (library calls, tests, benchmarks): every view's current
        fingerprint compiled from the project, inputs resolved through the offline store."""
        from functools import partial

        from engine.compiler.planner import compile_steps
        from engine.store.offline import input_relation

        views = {key: step.fingerprint for key, step in compile_steps(checked).items() if key.startswith("feature_view:")}
        return cls(stores, checked.project, run_id, sql_timeout_s, views, partial(input_relation, checked.project, stores.offline))


@dataclass(frozen=True)
class ScoreOutcome:
    job: str
    model_ref: str  # "model:delay_xgb@2"
    rows: int  # rows scored this run
    table: str  # quoted predictions relation, e.g. '"predictions"."delay_scores"'
    path: str | None  # file written, relative to the project root
    incremental: bool = False  # only rows new since the last run were scored (and appended)


@dataclass(frozen=True)
class Resolved:
    """A job's model version, loaded and checked against the project's feature view."""

    model: "LoadedModel"
    view: m.FeatureView
    spine: m.FeatureGroup
    context: "ScoringContext | None" = None  # an older view version: the project as that version read it


def resolve(ctx: ScoringContext, job: m.InferenceJob) -> Resolved:
    """Load ``job.model`` from the registry, with the feature-view version it was trained on: the
    declared one, or an older one read back from its recorded definition (``context`` then holds
    the project as that version read it). PlanError if that version cannot be rebuilt (M2), or if
    the model was trained with other on-demand function code than is on disk."""
    from engine.serving.scoring import check_code, load_model

    project = ctx.project
    loaded = load_model(ctx.stores.registry, ModelRef.parse(job.model))
    fv_name, trained_on = loaded.info.feature_view, loaded.info.feature_view_version
    fv = project.feature_views.get(fv_name)
    context = None
    if fv is None or fv.version != trained_on:
        # An older view version (or one the spec dropped): built as it was when the model trained.
        from dataclasses import replace
        from functools import partial

        from engine.serving.versions import archived_view
        from engine.store.offline import input_relation

        archived = archived_view(ctx.backend.catalog, project, fv_name, trained_on)
        if archived is None:
            declared = f"defines feature_view:{fv_name}@{fv.version}" if fv is not None else "no longer defines it"
            raise PlanError(
                f"{job.id}: {loaded.ref} was trained on feature_view:{fv_name}@{trained_on}, whose definition this "
                f"workspace did not record, and the project {declared}; retrain the model (engine apply) or select "
                f"a version trained on the declared view"
            )
        fv, project = archived
        context = replace(ctx, project=project, relation_of=partial(input_relation, project, ctx.stores.offline))
    for drift in check_code(loaded, project.root, allow=ctx.allow_code_drift, where=f"{job.id}: "):
        log.warning("%s: %s scores with the code on disk (--allow-code-drift): %s differs from its training", job.id, loaded.ref, drift)
    return Resolved(loaded, fv, project.feature_groups[fv.spine], context)


def published_view(ctx: ScoringContext, fv: m.FeatureView) -> tuple[Relation, "ViewLayout"] | None:
    """The published view table and layout, when it is exactly what ``materialise`` would build now.

    The proof is the fingerprint: the view step's fingerprint compiled from the current project
    (definitions, on-demand code, upstream definitions and source-file contents), which the plan
    hands to the scoring step, equals the one recorded when the table was published. Otherwise
    None, and the caller materialises.
    """
    from engine.store.views import stored_layout

    stored = stored_layout(ctx.backend, fv.name, fv.version)
    if stored is None:
        return None
    table, layout, fingerprint = stored
    return (table, layout) if ctx.view_fingerprints.get(str(fv.id)) == fingerprint else None


def view_rows(
    ctx: ScoringContext, fv: m.FeatureView, where: Sequence[SpineFilter], *, appended: Relation | None = None
) -> tuple["pandas.DataFrame", "ViewLayout"]:
    """The feature-view rows of the spine rows ``where`` keeps, built point-in-time as for training.

    Reads the published view table when its fingerprint proves it current (the usual case in an
    apply, where the view step precedes scoring), else materialises the view for those rows.
    ``appended``: read only these rows of the current published table (the rows its lake commits
    appended since an earlier version, ``Backend.appended``).
    """
    from engine.store.views import materialise

    current = published_view(ctx, fv)
    if current is not None:
        table, layout = current
        return ctx.backend.frame(Scan(appended or table, tuple(where))), layout
    staging = None
    try:
        staging, layout = materialise(ctx.backend, fv, ctx.project, ctx.relation_of, timeout_s=ctx.sql_timeout_s, spine_where=where)
        return ctx.backend.frame(Scan(staging, columns=layout.columns)), layout
    finally:
        if staging:
            ctx.backend.drop(staging)


def prediction_rows(
    ctx: ScoringContext, res: Resolved, spine_where: Sequence[SpineFilter], *, appended: Relation | None = None
) -> tuple["pandas.DataFrame | None", "ViewLayout"]:
    """Feature-view rows for the selected spine rows (of ``appended`` only, if given: see
    ``view_rows``), predicted: ids + prediction columns; None when no spine row is selected."""
    import pandas as pd

    frame, layout = view_rows(ctx, res.view, spine_where, appended=appended)
    if frame.empty:  # one view row per selected spine row (after the view's filter)
        return None, layout
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


def _outside(ctx: ScoringContext, relation, event_time: str, start, end):
    """A staging copy of the predictions ``relation`` holds outside ``[start, end)`` (None when it
    holds none, or no table yet)."""
    from engine.sql.ops import EARLIEST, LATEST

    backend = ctx.backend
    if not backend.exists(relation) or event_time not in backend.columns(relation):
        return None
    before, after = TimeRange(event_time, EARLIEST, start), TimeRange(event_time, end, LATEST)
    if backend.count(Scan(relation, filters=(before,))) == 0 and backend.count(Scan(relation, filters=(after,))) == 0:
        return None  # the usual re-run of the same range: nothing to keep, so no copy to make and drop
    kept = Relation("staging", f"_kept__{relation.name}")
    backend.drop(kept)
    backend.create(kept, Scan(relation, filters=(before,)))
    backend.append(kept, Scan(relation, filters=(after,)))
    return kept


def stamp(ctx: ScoringContext, res: Resolved):
    from engine.serving.outputs import Stamp, run_timestamp

    mv = res.model.version
    return Stamp(mv.name, int(mv.version), res.view.name, int(res.view.version), run_timestamp(ctx.backend.catalog, ctx.run_id), ctx.run_id)


def relative_path(ctx: ScoringContext, path) -> str:
    root = ctx.project.root.resolve()
    return str(path.relative_to(root)) if Path(path).is_relative_to(root) else str(path)


def score_batch(ctx: ScoringContext, job: m.InferenceJob, *, since_last: bool = False, remember: bool = True) -> ScoreOutcome:
    """Score the spine rows with event time in ``[range[0], range[1])`` and replace the job's
    predictions *in that range*: rows the table holds for other times (a backfill, yesterday's
    window of a ``range: {last: …}`` job) stay, unless the predictions' columns changed (another
    model, other classes), which replaces the whole table.

    ``since_last`` (an apply whose plan found only the job's inputs changed): when the table holds
    this range scored by the same model version from the same published view table, and that
    table has only had rows appended since (an incremental view: new spine rows), only those rows
    are scored and appended (``ScoreOutcome.incremental``); anything else scores the whole range.
    ``remember``: record what the table now holds for the job's range (a backfill, which scores
    another range, forgets it instead, so the next run scores the whole range).

    Raises PlanError (model trained on another feature-view version, M2), DataError (no spine rows
    in the range, or rows the stored transforms cannot handle), StorageIOError (the file could not
    be written; nothing is published under its final name and the table keeps its old rows).
    """
    from engine.serving import outputs
    from engine.training.splits import parse_utc

    if job.range is None:
        raise PlanError(f"{job.id}: a batch job needs range: [start, end)")
    res = resolve(ctx, job)
    ctx = res.context or ctx  # an older view version reads the groups at the versions it read
    if res.spine.event_time is None:
        raise PlanError(f"{job.id}: the spine {res.spine.id} has no event time, so there is no range to score")
    try:
        start, end = parse_utc(job.range[0]), parse_utc(job.range[1])
    except ValueError as exc:
        raise PlanError(f"{job.id}: range: {exc}") from exc
    if not start < end:
        raise PlanError(f"{job.id}: range start {job.range[0]} must be before its end {job.range[1]}")
    target = ctx.output_target(job)
    relation = outputs.predictions_table(job)
    where = (TimeRange(res.spine.event_time, start, end),)
    # What the table will hold for the range: rows read from the current published view table at
    # its committed lake version (none to record when the rows are materialised instead).
    published = published_view(ctx, res.view) if res.context is None else None
    version = ctx.backend.lake_version(published[0]) if published is not None else None
    basis = None
    if published is not None and version is not None:
        basis = metadata.BatchScored(res.model.ref, start.isoformat(), end.isoformat(), str(published[0]), version)
    if since_last and basis is not None:
        outcome = _score_appended(ctx, res, job, relation, where, basis, published[0], target)
        if outcome is not None:
            return outcome
    frame, _ = prediction_rows(ctx, res, where)
    if frame is None:
        raise DataError(
            f"{job.id}: no spine rows in [{start.isoformat()}, {end.isoformat()}) "
            f"({res.spine.id}, event time '{res.spine.event_time}'{', after the view filter' if res.view.filter else ''}); nothing written"
        )
    pending = outputs.PendingFile(target) if target else None
    try:
        with ctx.backend.transaction():
            kept = _outside(ctx, relation, res.spine.event_time, start, end)
            rows = ctx.backend.write(relation, frame, mode="replace", constants=outputs.stamp_columns(stamp(ctx, res)))
            if kept is not None:
                if ctx.backend.columns(kept) == ctx.backend.columns(relation):
                    ctx.backend.append(relation, kept)
                ctx.backend.drop(kept)
            held = None  # what the table now holds for the job's range (a backfill's other range: forgotten)
            if remember and basis is not None and ctx.backend.lake_version(relation) is not None:
                held = dataclasses.replace(basis, table_version=ctx.backend.lake_version(relation))
            metadata.record_batch_scored(ctx.backend.catalog, job.name, held, ctx.run_id)
            if pending:
                pending.write(ctx.backend.fetch(relation))
        if pending:
            pending.publish()
    finally:
        if pending:
            pending.discard()
    return ScoreOutcome(job.name, res.model.ref, rows, str(relation), relative_path(ctx, target) if target else None)


def _score_appended(
    ctx: ScoringContext, res: Resolved, job: m.InferenceJob, relation: Relation, where, basis: metadata.BatchScored, table: Relation, target
) -> ScoreOutcome | None:
    """Score only the view rows appended since the recorded basis and append their predictions;
    None when the table does not hold exactly the recorded basis's rows (see ``score_batch``).

    Exact: the published view only appends when its new spine rows change no stored row (the
    incremental view's own condition), so the stored predictions are those a full run would give
    with this model, and the appended rows (their range's part) are the rows a full run adds."""
    from engine.serving import outputs

    backend = ctx.backend
    before = metadata.batch_scored(backend.catalog, job.name)
    same = before is not None and (before.model, before.range_start, before.range_end, before.view_table) == (
        basis.model, basis.range_start, basis.range_end, basis.view_table,
    )
    if not same or backend.lake_version(relation) != before.table_version:
        return None  # never recorded, other model or range, or the table was written since
    new = backend.appended(table, before.view_version)
    if new is None:
        return None  # the view table was rewritten since: score the whole range
    path = relative_path(ctx, target) if target else None
    frame, _ = prediction_rows(ctx, res, where, appended=new)
    if frame is None:  # no new spine row in the range: the table stands
        with backend.transaction():
            metadata.record_batch_scored(backend.catalog, job.name, dataclasses.replace(basis, table_version=before.table_version), ctx.run_id)
        return ScoreOutcome(job.name, res.model.ref, 0, str(relation), path, incremental=True)
    staged = Relation("staging", f"_scored__{relation.name}")
    backend.drop(staged)
    pending = outputs.PendingFile(target) if target else None
    try:
        backend.write(staged, frame, mode="replace", constants=outputs.stamp_columns(stamp(ctx, res)))
        if backend.columns(staged) != backend.columns(relation):
            return None  # other prediction columns or types than the table's: replaced as a whole
        with backend.transaction():
            rows = backend.append(relation, staged)
            metadata.record_batch_scored(backend.catalog, job.name, dataclasses.replace(basis, table_version=backend.lake_version(relation)), ctx.run_id)
            if pending:
                pending.write(backend.fetch(relation))
        if pending:
            pending.publish()
    finally:
        backend.drop(staged)
        if pending:
            pending.discard()
    return ScoreOutcome(job.name, res.model.ref, rows, str(relation), path, incremental=True)
