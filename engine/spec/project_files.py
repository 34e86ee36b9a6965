"""Find a project's spec files and merge them into one document. Owns discovery; must not touch meaning of keys.

Layout rules are in docs/spec-language.md "Project layout and paths". A project may mark its root
with ``engine.yaml`` (:data:`MARKER`: the project name and where its specs are), which verbs find by
walking up from the current folder (:func:`find_marker`). Object names are unique across files and
kinds (case-folded); every clash is reported at its second place, naming the first (RELIABILITY E6, Y4).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from engine.errors import KeyPath, Problem, ProblemCollector, SpecError, did_you_mean
from engine.spec.sourcemap import Location, SourceMap
from engine.spec.yaml_loader import MAX_BYTES, load_yaml

__all__ = ["MARKER", "SECTIONS", "SCALAR_KEYS", "LoadedSpec", "ProjectMarker", "discover", "find_marker", "load_spec", "read_marker"]

SECTIONS: dict[str, str] = {
    "sources": "source",
    "feature_groups": "feature_group",
    "functions": "function",
    "feature_views": "feature_view",
    "models": "model",
    "inference": "inference",
}
SCALAR_KEYS = ("spec_version", "project", "description", "storage", "versioning", "registry", "backend", "requires")
_SUFFIXES = (".yaml", ".yml")
_SKIPPED_DIRS = {".engine", "__pycache__", "node_modules"}
MARKER = "engine.yaml"
_MARKER_KEYS = ("project", "specs", "workspace")
_DEFAULT_SPECS = ("specs",)
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class LoadedSpec:
    """Every spec file of a project, merged, with a source map over all of them."""

    root: Path
    files: tuple[Path, ...]
    data: dict
    source_map: SourceMap


@dataclass(frozen=True)
class ProjectMarker:
    """A project's ``engine.yaml``: its root, name, spec globs and workspace (paths relative to root)."""

    root: Path
    file: Path
    project: str
    specs: tuple[str, ...] = _DEFAULT_SPECS
    workspace: str | None = None
    source_map: SourceMap | None = None
    spec_keys: tuple[KeyPath, ...] = ()  # where each specs entry is written; () when defaulted

    @property
    def workspace_path(self) -> Path | None:
        """The workspace folder it names, absolute; None for the default (``.engine/`` in the root)."""
        return (self.root / self.workspace).resolve() if self.workspace else None


def display_name(path: Path) -> str:
    """``path`` relative to the current directory when inside it, else absolute."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(resolved)


def _where(loc: Location) -> str:
    return f"{loc.file}:{loc.line}:{loc.column}"


def _walk_specs(folder: Path) -> list[Path]:
    """Every *.yaml / *.yml below ``folder``, skipping hidden folders/files, the workspace, project
    markers and folders holding their own marker (another project)."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and d not in _SKIPPED_DIRS and not (here / d / MARKER).is_file()
        )
        for name in filenames:
            if name.endswith(_SUFFIXES) and not name.startswith(".") and name != MARKER:
                found.append(here / name)
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


def find_marker(start: str | Path) -> Path | None:
    """The nearest ``engine.yaml`` in ``start`` or a folder above it (as git finds ``.git``), or None."""
    folder = Path(start).resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / MARKER).is_file():
            return candidate / MARKER
    return None


