"""Load and check a project, and find its workspace: the first stage of every verb.

Pure: no database, no user code, no network (``engine validate``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from engine.compiler.semantics import CheckedProject, check_project
from engine.errors import Problem, SpecError
from engine.model import objects as m

if TYPE_CHECKING:
    from engine.backends.base import Capabilities
    from engine.spec.sourcemap import SourceMap


def validate(path: str | Path, *, backend: str | None = None) -> CheckedProject:
    """Check a spec without touching any database, user code or network; raise SpecError."""
    from engine.model.builder import build_project
    from engine.model.formats import format_names
    from engine.spec.project_files import load_spec
    from engine.spec.resources import resolve_files
    from engine.spec.schema import validate_document

    spec = load_spec(path)
    problems = validate_document(spec.data, spec.source_map, source_formats=format_names())
    if problems:
        raise SpecError(problems=problems)
    files, path_problems = resolve_files(spec.data, spec.source_map, spec.root)
    try:
        project = build_project(spec.data, spec.source_map, spec.root, spec.files, files)
    except SpecError as exc:
        raise SpecError(problems=path_problems + exc.problems) from None
    if path_problems:
        raise SpecError(problems=path_problems)
    checked = check_project(project, spec.source_map)
    from engine.backends import selected

    name = selected(backend, project.backend.kind)
    missing = capability_problems(project, _capabilities(name), spec.source_map, name)
    if missing:
        raise SpecError(problems=missing)
    return checked


def _capabilities(name: str) -> "Capabilities":
    from engine.backends import capabilities

    return capabilities(name)


def capability_problems(project: m.Project, caps: "Capabilities", smap: "SourceMap", name: str) -> list[Problem]:
    """What the spec needs that the backend cannot do, positioned on the key that needs it (exit 3).

    Checked before anything runs, so a missing capability is a validate error, never a runtime
    surprise (STYLE habit 9). ``caps`` are the chosen backend's flags; nothing is imported or opened.
    """
    problems: list[Problem] = []

    def lacks(path: tuple, what: str, hint: str | None = None) -> None:
        problems.append(smap.problem(path, f"the {name} backend cannot {what}", hint, value=True))

    for source in project.sources.values():
        base = source.origin.path
        if source.format not in caps.source_formats:
            lacks(base + ("format",), f"read '{source.format}' sources", f"use one of: {', '.join(sorted(caps.source_formats))}")
        if source.on_bad_rows == m.BadRows.QUARANTINE and not caps.quarantine_rows:
            lacks(base + ("on_bad_rows",), "quarantine bad rows", "use on_bad_rows: fail")
        if source.csv.null_strings is not None and len(source.csv.null_strings) > caps.csv_null_strings:
            lacks(base + ("csv", "null_strings"), f"read more than {caps.csv_null_strings} null string{'s' if caps.csv_null_strings != 1 else ''} in a CSV source", "keep one, or clean the others in the feature group's SQL (NULLIF)")
    if not caps.python_transforms:
        for fg in project.feature_groups.values():
            if isinstance(fg.transform, m.PythonTransform):
                lacks(fg.origin.path + ("python",), "run Python feature functions")
        for fn in project.functions.values():
            if not fn.builtin:
                lacks(fn.origin.path + ("python",), "run Python on-demand functions")
    return problems


def workspace_of(checked: CheckedProject, override: str | Path | None):
    """The project's workspace (``.engine`` beside the spec, or ``override``)."""
    from engine.spec.project_files import read_marker
    from engine.state.workspace import Workspace

    marker = checked.project.root / "engine.yaml"
    if override is None and marker.is_file():
        override = read_marker(marker).workspace_path  # `workspace:` in the project marker
    return Workspace.for_project(checked.project.root, override)
