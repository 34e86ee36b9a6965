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
    metadata.record_step(ctx.backend.catalog, ps.step.key, ps.step.definition_fingerprint, ps.step.fingerprint, ctx.run_id)


def ingest(ctx: "RunContext", ps: PlannedStep) -> StepOutcome:
    """Read a source's files into its ``src`` table, with quarantined rows and the step record, atomically."""
    from engine.runtime.context import source_relation

    source = ps.step.payload
    backend = ctx.backend
    with backend.transaction():
        fault_point("before_ingest")
        report = backend.read_source(source, source_relation(source.name))
        fault_point("mid_ingest")
        metadata.record_rejects(backend.catalog, ctx.run_id, source.name, report.rejected)
        _record(ctx, ps)
    return StepOutcome(report.rows)


def build_feature_group(ctx: "RunContext", ps: PlannedStep) -> StepOutcome:
    """Compute into staging, check (keys, non-finite, expectations), publish; nothing on failure."""
    from engine.runtime.compute import ComputeContext, compute
    from engine.store.quality import check

    fg = ps.step.payload
    compute_ctx = ComputeContext(ctx.backend, ctx.checked.project, ctx.relation_of, ctx.options.sql_timeout_s)
    staging = None
    try:
        staging = compute(compute_ctx, fg)
        fault_point("after_staging")
        check(ctx.backend, fg, staging)
        version = ctx.stores.offline.publish(fg, staging, run_id=ctx.run_id, fingerprint=ps.step.fingerprint, fitted=compute_ctx.fitted, fault_point=fault_point)
        _record(ctx, ps)
        return StepOutcome(version.row_count)
    finally:
        if staging:
            ctx.backend.drop(staging)


def build_feature_view(ctx: "RunContext", ps: PlannedStep) -> StepOutcome:
    """Materialise the view point-in-time and publish it with its layout, atomically."""
    from engine.store.views import materialise, publish_view

    fv = ps.step.payload
    staging = None
    fault_point("view_build")
    try:
        staging, layout = materialise(ctx.backend, fv, ctx.checked.project, ctx.relation_of, timeout_s=ctx.options.sql_timeout_s)
        rows = ctx.backend.count(staging)
        with ctx.backend.transaction():
            publish_view(ctx.backend, fv, staging, layout, fingerprint=ps.step.fingerprint, run_id=ctx.run_id)
            _record(ctx, ps)
        return StepOutcome(rows)
    finally:
        if staging:
            ctx.backend.drop(staging)


def train_model(ctx: "RunContext", ps: PlannedStep) -> StepOutcome:
    """Train on the published view; register the version (or find the identical one); move aliases."""
    from engine.training.train import train_model as train

    model = ps.step.payload
    fault_point("before_model")
    outcome = train(ctx.stores, model, ctx.checked.project, run_id=ctx.run_id)
    _record(ctx, ps)
    test = (outcome.version.manifest.get("metrics") or {}).get("test") or {}
    return StepOutcome(outcome.rows, outcome.version.ref, tuple(sorted(test.items())))


def score_batch(ctx: "RunContext", ps: PlannedStep) -> StepOutcome:
    from engine.serving.batch import score_batch as run

    _check_output(ctx, ps.step.payload)
    outcome = run(_scoring(ctx, ps), ps.step.payload)
    _record(ctx, ps)
    return StepOutcome(outcome.rows, outcome.path or outcome.table)


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
    )


HANDLERS: dict[StepKind, Handler] = {
    StepKind.INGEST_SOURCE: ingest,
    StepKind.BUILD_FEATURE_GROUP: build_feature_group,
    StepKind.BUILD_FEATURE_VIEW: build_feature_view,
    StepKind.TRAIN_MODEL: train_model,
    StepKind.SCORE_BATCH: score_batch,
    StepKind.SCORE_STREAM: score_stream,
}
