"""One handler per step kind: each takes its step's payload and the run's context, does the work
through the stores and the backend, records the step, and returns the rows it produced.

Must not build SQL: feature-store work travels as operations (``engine.sql.ops``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.compiler.steps import PlannedStep, StepKind
from engine.runtime.context import StepOutcome
from engine.faults import fault_point
from engine.state import metadata

if TYPE_CHECKING:
    from engine.runtime.context import RunContext

Handler = Callable[["RunContext", PlannedStep], StepOutcome]


def _record(ctx: "RunContext", ps: PlannedStep) -> None:
    from engine.compiler.changes import definition_document

    metadata.record_step(ctx.backend.catalog, ps.step.key, ps.step.definition_fingerprint, ps.step.fingerprint, ctx.run_id)
    document = definition_document(ps.step, ctx.checked)
    if document is not None:  # what the next plan's change report compares with
        metadata.record_definition(ctx.backend.catalog, ps.step.key, document, ctx.run_id)


def ingest(ctx: "RunContext", ps: PlannedStep) -> StepOutcome:
    """Read a source's files into its ``src`` table, with quarantined rows, the files read and the
    step record, atomically. When the plan found only new files beside unchanged consumed ones
    (``new data (incremental)``), only those are read and appended (one commit)."""
    from engine.compiler.fingerprint import file_digest
    from engine.compiler.planner import file_changes
    from engine.compiler.steps import Reason
    from engine.runtime.context import source_relation

    source = ps.step.payload
    backend = ctx.backend
    root = ctx.checked.project.root.resolve()
    target = source_relation(source.name)
    held = metadata.source_files(backend.catalog, source.name).get(source.name, {})
    added, changed = file_changes(root, source, {f: r.digest for f, r in held.items()})
    current = {str(p.relative_to(root)): p for p in source.resolved_paths}
    with backend.transaction():
        fault_point("before_ingest")
        if ps.reason is Reason.NEW_DATA and held and added and not changed:
            report = backend.read_source(source, target, files=[current[f] for f in added], mode="append")
        else:
            report = backend.read_source(source, target)
        fault_point("mid_ingest")
        version = backend.lake_version(target)
        if version is not None:
            rows = {path: n for path, n in report.file_rows}
            read = added if report.appended else sorted(current)
            files = [metadata.SourceFile(f, file_digest(current[f]), rows.get(str(current[f])), version) for f in read]
            metadata.record_source_files(backend.catalog, source.name, files, ctx.run_id, replace=not report.appended)
            if changed and not report.appended and ps.reason is not Reason.FULL_REFRESH:
                metadata.record_source_change(backend.catalog, source.name, version, changed, ctx.run_id)
        metadata.record_rejects(backend.catalog, ctx.run_id, source.name, report.rejected)
        _record(ctx, ps)
    fell_back = ps.reason is Reason.NEW_DATA and not report.appended  # new files read to other columns or types
    return StepOutcome(report.rows, reason=Reason.DATA_CHANGED.value if fell_back else None)


def build_feature_group(ctx: "RunContext", ps: PlannedStep) -> StepOutcome:
    """Compute into staging, check (keys, non-finite, expectations), publish; nothing on failure.

    An incremental group (declared, or a built-in windowed aggregation) whose inputs only got new
    rows (``new data (incremental)``) computes just what they change and publishes its previous
    rows combined with that (engine.runtime.incremental); any other run rebuilds it from its full
    inputs. Either way the step records the input versions it consumed."""
    from engine.compiler.steps import Reason
    from engine.runtime import incremental
    from engine.runtime.compute import ComputeContext, compute, writes_directly
    from engine.store.offline import offline_relation
    from engine.store.quality import check, check_table

    fg = ps.step.payload
    backend = ctx.backend
    project = ctx.checked.project
    inputs = {name: ctx.relation_of(name) for name in fg.inputs}
    increment = None
    if ps.reason in (Reason.NEW_DATA, Reason.UPSTREAM_CHANGED):
        # An append group never rebuilds silently over a consumed file that changed (this run or
        # an earlier one that did not run the group).
        incremental.check_replaced_sources(backend, project, fg, ps.step.key, inputs)
    if ps.reason in (Reason.NEW_DATA, Reason.UPSTREAM_CHANGED):
        # Also on "upstream changed": an input's earlier apply (e.g. ``-s source``) may have only
        # appended to it; the Delta log says, and an overwrite anywhere means a full rebuild.
        increment = incremental.prepare(backend, project, fg, ps.step.key, inputs, offline_relation(fg.name, fg.version))
    relation_of = increment.relation_of if increment is not None else ctx.relation_of
    compute_ctx = ComputeContext(backend, project, relation_of, ctx.options.sql_timeout_s)
    staging = None
    merged = None
    offline = offline_relation(fg.name, fg.version)
    if increment is None and writes_directly(fg):
        # A full build of a SQL group: its SELECT is written once, straight into the offline
        # table as a commit that the checks then read; recorded only if they and the publication
        # pass, otherwise discarded with the transaction (no staging copy, nothing published).
        with backend.transaction():
            compute(compute_ctx, fg, into=offline)
            fault_point("after_staging")
            mark = incremental.watermark(backend, fg, inputs)
            check(backend, fg, offline)
            version = ctx.stores.offline.publish(fg, offline, run_id=ctx.run_id, fingerprint=ps.step.fingerprint, fitted=compute_ctx.fitted, fault_point=fault_point)
            if fg.incremental_mode is not None:
                metadata.record_consumed_inputs(backend.catalog, ps.step.key, incremental.consumed_now(backend, inputs, mark))
            _record(ctx, ps)
        return StepOutcome(version.row_count, reason=Reason.UPSTREAM_CHANGED.value if ps.reason is Reason.NEW_DATA else None)
    try:
        staging = compute(compute_ctx, fg)
        fault_point("after_staging")
        added = incremental.appendable(backend, fg, increment, staging, offline) if increment is not None else None
        if added is not None:
            # Only new rows: checked alone (keys, values, row expectations), then appended; the
            # table-level expectations see the whole table inside the publishing transaction.
            check(backend, fg, added, rows_only=True)
            with backend.transaction():
                ctx.stores.offline.publish_append(
                    fg, added, run_id=ctx.run_id, fingerprint=ps.step.fingerprint, fitted=compute_ctx.fitted, fault_point=fault_point,
                    check_table=lambda table: check_table(backend, fg, table),
                )
                metadata.record_consumed_inputs(backend.catalog, ps.step.key, incremental.consumed_now(backend, inputs, increment.watermark))
                _record(ctx, ps)
            return StepOutcome(backend.count(added), reason=Reason.NEW_DATA.value)
        written = None
        if increment is not None:
            merged, written = incremental.combine(backend, fg, increment, staging)
            mark = increment.watermark
        else:
            mark = incremental.watermark(backend, fg, inputs)
        result = merged or staging
        check(backend, fg, result)
        with backend.transaction():
            version = ctx.stores.offline.publish(
                fg, result, run_id=ctx.run_id, fingerprint=ps.step.fingerprint, fitted=compute_ctx.fitted, fault_point=fault_point, rows_written=written
            )
            if fg.incremental_mode is not None:
                metadata.record_consumed_inputs(backend.catalog, ps.step.key, incremental.consumed_now(backend, inputs, mark))
            _record(ctx, ps)
        if increment is None:
            return StepOutcome(version.row_count, reason=Reason.UPSTREAM_CHANGED.value if ps.reason is Reason.NEW_DATA else None)
        return StepOutcome(written, reason=Reason.NEW_DATA.value)
    finally:
        for relation in (staging, merged, *(increment.scratch if increment is not None else ())):
            if relation:
                backend.drop(relation)


def build_feature_view(ctx: "RunContext", ps: PlannedStep) -> StepOutcome:
    """Materialise the view point-in-time and publish it with its layout, atomically.

    When its inputs only got new rows and no new feature row is as early as a spine row already in
    the view (``engine.runtime.incremental.view_spine``), only the new spine rows are joined and
    appended; otherwise the whole view is rebuilt. A view without on-demand features is written
    straight from the join into its table."""
    from engine.compiler.steps import Reason
    from engine.runtime import incremental
    from engine.store.views import materialise, publish_view, stored_layout, view_join, view_relation

    fv = ps.step.payload
    backend = ctx.backend
    project = ctx.checked.project
    inputs = {name: ctx.relation_of(name) for name in dict.fromkeys([fv.spine, *(j.feature_group for j in fv.joins)])}
    fault_point("view_build")
    new_spine = None
    if ps.reason in (Reason.NEW_DATA, Reason.UPSTREAM_CHANGED):
        new_spine = incremental.view_spine(backend, project, fv, ps.step.key, inputs, view_relation(fv))
    join, layout, direct = view_join(backend, fv, project, ctx.relation_of, spine=new_spine)
    if new_spine is not None:
        stored = stored_layout(backend, fv.name, fv.version)
        if stored is None or stored[1] != layout:  # new columns upstream: rebuilt
            new_spine = None
            join, layout, direct = view_join(backend, fv, project, ctx.relation_of)
    staging = None
    try:
        if not direct:
            staging, layout = materialise(backend, fv, project, ctx.relation_of, timeout_s=ctx.options.sql_timeout_s, spine=new_spine)
        with backend.transaction():
            rows, written = publish_view(
                backend, fv, staging or join, layout, fingerprint=ps.step.fingerprint, run_id=ctx.run_id, append=new_spine is not None
            )
            metadata.record_consumed_inputs(backend.catalog, ps.step.key, incremental.consumed_now(backend, inputs, None))
            _record(ctx, ps)
        if new_spine is not None:
            return StepOutcome(written, reason=Reason.NEW_DATA.value)
        return StepOutcome(rows)
    finally:
        if staging:
            backend.drop(staging)


def train_model(ctx: "RunContext", ps: PlannedStep) -> StepOutcome:
    """Train on the published view; register the version (or find the identical one); move aliases."""
    from engine.training.train import train_model as train

    model = ps.step.payload
    fault_point("before_model")
    outcome = train(ctx.stores, model, ctx.checked.project, run_id=ctx.run_id)
    _record(ctx, ps)
    test = (outcome.version.manifest.get("metrics") or {}).get("test") or {}
    return StepOutcome(outcome.rows, outcome.version.ref, tuple(sorted(test.items())), notes=outcome.notes)


def score_batch(ctx: "RunContext", ps: PlannedStep) -> StepOutcome:
    """Score the job's range: as written, resolved (``range: {last: …}``) or a backfill's. A
    backfill is not recorded: the job's own state, and so the next plan, stay as they were.
    After an incremental view, only its new rows may be scored (``engine.serving.batch``)."""
    import dataclasses

    from engine.compiler.steps import Reason
    from engine.serving.batch import score_batch as run

    job = ps.step.payload
    if ps.step.window is not None:
        job = dataclasses.replace(job, range=ps.step.window)
    _check_output(ctx, job)
    # Only the view's new rows are scored when nothing but the view ran (an incremental view
    # appends new spine rows) and the table holds this range from this model version.
    since_last = ps.reason is Reason.UPSTREAM_CHANGED
    outcome = run(_scoring(ctx, ps), job, since_last=since_last, remember=ps.reason is not Reason.BACKFILL)
    if ps.reason is not Reason.BACKFILL:
        _record(ctx, ps)
    return StepOutcome(outcome.rows, outcome.path or outcome.table, reason=Reason.NEW_DATA.value if outcome.incremental else None)


def score_stream(ctx: "RunContext", ps: PlannedStep) -> StepOutcome:
    from engine.serving.stream import score_stream as run

    _check_output(ctx, ps.step.payload)
    outcome = run(_scoring(ctx, ps), ps.step.payload)
    _record(ctx, ps)
    return StepOutcome(outcome.rows, outcome.path or outcome.table)


def _check_output(ctx: "RunContext", job) -> None:
    """I4, before anything is written: the job's output file is none the project reads (a source's
    file or one its glob could match, a spec, SQL or Python file); SpecError (exit 3) otherwise."""
    if job.output_path:
        from engine.compiler.semantics import project_reads
        from engine.serving.outputs import output_file

        project = ctx.checked.project
        output_file(project.root, job.output_path, reads=project_reads(project))


def _scoring(ctx: "RunContext", ps: PlannedStep):
    from engine.serving.batch import ScoringContext

    return ScoringContext(
        stores=ctx.stores,
        project=ctx.checked.project,
        run_id=ctx.run_id,
        sql_timeout_s=ctx.options.sql_timeout_s,
        view_fingerprints={ps.step.depends_on[0]: ps.step.view_fingerprint} if ps.step.view_fingerprint else {},
        relation_of=ctx.relation_of,
        allow_code_drift=ctx.options.allow_code_drift,
        output_root=ctx.options.output_root,
    )


HANDLERS: dict[StepKind, Handler] = {
    StepKind.INGEST_SOURCE: ingest,
    StepKind.BUILD_FEATURE_GROUP: build_feature_group,
    StepKind.BUILD_FEATURE_VIEW: build_feature_view,
    StepKind.TRAIN_MODEL: train_model,
    StepKind.SCORE_BATCH: score_batch,
    StepKind.SCORE_STREAM: score_stream,
}
