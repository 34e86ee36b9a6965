"""Compile a checked project into a DAG of steps and diff it against stored state into a Plan.

Owns step construction, selection and reasons; must not open connections (the stored
fingerprints are passed in).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from engine.compiler.fingerprint import (
    content_matches,
    definition_fingerprint,
    digest,
    file_sha256,
    files_fingerprint,
    prefetch_digests,
    python_package_fingerprint,
    recorded_before_blake3,
)
from engine.compiler.semantics import CheckedProject
from engine.compiler.steps import Action, Plan, PlannedStep, Reason, Step, StepKind
from engine.errors import UsageError
from engine.ids import ModelRef
from engine.model import objects as m
from engine.model.graph import topological_order

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


@dataclass(frozen=True)
class StoredStep:
    """What the workspace remembers of a step's last successful run."""

    definition_fingerprint: str
    fingerprint: str


def compile_steps(checked: CheckedProject, *, now: datetime | None = None, content: "Callable[[Path], str] | None" = None) -> dict[str, Step]:
    """All steps of the project, keyed by ``kind:name@version``, in dependency order. ``now``: the
    time a relative batch range (``range: {last: 30d}``) is resolved at (default: the clock).
    ``content``: the digest of a source file in the sources' fingerprints (default: today's,
    ``file_digest``; ``_upgraded`` passes SHA-256, as engines before BLAKE3 recorded them)."""
    project = checked.project
    steps: dict[str, Step] = {}
    key_of: dict[str, str] = {}
    if content is None:
        prefetch_digests(path for source in project.sources.values() for path in source.resolved_paths)
    for name, source in project.sources.items():
        step = Step(
            id=source.id,
            kind=StepKind.INGEST_SOURCE,
            depends_on=(),
            definition_fingerprint=definition_fingerprint(source),
            fingerprint=digest(definition_fingerprint(source), files_fingerprint(project.root, source.resolved_paths, content)),
            payload=source,
        )
        steps[step.key] = step
        key_of[name] = step.key
    for name in checked.order:
        fg = project.feature_groups[name]
        deps = tuple(key_of[i] for i in fg.inputs if i in key_of)
        definition = definition_fingerprint(fg)
        code = python_package_fingerprint(project.root, fg.transform.module, fg.transform.function) if isinstance(fg.transform, m.PythonTransform) else ""
        step = Step(
            id=fg.id,
            kind=StepKind.BUILD_FEATURE_GROUP,
            depends_on=deps,
            definition_fingerprint=digest(definition, code),
            fingerprint=digest(definition, code, [steps[d].fingerprint for d in deps]),
            payload=fg,
        )
        steps[step.key] = step
        key_of[name] = step.key
    view_key: dict[str, str] = {}
    for name, fv in sorted(project.feature_views.items()):
        functions = [project.functions[f] for f in fv.on_demand if f in project.functions]
        # a built-in function reads its group's stored edges or fit: the view depends on the group
        needed = [fv.spine, *(j.feature_group for j in fv.joins), *(f.builtin[1] for f in functions if f.builtin)]
        deps = tuple(dict.fromkeys(key_of[n] for n in needed if n in key_of))
        code = digest([python_package_fingerprint(project.root, f.module, f.function) for f in functions if not f.builtin])
        definition = digest(definition_fingerprint(fv), [definition_fingerprint(f) for f in functions], code)
        step = Step(fv.id, StepKind.BUILD_FEATURE_VIEW, deps, definition, digest(definition, [steps[d].fingerprint for d in deps]), payload=fv)
        steps[step.key] = step
        view_key[name] = step.key
    for name, model in sorted(project.models.items()):
        if model.feature_view not in view_key:
            continue
        dep = view_key[model.feature_view]
        definition = definition_fingerprint(model)
        step = Step(model.id, StepKind.TRAIN_MODEL, (dep,), definition, digest(definition, steps[dep].fingerprint), payload=model)
        steps[step.key] = step
    for name, job in sorted(project.inference.items()):
        match job.mode:
            case m.InferenceMode.BATCH:
                kind = StepKind.SCORE_BATCH
            case m.InferenceMode.STREAM:
                kind = StepKind.SCORE_STREAM
            case m.InferenceMode.ONLINE:
                continue  # online jobs are served, not applied
        model = project.models.get(ModelRef.parse(job.model).name)
        if model is None or model.feature_view not in view_key:
            continue
        # Scoring reads the feature view's data and whatever model version the registry resolves:
        # it runs after training in a full apply, but selecting a job never retrains its model.
        model_key, fv_key = str(model.id), view_key[model.feature_view]
        definition = definition_fingerprint(job)
        window = None
        if kind is StepKind.SCORE_BATCH and job.range_last is not None:
            from engine.model.windows import relative_range

            start, end = relative_range(job.range_last, job.range_last_seconds, now or datetime.now(UTC))
            window = (start.isoformat(), end.isoformat())
        step = Step(
            job.id, kind, (fv_key,), definition, digest(definition, steps[fv_key].fingerprint, steps[model_key].fingerprint, *(window or ())),
            after=(model_key,), payload=job, view_fingerprint=steps[fv_key].fingerprint, window=window,
        )
        steps[step.key] = step
    return steps


