"""The Python API: one short function per CLI verb, each reading as its pipeline sentence.

load -> schema check -> typed model -> semantic check -> compile (DAG) -> plan -> execute.
The CLI only parses arguments and prints what these return.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.compiler.semantics import CheckedProject
from engine.compiler.steps import Plan
from engine.errors import UsageError
from engine.runtime.events import Listener, RunResult, ignore

if TYPE_CHECKING:
    from engine.runtime.context import RunOptions

from engine.project import validate, workspace_of  # noqa: E402  (the first stage of every verb)

# The read side (engine.inspect), re-exported so ``api`` stays the one Python entry point.
from engine.inspect import (  # noqa: E402
    check,
    compare_models,
    gc,
    list_feature_groups,
    list_models,
    read_feature_group,
    read_feature_view,
    read_predictions,
    read_rejects,
    read_training_data,
    show_feature_group,
    show_model,
    show_predictions,
)


def plan(
    path: str | Path, *, workspace: str | Path | None = None, select: tuple[str, ...] = (), exclude: tuple[str, ...] = (), force: bool = False, full_refresh: bool = False,
    backfill: tuple[str, str] | None = None, env: str | None = None,
) -> Plan:
    """What ``apply`` would do, diffed against the workspace's stored state (``env``: an
    environment's, see ``apply``)."""
    from engine.compiler.planner import make_plan

    from engine.state.digests import digests

    checked = validate(path, prefetch=workspace is None and env is None)
    ws = workspace_of(checked, workspace)
    if env is not None:  # against the environment, or against prod where apply --env would (re)clone it
        from engine.runtime.environments import env_workspace, read_record, state_token

        candidate = env_workspace(ws, env)
        record = read_record(candidate)
        if record is not None and record.get("base") == state_token(ws.catalog):
            ws = candidate
    steps, consumed = _stored_state(ws)
    with digests(ws):
        _, the_plan = _auto_versioned(path, checked, ws, lambda c: make_plan(c, steps, select=select, exclude=exclude, force=force, full_refresh=full_refresh, consumed=consumed, backfill=_backfill(backfill)))
    return the_plan


def _auto_versioned(path, checked: CheckedProject, ws, make) -> tuple[CheckedProject, Plan]:
    """The checked plan of ``make(checked)``; under ``versioning: auto``, each version bump it
    would need is taken instead of refused: the object gets the next version number (above every
    version the workspace published of it), and the project is planned again at those versions.
    Returns the project as planned (with ``Plan.versions`` naming the bumps)."""
    import dataclasses

    the_plan = _checked_plan(checked, ws, make(checked))
    if checked.project.versioning != "auto" or not the_plan.blocked:
        return checked, the_plan
    from engine.session import catalog_reading
    from engine.state import metadata

    with catalog_reading(ws) as catalog:
        published = {("feature_group", v.name): v.version for v in metadata.all_feature_group_versions(catalog)}
        for row in metadata.feature_view_versions(catalog):
            key = ("feature_view", row["name"])
            published[key] = max(published.get(key, 0), int(row["version"]))
    bumps: dict[tuple[str, str], int] = {}
    notes = []
    for reason in the_plan.blocked:
        kind, _, rest = reason.split(": ", 1)[0].partition(":")
        name, _, version = rest.rpartition("@")
        new = max(int(version), published.get((kind, name), 0)) + 1
        bumps[(kind, name)] = new
        notes.append(f"{kind}:{name}@{version} -> @{new}: {reason.split(': ', 1)[1].split('. Bump ', 1)[0]}")
    current = {("feature_group", n): g.version for n, g in checked.project.feature_groups.items()}
    current |= {("feature_view", n): v.version for n, v in checked.project.feature_views.items()}
    checked = validate(path, versions={**current, **bumps})
    the_plan = _checked_plan(checked, ws, make(checked))
    return checked, dataclasses.replace(the_plan, versions=tuple(notes))


