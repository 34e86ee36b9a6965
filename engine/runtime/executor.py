"""Walk a plan through the handler table (``engine.runtime.handlers``); emit progress events;
record the run. ``RunOptions`` is re-exported for callers.

Two phases, because DuckDB's sandbox cannot be lifted once set (V3): sources are read by the
engine's own queries on an unsandboxed connection, which is closed; everything that runs user SQL
or Python then runs on a reopened connection with external access disabled and the
configuration locked (V2, V5). Must not build feature-store SQL or parse YAML.
"""

from __future__ import annotations

import time
import uuid

from engine.compiler.semantics import CheckedProject
from engine.compiler.steps import Action, Plan, PlannedStep, StepKind
from engine.errors import DataError, EngineError, ExecutionError, StorageIOError, is_storage_failure
from engine.faults import fault_point
from engine.runtime.events import Listener, RunNotice, RunResult, StepFinished, StepStarted, StepStatus, ignore
from engine.runtime.context import RunContext, RunOptions
from engine.runtime.handlers import HANDLERS
from engine.session import writing
from engine.state import metadata
from engine.state.workspace import Workspace


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


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
        if isinstance(exc, Exception) and not isinstance(exc, EngineError) and is_storage_failure(exc):
            raise StorageIOError(f"{_storage_message(workspace, exc)}; the previous state is intact — free space and apply again") from exc
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
    result = RunResult(run_id)
    ingest = [s for s in plan.to_run if s.step.kind is StepKind.INGEST_SOURCE]
    builds = [s for s in plan.to_run if s.step.kind is not StepKind.INGEST_SOURCE]
    failure: EngineError | None = None
    failures: list[EngineError] = []
    blocked: dict[str, str] = {}  # step key -> the failed step it is downstream of
    resources = {"memory_limit": options.memory_limit, "threads": options.threads}

    def finish(
        ps: PlannedStep, status: StepStatus, started: float, rows: int | None = None, message: str | None = None, *, reason: str | None = None, **extra
    ) -> None:
        event = StepFinished(ps.step.key, status, reason or ps.reason.value, time.monotonic() - started, rows, message, **extra)
        result.steps.append(event)
        listener(event)

    def skip(event: StepFinished) -> None:
        result.steps.append(event)
        listener(event)

    # Phase 1, unsandboxed: the engine's own queries read the source files (V3: the sandbox cannot
    # be lifted later, so this connection is closed before any user code runs).
    with writing(workspace, run_id=run_id, project=checked.project, **resources) as stores:
        stores.backend.ensure_schemas()
        metadata.ensure_schema(stores.backend.catalog)
        interrupted = metadata.interrupted_runs(stores.backend.catalog)
        if interrupted:
            notice = f"previous run {interrupted[-1]} was interrupted; the steps it finished stay published, continuing"
            result.notices.append(notice)
            listener(RunNotice(notice))
            metadata.close_interrupted(stores.backend.catalog, interrupted)
        metadata.start_run(stores.backend.catalog, run_id)
        fault_point("after_plan")
        ctx = RunContext(stores, checked, run_id, options, workspace)
        _run_steps(ctx, ingest, finish, skip, listener, failures, blocked)

    # Phase 2, sandboxed: user SQL and Python, publication, then the online snapshot.
    published = False
    stopped = any(isinstance(f, StorageIOError) for f in failures)
    if builds and not stopped:
        with writing(workspace, run_id=run_id, project=checked.project, sandboxed=True, **resources) as stores:
            ctx = RunContext(stores, checked, run_id, options, workspace)
            _run_steps(ctx, builds, finish, skip, listener, failures, blocked)
            if not failures:
                from engine.store.online import publish_online_snapshot

                # The online endpoint reads only snapshots, never the live database (V7, V21).
                try:
                    fault_point("before_snapshot")
                    publish_online_snapshot(stores, checked.project, workspace, run_id)
                    published = True
                except Exception as exc:
                    if not is_storage_failure(exc) and not isinstance(exc, StorageIOError):
                        raise
                    failure = StorageIOError(
                        f"online snapshot: {_storage_message(workspace, exc)}; the previous state is intact "
                        "(the endpoint keeps serving the previous snapshot; what this run published is complete) "
                        "— free space and apply again"
                    )
                    failure.__cause__ = exc

    if failures and failure is None:
        failure = _combined(failures, result)
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

    try:
        with writing(workspace, run_id=run_id, project=checked.project, spill=False, **resources) as stores:
            if not published:
                _repair_online(stores, checked, workspace, run_id, result, listener, failure)
            metadata.finish_run(stores.backend.catalog, run_id, "failed" if failure else "succeeded", result.as_dict())
        workspace.write_run_log(run_id, {**result.as_dict(), "status": "failed" if failure else "succeeded", "error": str(failure) if failure else None})
    except Exception as exc:
        # A full disk that failed a step usually refuses the run's record too: the step's error is
        # what the user needs (the next run reports this one as interrupted).
        if failure is None or not (is_storage_failure(exc) or isinstance(exc, StorageIOError)):
            raise
    if failure:
        failure.run_result = result  # type: ignore[attr-defined]
        raise failure
    return result


