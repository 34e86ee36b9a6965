"""Load and check a project, and find its workspace: the first stage of every verb.

Pure: no database, no user code, no network (``engine validate``).
"""

from __future__ import annotations

from pathlib import Path

from engine.compiler.semantics import CheckedProject, check_project
from engine.errors import SpecError


def validate(path: str | Path) -> CheckedProject:
    """Check a spec without touching any database, user code or network; raise SpecError."""
    from engine.model.builder import build_project
    from engine.spec.project_files import load_spec
    from engine.spec.resources import resolve_files
    from engine.spec.schema import validate_document

    spec = load_spec(path)
    problems = validate_document(spec.data, spec.source_map)
    if problems:
        raise SpecError(problems=problems)
    files, path_problems = resolve_files(spec.data, spec.source_map, spec.root)
    try:
        project = build_project(spec.data, spec.source_map, spec.root, spec.files, files)
    except SpecError as exc:
        raise SpecError(problems=path_problems + exc.problems) from None
    if path_problems:
        raise SpecError(problems=path_problems)
    return check_project(project, spec.source_map)


def workspace_of(checked: CheckedProject, override: str | Path | None):
    """The project's workspace (``.engine`` beside the spec, or ``override``)."""
    from engine.state.workspace import Workspace

    return Workspace.for_project(checked.project.root, override)