def _checked_plan(checked: CheckedProject, ws, the_plan):
    """``the_plan`` with what the workspace tells about it: its change report, the feature
    libraries that changed, and every version bump it needs (apply refuses while any is missing)."""
    return _with_bumps(checked, ws, _with_libraries(checked, ws, _with_changes(checked, ws, the_plan)))


def _with_changes(checked: CheckedProject, ws, the_plan):
    """``the_plan`` with its change report: what changed in each object since it last ran
    (``engine.compiler.changes``), read from the definitions the workspace recorded."""
    import dataclasses

    if not ws.exists():
        return the_plan
    from engine.compiler.changes import change_report
    from engine.session import catalog_reading
    from engine.state.metadata import stored_definitions

    with catalog_reading(ws) as catalog:
        stored = stored_definitions(catalog)
    report = change_report(the_plan, checked, stored) if stored else ()
    return dataclasses.replace(the_plan, changes=report) if report else the_plan


def _library_versions(checked: CheckedProject) -> dict[str, str]:
    """The installed version of each declared feature library (validate checked they are)."""
    from engine.compiler.libraries import LibraryError, installed

    out = {}
    for req in checked.project.requires:
        try:
            found = installed(req.package)
        except LibraryError:
            found = None
        if found is not None:
            out[found.name] = found.version
    return out


def _with_libraries(checked: CheckedProject, ws, the_plan):
    """``the_plan`` naming each declared library installed at another version than at the last
    successful apply (what uses it is planned as changed: its version is in the fingerprints)."""
    import dataclasses

    if not ws.exists():
        return the_plan
    before = ws.read_libraries()
    changed = tuple(f"{name} {before[name]} -> {version}" for name, version in sorted(_library_versions(checked).items()) if name in before and before[name] != version)
    return dataclasses.replace(the_plan, libraries=changed) if changed else the_plan


def lineage(path: str | Path, name: str | None = None):
    """What ``name`` is built from and what is built from it (the whole DAG when None). Pure."""
    from engine.compiler.lineage import lineage as trace
    from engine.compiler.planner import compile_steps
    from engine.compiler.selection import object_graph

    checked = validate(path)
    return trace(object_graph(checked.project, compile_steps(checked)), name)


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    run: RunResult | None  # None when there was nothing to do


def apply(
    path: str | Path,
    *,
    workspace: str | Path | None = None,
    select: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    force: bool = False,
    full_refresh: bool = False,
    backfill: tuple[str, str] | None = None,
    options: "RunOptions | None" = None,
    lock_timeout_s: float = 0.0,
    listener: Listener = ignore,
    env: str | None = None,
) -> ApplyResult:
    """Validate, plan and execute under the project lock. Unchanged spec and data: runs nothing.

    ``full_refresh``: re-ingest the selected sources and rebuild the selected feature groups from
    their full inputs (incremental groups included), as on a fresh workspace. ``env``: apply into
    that environment instead, cloned from the default one (``engine.runtime.environments``): only
    what differs from it is built, and job files go under the environment."""
    from engine.compiler.planner import make_plan
    from engine.runtime.events import PlanMade
    from engine.runtime.executor import RunOptions, execute, new_run_id
    from engine.state.workspace import ProjectLock

    from engine.state.digests import digests

    checked = validate(path, prefetch=workspace is None and env is None)  # the same digest cache as ws's
    ws = workspace_of(checked, workspace)
    note = None
    if env is not None:
        import dataclasses

        from engine.runtime.environments import OUTPUTS, check_name, ensure

        _refuse_shared_registry(checked, check_name(env))
        ws, note = ensure(ws, env, lock_timeout_s=lock_timeout_s)
        if note:
            from engine.runtime.events import RunNotice

            listener(RunNotice(note))
        options = dataclasses.replace(options or RunOptions(), output_root=ws.root / OUTPUTS)
    with ProjectLock(ws, timeout_s=lock_timeout_s), digests(ws):
        steps, consumed = _stored_state(ws)
        checked, the_plan = _auto_versioned(path, checked, ws, lambda c: make_plan(c, steps, select=select, exclude=exclude, force=force, full_refresh=full_refresh, consumed=consumed, backfill=_backfill(backfill)))
        if the_plan.versions and not the_plan.blocked:
            from engine.project import write_versions
            from engine.runtime.events import RunNotice

            write_versions(checked.project.root, checked.project)  # what the spec's objects now are, for every later verb
            for line in the_plan.versions:
                listener(RunNotice(f"versioning: auto: new version {line}"))
        if the_plan.blocked:
            from engine.errors import PlanError

            raise PlanError("\n".join(the_plan.blocked) + f"\n{len(the_plan.blocked)} breaking change{'s' if len(the_plan.blocked) != 1 else ''}: nothing was run")
        listener(PlanMade(the_plan))
        if not the_plan.has_changes:
            _repair_online_snapshot(checked, ws, listener)
            _record_libraries(checked, ws, bool(select or exclude))
            return ApplyResult(the_plan, None)
        run = execute(the_plan, checked, ws, run_id=new_run_id(), options=options or RunOptions(), listener=listener)
        run.notices[:0] = ([note] if note else []) + [f"versioning: auto: new version {line}" for line in the_plan.versions]
        _record_libraries(checked, ws, bool(select or exclude), run)
    return ApplyResult(the_plan, run)