def _repair_online(stores, checked, workspace, run_id, result, listener, failure) -> None:
    """I2: whatever this run published before it failed, the snapshot must reflect it."""
    from engine.store.online import ensure_current

    try:
        repaired = ensure_current(stores, checked.project, workspace, run_id)
    except EngineError:
        if failure is None:
            raise
        return  # the run's own failure is what the user needs to see
    if repaired:
        notice = f"online snapshot: {repaired}"
        result.notices.append(notice)
        listener(RunNotice(notice))


def _positioned(ctx: RunContext, ps: PlannedStep, exc: EngineError) -> EngineError:
    """A run-time error (a SQL or Python transform, a data check) named by its step and placed at
    the spec key that defines it: ``specs/shop.yaml:12:5: feature_groups.orders.sql: …``."""
    from engine.errors import format_path
    from engine.model import objects as m

    smap, payload = ctx.checked.source_map, ps.step.payload
    origin = getattr(payload, "origin", None)
    if smap is None or origin is None or not origin.path or exc.problems:
        return exc
    path = tuple(origin.path)
    transform = getattr(payload, "transform", None)
    if isinstance(transform, m.SqlTransform):
        path += ("sql",)
    elif isinstance(transform, m.PythonTransform):
        path += ("python",)
    where = smap.locate(path, value=True)
    if where is None:
        return exc
    text = exc.message if exc.message.startswith(ps.step.key) else f"{ps.step.key}: {exc.message}"
    positioned = type(exc)(f"{where.file}:{where.line}:{where.column}: {format_path(path)}: {text}")
    positioned.__cause__ = exc.__cause__ or exc
    return positioned


def _run_steps(ctx: RunContext, steps: list[PlannedStep], finish, skip, listener, failures: list[EngineError], blocked: dict[str, str]) -> None:
    """Run steps in plan order. A failed step publishes nothing and its downstream steps are
    skipped ("upstream failed: KEY"); steps that do not depend on it go on running, as dbt's
    build does. A storage failure (a full disk) stops the run: nothing else can succeed.
    ``failures`` and ``blocked`` (step key -> the failed step it waits on) collect across phases."""
    for ps in steps:
        upstream = next((blocked[d] for d in (*ps.step.depends_on, *ps.step.after) if d in blocked), None)
        if upstream is not None:
            blocked[ps.step.key] = upstream
            skip(StepFinished(ps.step.key, StepStatus.SKIPPED, f"upstream failed: {upstream}"))
            continue
        err = _run_step(ctx, ps, finish, listener)
        if err is None:
            continue
        failures.append(err)
        blocked[ps.step.key] = ps.step.key
        if isinstance(err, StorageIOError):
            return


