"""Find a project's spec files and merge them into one document. Owns discovery; must not touch meaning of keys.

Layout rules are in docs/spec-language.md "Project layout and paths". Object names are unique
across files and kinds (case-folded); every clash is reported at its second place, naming the
first (RELIABILITY E6, Y4).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from engine.errors import Problem, ProblemCollector, SpecError
from engine.spec.sourcemap import Location, SourceMap
from engine.spec.yaml_loader import MAX_BYTES, load_yaml

__all__ = ["SECTIONS", "SCALAR_KEYS", "LoadedSpec", "discover", "load_spec"]

SECTIONS: dict[str, str] = {
    "sources": "source",
    "feature_groups": "feature_group",
    "functions": "function",
    "feature_views": "feature_view",
    "models": "model",
    "inference": "inference",
}
SCALAR_KEYS = ("spec_version", "project", "description")
_SUFFIXES = (".yaml", ".yml")
_SKIPPED_DIRS = {".engine", "__pycache__", "node_modules"}


@dataclass(frozen=True)
class LoadedSpec:
    """Every spec file of a project, merged, with a source map over all of them."""

    root: Path
    files: tuple[Path, ...]
    data: dict
    source_map: SourceMap


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
    """Every *.yaml / *.yml below ``folder``, skipping hidden folders/files and the workspace."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _SKIPPED_DIRS)
        for name in filenames:
            if name.endswith(_SUFFIXES) and not name.startswith("."):
                found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


def discover(path: str | Path) -> tuple[Path, tuple[Path, ...]]:
    """The project root and its spec files for ``engine <verb> PATH``; SpecError when there are none."""
    given = Path(path)
    if not given.exists():
        raise SpecError(problems=[Problem(str(path), 0, 0, (), "no such file or directory")])
    target = given.resolve()
    if target.is_file():
        parent = target.parent
        root = parent.parent if parent.name == "specs" else parent
        return root, (target,)
    if (target / "specs").is_dir():
        root, folder = target, target / "specs"
    elif target.name == "specs":
        root, folder = target.parent, target
    else:
        root, folder = target, target
    files = _walk_specs(folder)
    if not files:
        message = f"no spec files (*.yaml, *.yml) found in {display_name(folder)}"
        hint = "pass a spec file, or a folder holding a specs/ folder"
        raise SpecError(problems=[Problem(str(path), 0, 0, (), message, hint)])
    return root, tuple(files)


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
    root, files = discover(path)
    merger = _Merger()
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