def _record_libraries(checked: CheckedProject, ws, selected: bool, run=None) -> None:
    """After an apply of the whole project in which nothing failed, the declared libraries'
    versions are what its outputs were built with (what a later plan compares against). A
    selection records nothing: what it left out may still be built with the old version."""
    from engine.runtime.events import StepStatus

    if selected or (run is not None and any(s.status is StepStatus.FAILED for s in run.steps)):
        return
    if checked.project.requires or ws.libraries_file.exists():
        ws.write_libraries(_library_versions(checked))


def _refuse_shared_registry(checked: CheckedProject, env: str) -> None:
    """Environments isolate what the workspace holds; a registry outside it (MLflow) is shared,
    so a model trained in one would be registered (and its aliases moved) for every one."""
    if checked.project.registry.kind != "local":
        raise UsageError(f"--env {env}: environments need the local model registry; this project registers models in {checked.project.registry.kind}, which every environment shares")


def promote(path: str | Path, env: str, *, workspace: str | Path | None = None, lock_timeout_s: float = 0.0):
    """Make the default environment's state ``env``'s, without running a step (nothing is
    recomputed); refused (PlanError, nothing switched) when prod published since ``env`` was
    cloned, or when ``env`` does not reflect the project on disk. Returns the ``Promotion``."""
    from engine.compiler.planner import make_plan
    from engine.compiler.steps import Action, Reason
    from engine.runtime.environments import check_name, check_promotable, env_workspace, promote as switch, read_record, state_token, table_versions, write_record
    from engine.runtime.executor import new_run_id
    from engine.session import writing
    from engine.state.digests import digests
    from engine.state.workspace import ProjectLock
    from engine.store.online import publish_online_snapshot

    checked = validate(path)
    prod = workspace_of(checked, workspace)
    target = env_workspace(prod, check_name(env))
    if read_record(target) is None:
        raise UsageError(f"no environment '{env}': create it with `engine apply --env {env}`")
    with ProjectLock(prod, timeout_s=lock_timeout_s), ProjectLock(target, timeout_s=lock_timeout_s):
        steps, consumed = _stored_state(target)
        with digests(target):
            the_plan = make_plan(checked, steps, consumed=consumed)
        pending = [ps.step.key for ps in the_plan.steps if ps.action is Action.RUN and ps.reason is not Reason.RANGE_MOVED]
        record = check_promotable(prod, target, env, pending)
        result = switch(prod, target, env, record, checked.project)
        with writing(prod, project=checked.project) as stores:
            result.snapshot = publish_online_snapshot(stores, checked.project, prod, new_run_id()).name
        # prod now is the environment: it is no longer behind, and has changed nothing since
        write_record(target, {**record, "base": state_token(prod.catalog), "base_tables": table_versions(target.catalog)})
    return result