def read_marker(file: str | Path) -> ProjectMarker:
    """Read and check a project's ``engine.yaml``; SpecError with every problem, positioned.

    The file holds ``project: NAME`` and, optionally, ``specs:`` (a path or glob, or a list of
    them, relative to its folder; default ``specs/``) and ``workspace:`` (default ``.engine``).
    """
    file = Path(file).resolve()
    shown = display_name(file)
    problems = ProblemCollector()
    raw = _read(file, shown, problems)
    problems.raise_if_any(SpecError)
    doc, smap = load_yaml(raw or b"", shown)
    if not isinstance(doc, dict):
        found = "an empty file" if doc is None else f"a {type(doc).__name__}"
        raise SpecError(problems=[smap.problem((), f"{MARKER} must be a mapping (found {found})", "write at least 'project: NAME'")])
    for key in doc:
        if key not in _MARKER_KEYS:
            hint = did_you_mean(str(key), list(_MARKER_KEYS))
            problems.add(smap.problem((key,), f"unknown key '{key}' in {MARKER}", hint or f"the keys are {', '.join(_MARKER_KEYS)}"))
    name = doc.get("project")
    if "project" not in doc:
        problems.add(smap.problem((), f"{MARKER} needs 'project: NAME'", "the project name, e.g. project: flights"))
    elif not isinstance(name, str) or not _NAME.match(name):
        problems.add(smap.problem(("project",), f"project {_shown(name)} is not a name", "lowercase letters, digits and _, starting with a letter", value=True))
    specs = doc.get("specs", list(_DEFAULT_SPECS))
    keys: list[KeyPath] = []
    if isinstance(specs, str):
        specs, keys = [specs], [("specs",)]
    elif isinstance(specs, list) and specs:
        keys = [("specs", i) for i in range(len(specs))]
    else:
        problems.add(smap.problem(("specs",), "specs must be a path or glob, or a non-empty list of them", "e.g. specs: [specs/]", value=True))
        specs = []
    for entry, where in zip(specs, keys):
        if not isinstance(entry, str) or not entry.strip():
            problems.add(smap.problem(where, f"specs entry {_shown(entry)} is not a path or glob", value=True))
        elif Path(entry).is_absolute() or ".." in Path(entry).parts:
            problems.add(smap.problem(where, f"specs entry '{entry}' leaves the project folder", "paths are relative to the folder holding engine.yaml", value=True))
    workspace = doc.get("workspace")
    if workspace is not None and (not isinstance(workspace, str) or not workspace.strip()):
        problems.add(smap.problem(("workspace",), f"workspace {_shown(workspace)} is not a folder path", "e.g. workspace: .engine", value=True))
    problems.raise_if_any(SpecError)
    return ProjectMarker(file.parent, file, name, tuple(specs), workspace, smap, tuple(keys) if "specs" in doc else ())


def _marker_specs(marker: ProjectMarker) -> list[Path]:
    """The spec files an ``engine.yaml`` names: each entry a file, a folder (every YAML below it) or
    a glob, relative to the root. A written entry that names no spec file is a problem, at the entry."""
    found: set[Path] = set()
    problems = ProblemCollector()
    for i, entry in enumerate(marker.specs):
        matches = sorted(marker.root.glob(entry)) if _GLOB_CHARS & set(entry) else [marker.root / entry]
        before = len(found)
        for match in matches:
            if any(part.startswith(".") or part in _SKIPPED_DIRS for part in match.relative_to(marker.root).parts):
                continue
            if match.is_dir():
                found.update(_walk_specs(match))
            elif match.is_file() and match.name.endswith(_SUFFIXES) and match.name != MARKER:
                found.add(match)
        if len(found) == before and marker.spec_keys and marker.source_map is not None:
            hint = "a file, a folder or a glob, relative to the folder holding engine.yaml"
            problems.add(marker.source_map.problem(marker.spec_keys[i], f"specs entry '{entry}' names no spec file (*.yaml, *.yml)", hint, value=True))
    problems.raise_if_any(SpecError)
    return sorted(found, key=lambda p: p.relative_to(marker.root).parts)


def _no_specs(path: str | Path, where: str, hint: str) -> SpecError:
    return SpecError(problems=[Problem(str(path), 0, 0, (), f"no spec files (*.yaml, *.yml) found in {where}", hint)])


def discover(path: str | Path) -> tuple[Path, tuple[Path, ...]]:
    """The project root and its spec files for ``engine <verb> PATH``; SpecError when there are none."""
    root, files, _ = _discover(path)
    return root, files


def _discover(path: str | Path) -> tuple[Path, tuple[Path, ...], ProjectMarker | None]:
    given = Path(path)
    if not given.exists():
        raise SpecError(problems=[Problem(str(path), 0, 0, (), "no such file or directory")])
    target = given.resolve()
    if target.is_file() and target.name == MARKER:
        target = target.parent  # `engine validate engine.yaml` means its project
    if target.is_dir() and (target / MARKER).is_file():
        marker = read_marker(target / MARKER)
        files = _marker_specs(marker)
        if not files:
            entries = ", ".join(marker.specs)
            raise _no_specs(path, f"{entries} (the specs of {display_name(marker.file)})", f"put spec files there, or list where they are under 'specs:' in {MARKER}")
        return target, tuple(files), marker
    if target.is_file():
        parent = target.parent
        root = parent.parent if parent.name == "specs" else parent
        return root, (target,), None
    if (target / "specs").is_dir():
        root, folder = target, target / "specs"
    elif target.name == "specs":
        root, folder = target.parent, target
    else:
        root, folder = target, target
    files = _walk_specs(folder)
    if not files:
        raise _no_specs(path, display_name(folder), "pass a spec file, or a folder holding a specs/ folder")
    return root, tuple(files), None