def file_changes(root, source: m.Source, consumed: dict[str, str]) -> tuple[list[str], list[str]]:
    """(new files, changed or removed files) of ``source`` against the files its lake table holds
    (``consumed``: relative path -> content digest). Paths are relative to the project root."""
    base = root.resolve()
    current = {str(p.relative_to(base)): p for p in source.resolved_paths}
    changed = sorted(f for f, d in consumed.items() if f not in current or not content_matches(current[f], d))
    added = sorted(f for f in current if f not in consumed)
    return added, changed


def make_plan(
    checked: CheckedProject,
    stored: dict[str, StoredStep],
    *,
    select: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    force: bool = False,
    full_refresh: bool = False,
    consumed: dict[str, dict[str, str]] | None = None,
    backfill: tuple[str, str] | None = None,
    now: datetime | None = None,
) -> Plan:
    """Diff the compiled steps against what the workspace stored; every step gets a reason.

    ``consumed`` (source -> {relative path: digest} of the files its lake table holds) lets an
    ingest whose consumed files are all unchanged, with new files beside them, run as
    ``new data (incremental)``, and so the incremental feature groups reading only such sources.
    ``full_refresh`` rebuilds the selected sources and feature groups from scratch.

    ``select`` and ``exclude`` take selectors (``engine.compiler.selection``). An excluded step
    does not run; a step that reads one which has changes (or was never built) does not run
    either ("upstream excluded"), so nothing is built from inputs the run left stale and recorded
    as up to date."""
    from engine.compiler.selection import excluded_steps, object_graph, select_steps

    steps = compile_steps(checked, now=now)
    stored, recorded_as = _upgraded(checked, steps, stored, consumed or {}, now)
    graph = object_graph(checked.project, steps)
    chosen = select_steps(graph, select)
    excluded = excluded_steps(graph, exclude)
    order = topological_order({k: (*s.depends_on, *(a for a in s.after if a in chosen)) for k, s in steps.items()})
    planned: dict[str, PlannedStep] = {}
    held: set[str] = set()  # excluded steps with work to do, and the steps downstream of them
    for key in order:
        if key not in chosen:
            continue
        step = steps[key]
        if backfill is not None and step.kind is StepKind.SCORE_BATCH:
            planned[key] = PlannedStep(dataclasses.replace(step, window=backfill), Action.RUN, Reason.BACKFILL)
            continue
        if any(d in held for d in step.depends_on):
            held.add(key)
            planned[key] = PlannedStep(step, Action.SKIP, Reason.UPSTREAM_EXCLUDED)
            continue
        previous = stored.get(key)
        upstream_runs = any(planned[d].action is Action.RUN for d in step.depends_on if d in planned)
        if full_refresh and step.kind in (StepKind.INGEST_SOURCE, StepKind.BUILD_FEATURE_GROUP):
            action, reason = Action.RUN, Reason.FULL_REFRESH
        elif force:
            action, reason = Action.RUN, Reason.FORCED
        elif previous is None:
            action, reason = Action.RUN, Reason.NEW
        elif previous.definition_fingerprint != step.definition_fingerprint:
            action, reason = Action.RUN, Reason.CHANGED
        elif upstream_runs:
            action, reason = Action.RUN, _upstream_reason(step, planned)
        elif previous.fingerprint != step.fingerprint and step.window is not None and not upstream_runs:
            action, reason = Action.RUN, Reason.RANGE_MOVED
        elif previous.fingerprint != step.fingerprint:
            if step.kind is StepKind.INGEST_SOURCE:
                action, reason = Action.RUN, _ingest_reason(checked.project.root, step.payload, (consumed or {}).get(step.id.name))
            else:
                action, reason = Action.RUN, Reason.UPSTREAM_CHANGED
        else:
            action, reason = Action.SKIP, Reason.UNCHANGED
        if key in excluded and action is Action.RUN:
            held.add(key)
            action, reason = Action.SKIP, Reason.EXCLUDED
        view = step.depends_on[0] if step.view_fingerprint is not None else None
        if view in recorded_as and not (view in planned and planned[view].action is Action.RUN):
            # the published view table records the fingerprint an engine before BLAKE3 gave it
            step = dataclasses.replace(step, view_fingerprint=recorded_as[view])
        planned[key] = PlannedStep(step, action, reason)
    if backfill is not None and not any(p.reason is Reason.BACKFILL for p in planned.values()):
        raise UsageError("--start/--end backfill batch jobs, and no batch job is selected: add --select JOB")
    return Plan(project=checked.project.name, steps=tuple(planned.values()))