def diff(path: str | Path, a: str, b: str = "prod", *, workspace: str | Path | None = None) -> dict:
    """Two environments compared object by object (``prod``: the default one): rows, columns,
    statistics, model metrics and aliases. Reads only; UsageError for an environment not created."""
    from engine.runtime.environments import diff as compare_envs, env_workspace

    checked = validate(path)
    ws = workspace_of(checked, workspace)
    sides = []
    for name in (a, b):
        side = env_workspace(ws, name)
        if not side.catalog.is_file():
            raise UsageError(f"no environment '{name}' with anything applied: `engine apply{'' if name == 'prod' else ' --env ' + name}` first")
        sides.append(side)
    return compare_envs(sides[0], sides[1], (a, b))


def _with_bumps(checked: CheckedProject, ws, the_plan):
    """``the_plan`` with every version bump it needs, found in one pass: a feature group whose
    output loses a column or changes its keys (``store.offline.required_bumps``), and a breaking
    change to a group or view version a model version was trained on (``frozen_conflicts``)."""
    import dataclasses

    from engine.compiler.steps import Action, StepKind

    if not ws.exists() or not the_plan.has_changes:
        return the_plan
    from engine.compiler.changes import frozen_conflicts
    from engine.session import catalog_reading
    from engine.state.usage import versions_in_use
    from engine.store.offline import required_bumps

    groups = [ps.step.payload for ps in the_plan.steps if ps.action is Action.RUN and ps.step.kind is StepKind.BUILD_FEATURE_GROUP]
    with catalog_reading(ws) as catalog:
        blocked = required_bumps(catalog, groups, checked.columns) if groups else []
        in_use = versions_in_use(catalog) if the_plan.changes or blocked else {}
    if in_use:
        running = {ps.step.key for ps in the_plan.steps if ps.action is Action.RUN}  # a step left out of a selection changes nothing
        changes = tuple(c for c in the_plan.changes if c.object.split(" (from ", 1)[0] in running)
        blocked += frozen_conflicts(changes, checked, in_use, tuple(b.split(": ", 1)[0] for b in blocked))
    return dataclasses.replace(the_plan, blocked=tuple(blocked)) if blocked else the_plan


def _backfill(window: tuple[str, str] | None) -> tuple[str, str] | None:
    """``(start, end)`` as UTC ISO times; UsageError (exit 2) for a bound that is not a time or
    an empty range."""
    if window is None:
        return None
    from engine.model.catalogue import parse_utc

    try:
        start, end = parse_utc(window[0]), parse_utc(window[1])
    except ValueError as exc:
        raise UsageError(f"--start/--end: {exc}") from None
    if not start < end:
        raise UsageError(f"--start ({window[0]}) must be before --end ({window[1]})")
    return start.isoformat(), end.isoformat()


def _repair_online_snapshot(checked: CheckedProject, ws, listener: Listener) -> None:
    """I2 on "No changes.": an interrupted publication left the snapshot stale; republish it."""
    if not ws.exists():
        return
    from engine.runtime.events import RunNotice
    from engine.runtime.executor import new_run_id
    from engine.session import reading
    from engine.store.online import ensure_current

    with reading(ws, project=checked.project) as stores:  # the caller holds the project lock: nothing else writes
        repaired = ensure_current(stores, checked.project, ws, new_run_id())
    if repaired:
        listener(RunNotice(f"online snapshot: {repaired}"))


def online_state(path: str | Path, *, workspace: str | Path | None = None, allow_code_drift: bool = False):
    """The online path as ``engine serve`` loads it: the current snapshot and the online jobs' models
    (PlanError when a model was trained with other on-demand function code than is on disk, unless
    ``allow_code_drift``)."""
    from engine.serving.online import load_state
    from engine.store.online import online_dir, read_current

    checked = validate(path)
    ws = workspace_of(checked, workspace)
    _, directory = read_current(online_dir(ws))
    return load_state(checked.project, ws.root, directory, allow_code_drift=allow_code_drift)


