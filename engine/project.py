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


VERSIONS_FILE = "engine-versions.json"


def validate(
    path: str | Path, *, backend: str | None = None, versions: dict[tuple[str, str], int] | None = None, prefetch: bool = False
) -> CheckedProject:
    """Check a spec without touching any database, user code or network; raise SpecError.

    With ``versioning: auto``, each group and view takes the version recorded for it in
    ``engine-versions.json`` beside ``engine.yaml`` (never lower than the one declared);
    ``versions`` ((kind, name) -> version) overrides that file, for a plan that bumps.
    ``prefetch``: the caller plans next (``plan``, ``apply``), so the content digests of the source
    files the workspace's digest cache lacks start in the background once the files are resolved,
    while the rest of the spec is checked, and the plan waits only for what is left."""
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
    if project.versioning == "auto":
        project = with_versions(project, {**read_versions(project.root), **(versions or {})})
    from engine.state.digests import digests

    with digests(_workspace(project.root, None), save_after=False) as cache:  # Parquet schemas read before
        if prefetch:
            cache.prefetch((p for source in project.sources.values() for p in source.resolved_paths), wait=False)
        checked = check_project(project, spec.source_map)
    from engine.backends import selected

    name = selected(backend, project.backend.kind)
    missing = capability_problems(project, _capabilities(name), spec.source_map, name)
    if missing:
        raise SpecError(problems=missing)
    return checked


def read_versions(root: Path) -> dict[tuple[str, str], int]:
    """``engine-versions.json`` of a ``versioning: auto`` project: (kind, name) -> version, where
    kind is feature_group or feature_view; {} when there is none. SpecError (exit 3), positioned,
    when it cannot be read."""
    import json

    path = Path(root) / VERSIONS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SpecError(problems=[Problem(str(path), 0, 0, (), f"cannot read it: {exc.strerror or exc}")]) from None
    hint = "it is written by `engine apply` under versioning: auto; restore it from version control, or delete it to start again from the declared versions"
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SpecError(problems=[Problem(str(path), getattr(exc, "lineno", 1), getattr(exc, "colno", 1), (), f"not valid JSON: {getattr(exc, 'msg', exc)}", hint)]) from None
    out: dict[tuple[str, str], int] = {}
    problems = []
    for kind in ("feature_groups", "feature_views"):
        section = data.get(kind, {}) if isinstance(data, dict) else None
        if not isinstance(section, dict):
            problems.append(Problem(str(path), 1, 1, (kind,), "expected an object of name: version", hint))
            continue
        for name, version in section.items():
            if not isinstance(version, int) or isinstance(version, bool) or version < 1:
                problems.append(Problem(str(path), 1, 1, (kind, name), f"expected a version number ≥ 1, got {version!r}", hint))
            else:
                out[(kind[:-1], name)] = version
    if problems:
        raise SpecError(problems=problems)
    return out


def with_versions(project: m.Project, versions: dict[tuple[str, str], int]) -> m.Project:
    """``project`` with each group and view at its recorded version (when higher than declared)."""
    import dataclasses

    groups = {n: dataclasses.replace(g, version=max(g.version, versions.get(("feature_group", n), 0))) for n, g in project.feature_groups.items()}
    views = {n: dataclasses.replace(v, version=max(v.version, versions.get(("feature_view", n), 0))) for n, v in project.feature_views.items()}
    return dataclasses.replace(project, feature_groups=groups, feature_views=views)


def write_versions(root: Path, project: m.Project) -> None:
    """Record every group's and view's version in ``engine-versions.json`` (atomically)."""
    import json

    from engine.state.atomic import write_atomic

    doc = {
        "feature_groups": {n: g.version for n, g in sorted(project.feature_groups.items())},
        "feature_views": {n: v.version for n, v in sorted(project.feature_views.items())},
    }
    write_atomic(Path(root) / VERSIONS_FILE, (json.dumps(doc, indent=2) + "\n").encode())


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
    return _workspace(checked.project.root, override)


def _workspace(root: Path, override: str | Path | None):
    from engine.spec.project_files import read_marker
    from engine.state.workspace import Workspace

    marker = root / "engine.yaml"
    if override is None and marker.is_file():
        override = read_marker(marker).workspace_path  # `workspace:` in the project marker
    return Workspace.for_project(root, override)