def _upgraded(
    checked: CheckedProject, steps: dict[str, Step], stored: dict[str, StoredStep], consumed: dict[str, dict[str, str]], now: datetime | None
) -> tuple[dict[str, StoredStep], dict[str, str]]:
    """``stored``, with the fingerprints an engine from before BLAKE3 content digests recorded read
    as today's wherever they describe the same inputs; and those steps' recorded fingerprints
    (a scoring step proves a published view current by the one its table records).

    A source's fingerprint hashes its files' digests, and every step downstream hashes its inputs'
    fingerprints: after the upgrade each of them would differ although nothing changed, and the
    first apply would re-ingest and rebuild everything. So when a source whose consumed files were
    recorded as SHA-256 has another fingerprint today, the steps are compiled again with SHA-256
    file digests (read once per file and stat: the digest cache keeps them), and a stored
    fingerprint equal to that one stands for today's. A step that runs records today's. Later,
    only a plan in which such a source has changed compiles twice (its old files keep their SHA-256
    records until a full re-ingest; the digest cache has their SHA-256 by then)."""
    if not any(
        step.kind is StepKind.INGEST_SOURCE and key in stored and stored[key].fingerprint != step.fingerprint
        and any(recorded_before_blake3(d) for d in consumed.get(step.id.name, {}).values())
        for key, step in steps.items()
    ):  # fmt: skip
        return stored, {}
    legacy = compile_steps(checked, now=now, content=file_sha256)
    recorded_as = {
        key: previous.fingerprint for key, previous in stored.items()
        if key in steps and key in legacy and previous.fingerprint == legacy[key].fingerprint != steps[key].fingerprint
    }  # fmt: skip
    upgraded = {key: dataclasses.replace(previous, fingerprint=steps[key].fingerprint) if key in recorded_as else previous for key, previous in stored.items()}
    return upgraded, recorded_as


def _ingest_reason(root, source: m.Source, consumed: dict[str, str] | None) -> Reason:
    """New files beside unchanged consumed ones: an incremental (append) ingest; else a full one."""
    if not consumed:
        return Reason.DATA_CHANGED
    added, changed = file_changes(root, source, consumed)
    return Reason.NEW_DATA if added and not changed else Reason.DATA_CHANGED


def _upstream_reason(step: Step, planned: dict[str, PlannedStep]) -> Reason:
    """An incremental feature group whose running inputs are all sources ingesting only new files
    processes just those rows; anything else downstream of a change rebuilds."""
    running = [planned[d] for d in step.depends_on if d in planned and planned[d].action is Action.RUN]
    if (
        step.kind is StepKind.BUILD_FEATURE_GROUP
        and step.payload is not None
        and step.payload.incremental_mode is not None
        and running
        and all(p.step.kind is StepKind.INGEST_SOURCE and p.reason is Reason.NEW_DATA for p in running)
    ):
        return Reason.NEW_DATA
    return Reason.UPSTREAM_CHANGED
