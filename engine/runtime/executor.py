"""Walk a plan: ingest sources, compute, check and publish feature groups; emit progress events.

Two phases, because DuckDB's sandbox cannot be lifted once set (V3): sources are read by the
engine's own queries on an unsandboxed connection, which is closed; everything that runs user SQL
or Python then runs on a reopened connection with external access disabled and the
configuration locked (V2, V5). Must not build feature-store SQL or parse YAML.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from dataclasses import dataclass

from engine.compiler.semantics import CheckedProject
from engine.compiler.steps import Action, Plan, PlannedStep, StepKind
from engine.errors import DataError, EngineError, ExecutionError, StorageIOError
from engine.model import objects as m
from engine.runtime.events import Listener, RunNotice, RunResult, StepFinished, StepStarted, StepStatus, ignore
from engine.faults import fault_point
from engine.sql.quote import qualified
from engine.state import metadata
from engine.state.workspace import Workspace


@dataclass(frozen=True)
class RunOptions:
    sql_timeout_s: float | None = 600.0
    memory_limit: str | None = None
    threads: int | None = None


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


def source_relation(name: str) -> str:
    return qualified("src", name)


def execute(plan: Plan, checked: CheckedProject, workspace: Workspace, **kwargs) -> RunResult:
    """Run every RUN step of ``plan`` in order; stop at the first failure (nothing of it published).

    The caller holds the project lock. Raises the failing step's error after recording the run;
    a full disk or an I/O error anywhere becomes a StorageIOError (exit 74, G3).
    """
    from engine import interrupts

    try:
        return _execute(plan, checked, workspace, **kwargs)
    except BaseException as exc:
        if interrupts.requested():  # a query DuckDB interrupted because the user stopped us
            raise KeyboardInterrupt from None
        if isinstance(exc, Exception) and not isinstance(exc, EngineError) and _is_storage_failure(exc):
            first = str(exc).strip().splitlines()[0]
            raise StorageIOError(f"writing the workspace {workspace.root} failed ({first}); the previous state is intact — free space and apply again") from exc
        raise


def _execute(
    plan: Plan,
    checked: CheckedProject,
    workspace: Workspace,
    *,
    run_id: str,
    options: RunOptions = RunOptions(),
    listener: Listener = ignore,
) -> RunResult:
    from engine.backends.duckdb_backend import connect

    result = RunResult(run_id)
    project = checked.project
    ingest = [s for s in plan.to_run if s.step.kind is StepKind.INGEST_SOURCE]
    builds = [s for s in plan.to_run if s.step.kind is not StepKind.INGEST_SOURCE]
    failure: EngineError | None = None

    def finish(ps: PlannedStep, status: StepStatus, started: float, rows: int | None = None, message: str | None = None) -> None:
        event = StepFinished(ps.step.key, status, ps.reason.value, time.monotonic() - started, rows, message)
        result.steps.append(event)
        listener(event)

    con = connect(workspace.database, sandboxed=False, memory_limit=options.memory_limit, threads=options.threads, temp_directory=workspace.tmp_dir)
    try:
        metadata.ensure_schema(con)
        interrupted = metadata.interrupted_runs(con)
        if interrupted:
            notice = f"previous run {interrupted[-1]} was interrupted; nothing of it was published, continuing"
            result.notices.append(notice)
            listener(RunNotice(notice))
            metadata.close_interrupted(con, interrupted)
        metadata.start_run(con, run_id)
        fault_point("after_plan")
        for ps in ingest:
            if failure:
                break
            started = time.monotonic()
            listener(StepStarted(ps.step.key, ps.reason.value))
            try:
                rows = _ingest(con, project.sources[ps.step.id.name], ps, run_id)
                finish(ps, StepStatus.RAN, started, rows)
            except EngineError as exc:
                failure = exc
                finish(ps, StepStatus.FAILED, started, message=str(exc))
    finally:
        con.close()

    if builds and not failure:
        con = connect(workspace.database, sandboxed=True, memory_limit=options.memory_limit, threads=options.threads, temp_directory=workspace.tmp_dir)
        try:
            ctx = StepContext(con, checked, run_id, options, workspace)
            failure = _run_steps(ctx, builds, finish, listener)
            if not failure:
                from engine.serving.online_store import publish_online_snapshot

                # The online endpoint reads only snapshots, never the live database (V7, V21).
                publish_online_snapshot(con, project, workspace, run_id)
        finally:
            con.close()

    executed = {s.step_id for s in result.steps}
    for ps in plan.steps:
        if ps.step.key not in executed:
            reason = "upstream failed" if (failure and ps.action is Action.RUN) else ps.reason.value
            event = StepFinished(ps.step.key, StepStatus.SKIPPED, reason)
            result.steps.append(event)
            if ps.action is Action.RUN:
                listener(event)
    order = {ps.step.key: i for i, ps in enumerate(plan.steps)}
    result.steps.sort(key=lambda s: order.get(s.step_id, 0))

    con = connect(workspace.database, sandboxed=False, memory_limit=options.memory_limit, threads=options.threads)
    try:
        metadata.finish_run(con, run_id, "failed" if failure else "succeeded", result.as_dict())
    finally:
        con.close()
    workspace.write_run_log(run_id, {**result.as_dict(), "status": "failed" if failure else "succeeded", "error": str(failure) if failure else None})
    if failure:
        failure.run_result = result  # type: ignore[attr-defined]
        raise failure
    return result


def _ingest(con, source: m.Source, ps: PlannedStep, run_id: str) -> int:
    from engine.store.sources import ingest_query, normalise_times_sql

    if not source.resolved_paths:
        raise DataError(f"{source.id}: path '{source.path}' matches no file in the project")
    _check_same_columns(con, source)
    sql, params = ingest_query(source)
    staging = qualified("staging", f"src__{source.name}")
    try:
        con.execute(f"CREATE OR REPLACE TABLE {staging} AS {sql}", params)
    except Exception as exc:  # duckdb.Error: CSV conversion errors, unreadable files (F6, F7)
        if _is_storage_failure(exc):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{source.id}: reading '{source.path}' failed: {first}") from exc
    rows = con.execute(f"SELECT count(*) FROM {staging}").fetchone()[0]
    if rows == 0 and not source.allow_empty:
        con.execute(f"DROP TABLE {staging}")
        raise DataError(f"{source.id}: '{source.path}' has no rows (set allow_empty: true if that is expected)")
    columns = {r[0]: r[1] for r in con.execute(f"DESCRIBE {staging}").fetchall()}
    rejected = _rejected_rows(con, source) if source.on_bad_rows == "quarantine" else []
    fault_point("mid_ingest")
    con.execute("BEGIN TRANSACTION")
    try:
        for row in rejected:
            con.execute("INSERT INTO _engine.rejected_rows VALUES (?, ?, ?, ?, ?, ?, ?, ?, now())", [run_id, source.name, *row])
        con.execute(f"CREATE OR REPLACE TABLE {source_relation(source.name)} AS {normalise_times_sql(staging, columns, source.timezone)}")
        con.execute(f"DROP TABLE {staging}")
        metadata.record_step(con, ps.step.key, ps.step.definition_fingerprint, ps.step.fingerprint, run_id)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return rows


def _rejected_rows(con, source: m.Source) -> list[tuple]:
    """F6 quarantine: rows DuckDB set aside while reading; fail past ``max_bad_rows``."""
    rows = con.execute(
        "SELECT s.file_path, e.line, e.column_name, CAST(e.error_type AS VARCHAR), e.csv_line, e.error_message "
        "FROM reject_errors e JOIN reject_scans s USING (scan_id, file_id) ORDER BY s.file_path, e.line"
    ).fetchall()
    con.execute("DROP TABLE IF EXISTS reject_errors")
    con.execute("DROP TABLE IF EXISTS reject_scans")
    lines = {(r[0], r[1]) for r in rows}
    if len(lines) > source.max_bad_rows:
        first = rows[0]
        raise DataError(
            f"{source.id}: {len(lines)} rows could not be read (more than max_bad_rows {source.max_bad_rows}); "
            f"first: {Path(first[0]).name} line {first[1]} column {first[2]}: {first[5]}; nothing published"
        )
    return [(Path(r[0]).name, r[1], r[2], r[3], r[4], r[5]) for r in rows]


def _check_same_columns(con, source: m.Source) -> None:
    """F7: every file of a multi-file source has the same columns (DuckDB would silently drop or
    NULL-fill the difference, V18)."""
    from engine.store.sources import ingest_query

    if len(source.resolved_paths) < 2:
        return
    import dataclasses

    first_cols: list[str] | None = None
    for path in source.resolved_paths:
        single = dataclasses.replace(source, resolved_paths=(path,))
        sql, params = ingest_query(single)
        try:
            cols = [r[0] for r in con.execute(f"DESCRIBE {sql}", params).fetchall()]
        except Exception as exc:
            raise DataError(f"{source.id}: reading '{path.name}' failed: {str(exc).strip().splitlines()[0]}") from exc
        if first_cols is None:
            first_cols, first = cols, path
            continue
        if cols != first_cols:
            added = [c for c in cols if c not in first_cols]
            missing = [c for c in first_cols if c not in cols]
            diff = "; ".join(filter(None, [f"extra columns {added}" if added else "", f"missing columns {missing}" if missing else ""])) or "columns in a different order"
            raise DataError(f"{source.id}: file '{path.name}' does not match '{first.name}': {diff}")


@dataclass
class StepContext:
    """What every step handler gets: the sandboxed connection and the run's settings."""

    con: object
    checked: CheckedProject
    run_id: str
    options: RunOptions
    workspace: Workspace

    def relation_of(self, name: str) -> str:
        from engine.store.feature_store import offline_relation

        project = self.checked.project
        if name in project.sources:
            return source_relation(name)
        fg = project.feature_groups[name]
        return offline_relation(fg.name, fg.version)