def _run_step(ctx: RunContext, ps: PlannedStep, finish, listener) -> EngineError | None:
    """Run one step; its error (named and positioned), or None."""
    started = time.monotonic()
    listener(StepStarted(ps.step.key, ps.reason.value))
    try:
        outcome = HANDLERS[ps.step.kind](ctx, ps)
        finish(ps, StepStatus.RAN, started, outcome.rows, output=outcome.output, metrics=outcome.metrics, reason=outcome.reason, notes=outcome.notes)
    except StorageIOError as exc:  # raised by a store or the registry with its own wording
        err = exc if "previous state is intact" in exc.message else _step_storage_error(ctx, ps, exc)
        finish(ps, StepStatus.FAILED, started, message=str(err))
        return err
    except (DataError, ExecutionError) as exc:
        # A reader or a statement that failed because the disk did is not the data's or the
        # SQL's fault: exit 74, never 4 blaming the source or 5 blaming the transform.
        err = _step_storage_error(ctx, ps, _storage_cause(exc)) if is_storage_failure(exc) else _positioned(ctx, ps, exc)
        finish(ps, StepStatus.FAILED, started, message=str(err))
        return err
    except EngineError as exc:
        exc = _positioned(ctx, ps, exc)
        finish(ps, StepStatus.FAILED, started, message=str(exc))
        return exc
    except Exception as exc:  # an engine error outside user SQL, e.g. a type error while merging
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if first.endswith("Query interrupted"):  # the backend saw Ctrl-C during a query
            from engine import interrupts

            interrupts.request()
        if is_storage_failure(exc):
            err = _step_storage_error(ctx, ps, _storage_cause(exc))
        else:
            err = ExecutionError(f"{ps.step.key}: {type(exc).__name__}: {first}")
        finish(ps, StepStatus.FAILED, started, message=str(err))
        return err
    return None


def _combined(failures: list[EngineError], result: RunResult) -> EngineError:
    """The run's error: the one failure, or every failure in one message (the first one's class
    and exit code), each with what was skipped because of it."""
    skipped: dict[str, list[str]] = {}
    for s in result.steps:
        if s.status is StepStatus.SKIPPED and s.reason.startswith("upstream failed: "):
            skipped.setdefault(s.reason.removeprefix("upstream failed: "), []).append(s.step_id)
    if len(failures) == 1:
        return failures[0]
    lines = [f"{len(failures)} steps failed:"]
    for err, key in zip(failures, [s.step_id for s in result.steps if s.status is StepStatus.FAILED]):
        lines.append(f"  {err.message}")
        if skipped.get(key):
            lines.append(f"    skipped because of it: {', '.join(skipped[key])}")
    first = failures[0]
    combined = type(first)("\n".join(lines))
    combined.__cause__ = first
    return combined


def _storage_message(workspace: Workspace, exc: BaseException) -> str:
    """"writing the workspace <path> failed (<first line of the cause>)"."""
    text = exc.message if isinstance(exc, EngineError) else str(exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"writing the workspace {workspace.root} failed ({first})"


def _storage_cause(exc: BaseException) -> BaseException:
    """The write failure at the root of ``exc``'s chain (the error a full disk first raised)."""
    cause, link, seen = exc, exc, set()
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if is_storage_failure(link):
            cause = link
        link = link.__cause__ or link.__context__
    return cause


def _step_storage_error(ctx: RunContext, ps: PlannedStep, exc: BaseException) -> StorageIOError:
    """G3/G4: a full disk or an I/O error in a step is exit 74, naming the workspace, whatever raised it."""
    err = StorageIOError(
        f"{ps.step.key}: {_storage_message(ctx.workspace, exc)}; nothing of this step was published, "
        "the previous state is intact — free space and apply again"
    )
    err.__cause__ = exc
    return err
