"""Render a Plan as text (the same object the executor reads). Owns formatting only."""

from __future__ import annotations

from engine.compiler.steps import Action, Plan

_SYMBOL = {Action.RUN: "+", Action.SKIP: " "}


def render_plan(plan: Plan) -> str:
    """Plain-text plan: one line per step, then a summary line.

    The golden files in ``tests/golden/plan`` pin this format.
    """
    if not plan.steps:
        return "Nothing selected.\n"
    width = max(len(s.step.key) for s in plan.steps)
    lines = [f"Plan for project '{plan.project}':"]
    for s in plan.steps:
        window = f"  [{s.step.window[0]}, {s.step.window[1]})" if s.step.window is not None else ""
        lines.append(f"  {_SYMBOL[s.action]} {s.step.key:<{width}}  {s.action.value:<4}  ({s.reason.value}){window}")
    n = len(plan.to_run)
    lines.append("No changes." if n == 0 else f"{n} of {len(plan.steps)} steps to run.")
    if plan.changes:
        lines.append(f"Changes since the last apply ({len(plan.changes)}):")
        for c in plan.changes:
            lines.append(f"  {c.object}  [{c.classification}]")
            lines += [f"      {line}" for line in c.lines()]
    if plan.libraries:
        lines.append("Feature libraries changed since the last apply (what uses them is 'changed'):")
        lines += [f"  ~ {b}" for b in plan.libraries]
    if plan.versions:
        lines.append(f"New versions (versioning: auto, recorded in engine-versions.json) ({len(plan.versions)}):")
        lines += [f"  + {v}" for v in plan.versions]
    if plan.blocked:
        lines.append(f"Breaking changes ({len(plan.blocked)}): apply refuses until each is resolved:")
        lines += [f"  ! {b}" for b in plan.blocked]
    return "\n".join(lines) + "\n"