def _run_steps(ctx: StepContext, steps: list[PlannedStep], finish, listener) -> EngineError | None:
    """Run steps in plan order; the first failure stops the run (nothing of it published)."""
    handlers = {
        StepKind.BUILD_FEATURE_GROUP: _build_feature_group,
        StepKind.BUILD_FEATURE_VIEW: _build_feature_view,
        StepKind.TRAIN_MODEL: _train_model,
        StepKind.SCORE_BATCH: _score,
        StepKind.SCORE_STREAM: _score,
    }
    for ps in steps:
        started = time.monotonic()
        listener(StepStarted(ps.step.key, ps.reason.value))
        try:
            rows = handlers[ps.step.kind](ctx, ps)
            finish(ps, StepStatus.RAN, started, rows)
        except EngineError as exc:
            finish(ps, StepStatus.FAILED, started, message=str(exc))
            return exc
        except Exception as exc:  # a DuckDB error outside user SQL, e.g. a type error while merging
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            if first.endswith("Query interrupted"):  # DuckDB saw Ctrl-C during a query
                from engine import interrupts

                interrupts.request()
            if _is_storage_failure(exc):
                err = StorageIOError(f"{ps.step.key}: writing the workspace failed ({first}); nothing of this step was published — free space and apply again")
            else:
                err = ExecutionError(f"{ps.step.key}: {type(exc).__name__}: {first}")
            finish(ps, StepStatus.FAILED, started, message=str(err))
            return err
    return None


