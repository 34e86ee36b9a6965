"""Older feature-view versions, read back for the model versions trained on them.

A published version never changes meaning and stays servable while a model version uses it
(DESIGN §3, Versions). Once the spec declares a newer view, the older one is no longer in the
spec: its definition, the definitions of its on-demand functions and the group versions it read
come from the document recorded when it was built (``_engine.step_definitions``, ``joined``).
Online, the snapshot carries the same document (``engine.store.online``); batch and stream scoring
read it here and build the view as training built it, over those group versions' offline tables.
"""

from __future__ import annotations

import dataclasses

from engine.errors import PlanError
from engine.model import objects as m


def archived_view(catalog, project: m.Project, name: str, version: int) -> tuple[m.FeatureView, m.Project] | None:
    """``(the view version, the project as it read it)``: the project with the view's recorded
    on-demand functions and each group it read at the version it read. None when the workspace
    recorded no definition of it (built before the engine kept one). PlanError when it cannot be
    rebuilt: a group version it read was collected, or a group the spec no longer declares."""
    from engine.compiler.fingerprint import from_canonical
    from engine.state import metadata

    key = f"feature_view:{name}@{version}"
    doc = metadata.stored_definitions(catalog).get(key) or {}
    if doc.get("joined") is None or doc.get("definition") is None:
        return None
    try:
        fv = from_canonical(doc["definition"])
        functions = {n: from_canonical(f) for n, f in (doc.get("functions") or {}).items()}
    except (TypeError, ValueError) as exc:
        raise PlanError(f"{key}: its recorded definition is unreadable ({exc})") from None
    if not isinstance(fv, m.FeatureView) or not all(isinstance(f, m.Function) for f in functions.values()):
        raise PlanError(f"{key}: its recorded definition is not a feature view's")
    groups = dict(project.feature_groups)
    for group, group_version in doc["joined"].items():
        current = project.feature_groups.get(group)
        stored = metadata.feature_group_version(catalog, group, int(group_version))
        if current is None or stored is None:
            why = "the spec no longer declares that group" if current is None else "that version is no longer stored"
            raise PlanError(f"{key} read feature_group:{group}@{group_version}, and {why}: it cannot be rebuilt")
        groups[group] = dataclasses.replace(current, version=int(group_version), primary_key=tuple(stored.primary_key), event_time=stored.event_time)
    return fv, dataclasses.replace(project, feature_groups=groups, functions={**project.functions, **functions})


__all__ = ["archived_view"]
