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
from engine.sql.quote import quote_ident

if TYPE_CHECKING:
    from engine.runtime.executor import StepContext
    from engine.serving.batch import ScoreOutcome


def _not_scored_where(relation: str, keys: tuple[str, ...]) -> str:
    """Spine rows whose key has no row in ``relation`` (the job's predictions)."""
    from engine.training.feature_view import SPINE_ALIAS

    spine, scored = quote_ident(SPINE_ALIAS), quote_ident("_scored")
    match = " AND ".join(f"{scored}.{quote_ident(k)} = {spine}.{quote_ident(k)}" for k in keys)
    return f"NOT EXISTS (SELECT 1 FROM {relation} AS {scored} WHERE {match})"


def watermark(con, job: str) -> dict | None:
    """The job's watermark row, or None before its first scoring run."""
    rows = con.execute(
        "SELECT job, runs, rows_scored, last_run_id, last_event_time, updated_at FROM _engine.stream_watermarks WHERE job = ?", [job]
    ).fetchall()
    if not rows:
        return None
    return dict(zip(("job", "runs", "rows_scored", "last_run_id", "last_event_time", "updated_at"), rows[0]))


def score_stream(ctx: "StepContext", job: m.InferenceJob) -> "ScoreOutcome":
    """Score the spine rows not yet in the job's predictions table and append them (see module docstring)."""
    from engine.serving import outputs
    from engine.serving.batch import ScoreOutcome, count_spine, prediction_rows, relative_path, resolve, stamp

    con = ctx.con
    res = resolve(ctx, job)
    keys = tuple(res.spine.primary_key)
    if not keys:
        raise PlanError(f"{job.id}: the spine {res.spine.id} has no primary key, so scored rows cannot be told apart")
    target = outputs.output_file(ctx.checked.project.root, job.output_path) if job.output_path else None
    outputs.ensure_schema(con)
    relation = outputs.predictions_table(job)
    table = job.output_table or job.name
    where = _not_scored_where(relation, keys) if outputs.table_exists(con, outputs.PREDICTIONS_SCHEMA, table) else None
    path = relative_path(ctx, target) if target else None
    if count_spine(ctx, res.view, where) == 0:
        return ScoreOutcome(job.name, res.model.ref, 0, relation, path)

    frame, layout = prediction_rows(ctx, res, where)
    last_time = frame[layout.event_time].max() if layout.event_time else None
    pending = outputs.PendingFile(target) if target else None
    try:
        with outputs.transaction(con):
            rows = outputs.append_new(con, relation, frame, stamp(ctx, res), keys)
            fault_point("stream_before_commit")
            _advance(con, job.name, rows, ctx.run_id, last_time)
            if pending:
                pending.write(outputs.table_arrow(con, relation))
        if pending:
            pending.publish()
    finally:
        if pending:
            pending.discard()
    return ScoreOutcome(job.name, res.model.ref, rows, relation, path)


def _advance(con, job: str, rows: int, run_id: str, last_time) -> None:
    """Upsert the watermark: one more run, ``rows`` more scored, the latest event time seen."""
    import pandas as pd

    last = None if last_time is None or pd.isna(last_time) else pd.Timestamp(last_time).to_pydatetime()
    con.execute(
        """INSERT INTO _engine.stream_watermarks VALUES (?, 1, ?, ?, ?::TIMESTAMPTZ, now())
           ON CONFLICT (job) DO UPDATE SET
               runs = stream_watermarks.runs + 1,
               rows_scored = stream_watermarks.rows_scored + excluded.rows_scored,
               last_run_id = excluded.last_run_id,
               last_event_time = greatest(stream_watermarks.last_event_time, excluded.last_event_time),
               updated_at = excluded.updated_at""",
        [job, rows, run_id, last],
    )