def _is_storage_failure(exc: BaseException) -> bool:
    """Disk full, file too large or an I/O error while writing the workspace (G3: exit 74)."""
    import errno

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EIO, errno.EDQUOT):
        return True
    text = str(exc)
    return type(exc).__name__ == "IOException" and any(
        marker in text for marker in ("No space left", "File too large", "Could not write", "Could not truncate", "disk")
    )


def _build_feature_group(ctx: StepContext, ps: PlannedStep) -> int:
    from engine.runtime.compute import ComputeContext, compute
    from engine.store.feature_store import publish

    con = ctx.con
    fg = ctx.checked.project.feature_groups[ps.step.id.name]
    compute_ctx = ComputeContext(con, ctx.checked.project, ctx.relation_of, ctx.options.sql_timeout_s)
    staging = None
    try:
        staging = compute(compute_ctx, fg)
        fault_point("after_staging")
        _check(con, fg, staging)
        version = publish(con, fg, staging, run_id=ctx.run_id, fingerprint=ps.step.fingerprint, fitted=compute_ctx.fitted, fault_point=fault_point)
        metadata.record_step(con, ps.step.key, ps.step.definition_fingerprint, ps.step.fingerprint, ctx.run_id)
        return version.row_count
    finally:
        if staging:
            con.execute(f"DROP TABLE IF EXISTS {staging}")


