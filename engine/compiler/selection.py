"""Selecting objects: the object graph (the compiled steps, plus the objects that are not steps:
functions and online jobs) and the ``--select`` / ``--exclude`` grammar over it, after dbt's:

* ``NAME`` (or ``kind:NAME``, ``NAME@version``): the object, and what it needs to be built;
* ``+NAME``: the same, said explicitly (an object is never built without its inputs);
* ``NAME+``: the object and everything downstream of it;
* ``tag:TAG``: every object carrying the tag (``tag:TAG+``: and what is downstream of them).

A function is selected through the feature views (and what follows them) that compute it; an
online job, which is served rather than applied, through the model and view it serves. Pure: no
connections, no files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from engine.compiler.steps import Step
from engine.errors import UsageError, did_you_mean
from engine.model import objects as m
from engine.model.graph import ancestors


@dataclass(frozen=True)
class ObjectGraph:
    """Every object of a project by key (``kind:name``; versioned kinds as their steps name them):
    what each reads, and its tags. Keys of steps are the steps' keys."""

    reads: Mapping[str, tuple[str, ...]]
    names: Mapping[str, str]  # key -> object name
    tags: Mapping[str, tuple[str, ...]]
    steps: frozenset[str]  # the keys that are steps (what apply can run)
    needs: Mapping[str, tuple[str, ...]]  # step -> the steps it reads (not those it only runs after: scoring never retrains)

    def users(self) -> dict[str, tuple[str, ...]]:
        out: dict[str, list[str]] = {k: [] for k in self.reads}
        for key, deps in self.reads.items():
            for d in deps:
                out.setdefault(d, []).append(key)
        return {k: tuple(sorted(v)) for k, v in out.items()}


def object_graph(project: m.Project, steps: Mapping[str, Step]) -> ObjectGraph:
    """The steps' DAG plus functions (read by the views that compute them) and online jobs (which
    read the model and view they serve)."""
    reads: dict[str, tuple[str, ...]] = {k: tuple(sorted({*s.depends_on, *s.after})) for k, s in steps.items()}
    names = {k: s.id.name for k, s in steps.items()}
    objects: dict[str, object] = {k: s.payload for k, s in steps.items()}
    view_key = {s.id.name: k for k, s in steps.items() if s.id.kind is m.Kind.FEATURE_VIEW}
    for name, fn in sorted(project.functions.items()):
        key = str(fn.id)
        reads[key], names[key], objects[key] = (), name, fn
        for view, vk in view_key.items():
            if name in project.feature_views[view].on_demand:
                reads[vk] = tuple(sorted({*reads[vk], key}))
    for name, job in sorted(project.inference.items()):
        key = str(job.id)
        if key in reads:
            continue
        model = project.models.get(job.model.split("@")[0])
        deps = [str(model.id)] if model is not None and str(model.id) in reads else []
        if model is not None and model.feature_view in view_key:
            deps.append(view_key[model.feature_view])
        reads[key], names[key], objects[key] = tuple(sorted(deps)), name, job
    tags = {k: tuple(getattr(o, "tags", ()) or ()) for k, o in objects.items()}
    needs = {k: tuple(s.depends_on) for k, s in steps.items()}
    return ObjectGraph(reads, names, tags, frozenset(steps), needs)


def _matches(graph: ObjectGraph, selector: str, option: str) -> tuple[set[str], bool]:
    """The objects ``selector`` names (before expansion) and whether it asks for downstream."""
    text = selector.strip()
    downstream = text.endswith("+")
    text = text.strip("+")
    if text.startswith("tag:"):
        tag = text[len("tag:"):]
        found = {k for k, t in graph.tags.items() if tag in t}
        if not found:
            known = sorted({t for ts in graph.tags.values() for t in ts})
            hint = did_you_mean(tag, known)
            raise UsageError(f"{option} {selector}: no object is tagged '{tag}' (tags in the project: {', '.join(known) or 'none'})" + (f" ({hint})" if hint else ""))
        return found, downstream
    kind, _, name = text.rpartition(":")
    name = name.split("@")[0]
    found = {k for k, n in graph.names.items() if n == name and (not kind or k.startswith(kind + ":"))}
    if not found:
        hint = did_you_mean(name, sorted(set(graph.names.values())))
        raise UsageError(
            f"{option}: no object named '{selector}' (a source, feature group, function, feature view, model or inference job; "
            f"or tag:NAME)" + (f" ({hint})" if hint else "")
        )
    return found, downstream


def resolve(graph: ObjectGraph, selectors: Iterable[str], *, option: str = "--select") -> set[str]:
    """The objects the selectors name, with ``+`` expanded downstream (no upstream expansion)."""
    users = graph.users()
    out: set[str] = set()
    for selector in selectors:
        found, downstream = _matches(graph, selector, option)
        out |= ancestors(users, found) if downstream else found  # reachable along "read by" edges: downstream
    return out


def select_steps(graph: ObjectGraph, select: tuple[str, ...]) -> set[str]:
    """The step keys to plan: the selected objects' steps and everything they need. A function
    stands for the views computing it, an online job for what it serves."""
    if not select:
        return set(graph.steps)
    named = resolve(graph, select)
    users = graph.users()
    roots: set[str] = set()
    for key in named:
        if key in graph.steps:
            roots.add(key)
        elif key.startswith("function:"):
            roots |= {u for u in users.get(key, ()) if u in graph.steps}
        else:  # an online job: what it serves
            roots |= {d for d in graph.reads.get(key, ()) if d in graph.steps}
    return ancestors(graph.needs, roots)


def excluded_steps(graph: ObjectGraph, exclude: tuple[str, ...]) -> set[str]:
    """The step keys ``--exclude`` names (``NAME+``: and everything downstream)."""
    return {k for k in resolve(graph, exclude, option="--exclude") if k in graph.steps} if exclude else set()