def _read(file: Path, shown: str, problems: ProblemCollector) -> bytes | None:
    try:
        size = file.stat().st_size
        if size > MAX_BYTES:
            problems.add(Problem(shown, 1, 1, (), "file larger than 1 MiB", "split the spec into several files"))
            return None
        with file.open("rb") as handle:
            return handle.read(MAX_BYTES + 1)
    except OSError as exc:
        problems.add(Problem(shown, 0, 0, (), f"cannot read file: {exc.strerror or exc}"))
        return None


class _Merger:
    """Folds per-file documents into one, remembering where each name was first defined."""

    def __init__(self) -> None:
        self.data: dict = {}
        self.smap = SourceMap()
        self.problems = ProblemCollector()
        self.names: dict[str, tuple[str, str, Location | None]] = {}  # folded -> (section, name, where)
        self.scalars: dict[str, Location | None] = {}

    def add_file(self, doc: dict, smap: SourceMap) -> None:
        keep_subtree: set[tuple] = set()
        for key, value in doc.items():
            if key in SECTIONS:
                self.add_section(key, value, smap, keep_subtree)
            elif key in SCALAR_KEYS:
                self.add_scalar(key, value, smap)
            elif key not in self.data:
                self.data[key] = value
                keep_subtree.add((key,))
        for path, loc in smap.entries.items():
            owned = path[:1] in keep_subtree or path[:2] in keep_subtree
            if owned or path not in self.smap.entries:
                self.smap.entries[path] = loc
                if path in smap.value_entries:
                    self.smap.value_entries[path] = smap.value_entries[path]

    def add_section(self, section: str, value: object, smap: SourceMap, keep: set[tuple]) -> None:
        current = self.data.get(section)
        if not isinstance(value, dict) or (section in self.data and not isinstance(current, dict)):
            if isinstance(current, dict) or section not in self.data:
                self.data[section] = value  # the schema step reports the wrong type at this place
                keep.add((section,))
            return
        merged = self.data.setdefault(section, {})
        for name, body in value.items():
            where = smap.locate((section, name))
            folded = name.casefold()
            first = self.names.get(folded)
            if first is None:
                self.names[folded] = (section, name, where)
                merged[name] = body
                keep.add((section, name))
                continue
            first_section, first_name, first_where = first
            at = _where(first_where) if first_where else "another file"
            if first_section == section:
                message = f"{SECTIONS[section]} '{name}' is defined twice (also at {at})"
                hint = "rename one of them"
            else:
                message = f"name '{name}' is already used by {SECTIONS[first_section]} '{first_name}' at {at}"
                hint = "names are unique across all kinds; rename one of them"
            self.problems.add(smap.problem((section, name), message, hint))

    def add_scalar(self, key: str, value: object, smap: SourceMap) -> None:
        where = smap.locate((key,), value=True)
        if key not in self.data:
            self.data[key] = value
            self.scalars[key] = where
            return
        first = self.data[key]
        if type(first) is type(value) and first == value:
            return
        first_where = self.scalars.get(key)
        at = _where(first_where) if first_where else "another file"
        message = f"{key} {_shown(value)} conflicts with {_shown(first)} at {at}"
        self.problems.add(smap.problem((key,), message, f"all spec files must agree on {key}", value=True))


def _shown(value: object) -> str:
    """A scalar as the user wrote it in YAML (``true``, ``null``, ``'text'``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float, str)):
        return repr(value)
    return f"a {type(value).__name__}"


def load_spec(path: str | Path) -> LoadedSpec:
    """Discover, read and merge every spec file of the project at ``path``; one SpecError for all problems."""
    root, files, marker = _discover(path)
    merger = _Merger()
    if marker is not None and marker.source_map is not None:  # the spec files must agree with it
        merger.add_scalar("project", marker.project, marker.source_map)
    for file in files:
        shown = display_name(file)
        raw = _read(file, shown, merger.problems)
        if raw is None:
            continue
        try:
            doc, smap = load_yaml(raw, shown)
        except SpecError as exc:
            merger.problems.extend(exc.problems)
            continue
        if not isinstance(doc, dict):
            found = "an empty file" if doc is None else f"a {type(doc).__name__}"
            message = f"a spec file must be a mapping at the top level (found {found})"
            merger.problems.add(smap.problem((), message, "start with keys such as 'spec_version:' or 'sources:'"))
            continue
        merger.add_file(doc, smap)
    merger.problems.raise_if_any(SpecError)
    if not merger.smap.entries:
        merger.smap.add((), Location(display_name(files[0]), 1, 1))
    return LoadedSpec(root=root, files=files, data=merger.data, source_map=merger.smap)