def _build_feature_view(ctx: StepContext, ps: PlannedStep) -> int:
    from engine.backends.duckdb_backend import run_sql
    from engine.training.feature_view import materialise, publish_view

    con = ctx.con
    fv = ctx.checked.project.feature_views[ps.step.id.name]
    staging = None
    try:
        staging, layout = materialise(con, fv, ctx.checked.project, ctx.relation_of, run_sql=run_sql, timeout_s=ctx.options.sql_timeout_s)
        rows = con.execute(f"SELECT count(*) FROM {staging}").fetchone()[0]
        con.execute("BEGIN TRANSACTION")
        try:
            publish_view(con, fv, staging, layout, fingerprint=ps.step.fingerprint, run_id=ctx.run_id)
            metadata.record_step(con, ps.step.key, ps.step.definition_fingerprint, ps.step.fingerprint, ctx.run_id)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return rows
    finally:
        if staging:
            con.execute(f"DROP TABLE IF EXISTS {staging}")


def _train_model(ctx: StepContext, ps: PlannedStep) -> int:
    from engine.training.train import train_model

    model = ctx.checked.project.models[ps.step.id.name]
    outcome = train_model(ctx.con, model, ctx.checked.project, ctx.workspace, run_id=ctx.run_id)
    metadata.record_step(ctx.con, ps.step.key, ps.step.definition_fingerprint, ps.step.fingerprint, ctx.run_id)
    return outcome.rows


def _score(ctx: StepContext, ps: PlannedStep) -> int:
    job = ctx.checked.project.inference[ps.step.id.name]
    if ps.step.kind is StepKind.SCORE_BATCH:
        from engine.serving.batch import score_batch as run
    else:
        from engine.serving.stream import score_stream as run
    outcome = run(ctx, job)
    metadata.record_step(ctx.con, ps.step.key, ps.step.definition_fingerprint, ps.step.fingerprint, ctx.run_id)
    return outcome.rows


def _check_non_finite(con, fg: m.FeatureGroup, staging: str) -> None:
    """F5: NaN and ±inf in float columns are refused unless the group says otherwise."""
    from engine.sql.quote import quote_ident

    if fg.non_finite is m.NonFinite.ALLOW:
        return
    floats = [r[0] for r in con.execute(f"DESCRIBE {staging}").fetchall() if r[1] in ("DOUBLE", "FLOAT", "REAL")]
    if not floats:
        return
    counts = con.execute(f"SELECT {', '.join(f'count(*) FILTER (WHERE NOT isfinite({quote_ident(c)}))' for c in floats)} FROM {staging}").fetchall()[0]
    offending = {c: n for c, n in zip(floats, counts) if n}
    if not offending:
        return
    if fg.non_finite is m.NonFinite.NULLIFY:
        sets = ", ".join(f"{quote_ident(c)} = CASE WHEN isfinite({quote_ident(c)}) THEN {quote_ident(c)} END" for c in offending)
        con.execute(f"UPDATE {staging} SET {sets}")
        return
    listing = ", ".join(f"{c} ({n})" for c, n in offending.items())
    raise DataError(
        f"{fg.id}: NaN or infinite values in {listing}; nothing published "
        "(set non_finite: nullify to store them as NULL, or non_finite: allow to keep them)"
    )


def _check(con, fg: m.FeatureGroup, staging: str) -> None:
    """Keys (F1, F2) and expectations, before anything is published."""
    from engine.sql.quote import quote_ident
    from engine.store.expectations import check_primary_key, format_failures, run_expectations

    null_rows, dup_rows, samples = check_primary_key(con, staging, fg.primary_key, fg.event_time)
    keys = ", ".join([*fg.primary_key, *([fg.event_time] if fg.event_time else [])])
    if null_rows:
        raise DataError(f"{fg.id}: {null_rows} rows with a NULL in the primary key or event time ({keys}); nothing published")
    if dup_rows:
        if fg.dedupe is m.Dedupe.LATEST:
            part = ", ".join(quote_ident(k) for k in [*fg.primary_key, *([fg.event_time] if fg.event_time else [])])
            con.execute(f"CREATE OR REPLACE TABLE {staging} AS SELECT * FROM {staging} QUALIFY row_number() OVER (PARTITION BY {part} ORDER BY rowid DESC) = 1")
        else:
            shown = "; ".join(", ".join(f"{k}={v}" for k, v in s.items()) for s in samples[:3])
            raise DataError(
                f"{fg.id}: {dup_rows} rows share a primary key and event time ({keys}), e.g. {shown}; "
                "nothing published (fix the transform, or set dedupe: latest to keep the last row)"
            )
    _check_non_finite(con, fg, staging)
    results = run_expectations(con, staging, fg.expectations)
    failed = [r for r in results if not r.passed]
    if failed:
        raise DataError("; ".join(format_failures(str(fg.id), failed)) + "; nothing published")