def feature_vectors(path: str | Path, feature_view: str, rows: list[dict], *, workspace: str | Path | None = None, state=None) -> dict:
    """Online feature vectors for entity keys and request values: the latest row per joined
    feature group and the on-demand features, computed by the same functions as offline (the code
    on disk: no model is involved, so a model's code drift does not stop a vector)."""
    state = state or online_state(path, workspace=workspace, allow_code_drift=True)
    return _online_call(lambda: state.vector(feature_view, rows))


def predict_online(path: str | Path, job: str, rows: list[dict], *, workspace: str | Path | None = None, state=None, from_text: bool = False, allow_code_drift: bool = False) -> dict:
    """Predictions of an online inference job for rows of keys and request values (no HTTP).

    ``from_text``: values are strings to parse (rows read from CSV)."""
    from engine.serving.online import MAX_ROWS

    state = state or online_state(path, workspace=workspace, allow_code_drift=allow_code_drift)

    def run() -> dict:
        endpoint = state.job(job)
        result = None
        for start in range(0, max(len(rows), 1), MAX_ROWS):  # the HTTP row cap, per batch
            part = state.predict(endpoint, rows[start : start + MAX_ROWS], from_text=from_text)
            if result is None:
                result = part
            else:
                result["predictions"] += part["predictions"]
        return {**result, "job": job}

    return _online_call(run)


def _online_call(fn):
    """Run ``fn``; a refused request (RequestError) is re-raised with its field errors in the
    message: UsageError for 404 and 409 (exit 2), DataError for bad rows (exit 4)."""
    from engine.errors import DataError, RequestError

    try:
        return fn()
    except RequestError as exc:
        details = "; ".join(f"{e['path']}: {e['message']}" for e in exc.errors)
        error = UsageError if exc.status in (404, 409) else DataError
        raise error(f"{exc.message}{': ' + details if details else ''}") from None


def docs(path: str | Path, out: str | Path | None = None, *, workspace: str | Path | None = None):
    """Write the project's static documentation site (``engine docs``); returns the ``Site``."""
    from engine.docs_site.site import write_site

    return write_site(path, out, workspace=workspace)


def monitor(path: str | Path, name: str, *, since: str | None = None, workspace: str | Path | None = None, lock_timeout_s: float = 10.0):
    """Ingest a monitored job's request log and compare serving with training (``engine monitor``);
    returns the ``Report`` (``report.alerts`` name the thresholds crossed)."""
    from engine.monitor.report import run

    return run(path, name, since=since, workspace=workspace, lock_timeout_s=lock_timeout_s)


def recover(path: str | Path, *, workspace: str | Path | None = None) -> str:
    """Check the workspace opens and bring its tables back to the catalog's last commit: a table
    whose Delta log holds commits the catalog never recorded (a crash between the two, G1/G2) is
    restored to its recorded version. Returns what was done."""
    from engine.session import writing
    from engine.state.workspace import ProjectLock

    checked = validate(path)
    ws = workspace_of(checked, workspace)
    if not ws.exists():
        raise UsageError(f"no workspace at {ws.root}: nothing to recover")
    with ProjectLock(ws), writing(ws, spill=False, project=checked.project) as stores:
        lake = stores.backend.lake
        problems = lake.problems()
        if problems:
            from engine.errors import StorageIOError

            raise StorageIOError("; ".join(problems))
        rewound = lake.rewind()
    if not rewound:
        return "the workspace is consistent: every table is at its recorded commit"
    return f"restored {len(rewound)} table(s) to their recorded commit: {', '.join(str(r) for r in rewound)}"


# --- helpers -----------------------------------------------------------------------------------


def _stored_state(ws) -> tuple[dict, dict[str, dict[str, str]]]:
    """The stored step fingerprints, and the files each source's lake table holds (path -> digest)."""
    if not ws.exists():
        return {}, {}
    from engine.session import catalog_reading
    from engine.state import metadata

    with catalog_reading(ws) as catalog:
        files = metadata.source_files(catalog)
        return metadata.stored_steps(catalog), {s: {f: r.digest for f, r in fs.items()} for s, fs in files.items()}
