"""Streaming (incremental) inference: score only the spine rows this job has not scored yet.

Exactly-once by the spine's primary key: the rows to score are the spine rows with no row of the
same key in the job's ``predictions`` table (an anti-join), and they are appended, never
replaced, in one transaction with the job's row in ``_engine.stream_watermarks``. A crash before
COMMIT appends nothing and leaves the watermark as it was, so the next run scores the same rows;
a re-run with nothing new scores 0 rows and changes nothing.

New rows arrive through the feature pipeline: the job's ``source`` feeds the spine, and an apply
re-ingests it and rebuilds the feature groups before this step runs.

Limitation (by design, for now): a spine row is scored once. If its features change after it
was scored (a late-arriving feature row, a corrected source), it is *not* re-scored; a batch job
over its range re-scores it. Must not train or touch HTTP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.errors import PlanError
from engine.faults import fault_point
from engine.model import objects as m
from engine.sql.ops import NotIn
from engine.state import metadata

if TYPE_CHECKING:
    from engine.serving.batch import ScoreOutcome, ScoringContext


def watermark(catalog, job: str) -> dict | None:
    """The job's watermark row, or None before its first scoring run."""
    return metadata.watermark(catalog, job)


def score_stream(ctx: "ScoringContext", job: m.InferenceJob) -> "ScoreOutcome":
    """Score the spine rows not yet in the job's predictions table and append them (see module docstring)."""
    import pandas as pd

    from engine.serving import outputs
    from engine.serving.batch import ScoreOutcome, prediction_rows, relative_path, resolve, stamp

    backend = ctx.backend
    res = resolve(ctx, job)
    ctx = res.context or ctx  # an older view version reads the groups at the versions it read
    keys = tuple(res.spine.primary_key)
    if not keys:
        raise PlanError(f"{job.id}: the spine {res.spine.id} has no primary key, so scored rows cannot be told apart")
    target = ctx.output_target(job)
    relation = outputs.predictions_table(job)
    where = (NotIn(relation, keys),) if backend.exists(relation) else ()
    path = relative_path(ctx, target) if target else None
    frame, layout = prediction_rows(ctx, res, where)
    if frame is None:  # nothing new to score
        return ScoreOutcome(job.name, res.model.ref, 0, str(relation), path)
    last_time = frame[layout.event_time].max() if layout.event_time else None
    last = None if last_time is None or pd.isna(last_time) else pd.Timestamp(last_time).to_pydatetime()
    pending = outputs.PendingFile(target) if target else None
    try:
        with backend.transaction():
            rows = backend.append_new(relation, frame, keys, constants=outputs.stamp_columns(stamp(ctx, res)))
            fault_point("stream_before_commit")
            metadata.advance_watermark(backend.catalog, job.name, rows, ctx.run_id, last)
            if pending:
                pending.write(backend.fetch(relation))
        if pending:
            pending.publish()
    finally:
        if pending:
            pending.discard()
    return ScoreOutcome(job.name, res.model.ref, rows, str(relation), path)
