"""The files a spec names: source paths (globs), SQL files and inference output files, resolved
inside the project.

Owns path confinement (P1–P3: no URL, no absolute or home path, no `..` or symlink leaving the
project) and reading SQL files; positions problems on the spec key. The model builder receives
the result and does no I/O itself. The output-path rule (:func:`check_output_path`) is the one
``engine validate`` and the predictions writer both apply.
"""

from __future__ import annotations

import glob as globlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import Problem
from engine.spec.sourcemap import SourceMap

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
MAX_SQL_FILE = 1 << 20


@dataclass(frozen=True)
class ProjectFiles:
    source_paths: dict[str, tuple[Path, ...]] = field(default_factory=dict)  # source name -> files
    sql_texts: dict[str, str] = field(default_factory=dict)  # feature group name -> SQL of its sql_file


class _Resolver:
    def __init__(self, root: Path, smap: SourceMap):
        self.root = root
        self.smap = smap
        self.problems: list[Problem] = []

    def fail(self, path: tuple, message: str, hint: str | None = None) -> None:
        self.problems.append(self.smap.problem(path, message, hint, value=True))

    def confined(self, path: tuple, text: str) -> Path | None:
        """Resolve a spec path inside the project root, or report why not (P1, P2, P3)."""
        if _URL.match(text) and not re.match(r"^[a-zA-Z]:[\\/]", text):
            self.fail(path, f"remote sources are not supported: '{text[:60]}'", "copy the data into the project")
            return None
        if "\x00" in text:
            self.fail(path, f"path {text[:60]!r} contains a NUL byte", "remove the \\0 from the path")
            return None
        if text.startswith("~") or os.path.isabs(text):
            self.fail(path, f"path '{text[:60]}' escapes the project", "use a path relative to the project root")
            return None
        root = self.root.resolve()
        lexical = Path(os.path.normpath(root / text))
        if lexical != root and root not in lexical.parents:
            self.fail(path, f"path '{text[:60]}' escapes the project", "use a path relative to the project root")
            return None
        candidate = lexical.resolve()
        if candidate != root and root not in candidate.parents:
            self.fail(path, f"'{text[:60]}' is a link to a file outside the project", "copy the file into the project")
            return None
        return candidate

    def source_files(self, path: tuple, text: str) -> tuple[Path, ...]:
        if self.confined(path, text) is None:
            return ()
        root = self.root.resolve()
        if any(ch in text for ch in "*?["):
            matches = sorted(Path(p) for p in globlib.glob(str(self.root / text), recursive=True))
        else:
            matches = [self.root / text] if (self.root / text).exists() else []
        files: list[Path] = []
        for match in matches:
            real = match.resolve()
            if real != root and root not in real.parents:
                self.fail(path, f"'{match.relative_to(self.root)}' is a link to a file outside the project", "copy the file into the project")
                continue
            if real.is_file():
                files.append(real)
        return tuple(files)

    def sql_file(self, path: tuple, text: str) -> str | None:
        file = self.confined(path, text)
        if file is None:
            return None
        if not file.is_file():
            self.fail(path, f"SQL file '{text}' does not exist")
            return None
        if file.stat().st_size > MAX_SQL_FILE:
            self.fail(path, f"SQL file '{text}' is larger than 1 MiB")
            return None
        try:
            return file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            self.fail(path, f"SQL file '{text}' is not valid UTF-8")
            return None


# What the predictions writer (engine.serving.outputs) can write, by file suffix.
OUTPUT_SUFFIXES = (".parquet", ".csv", ".jsonl")
_OUTPUT_HINT = "write outputs inside the project, e.g. out/scores.parquet"


@dataclass(frozen=True)
class ProjectReads:
    """What a project reads, which no output file may replace (I4): source paths and globs as
    written (they match files that do not exist yet, too) and the files read (matched source files,
    spec files, SQL files, Python modules), each with what reads it ("source 'trips_raw' (…)")."""

    patterns: tuple[tuple[str, str], ...] = ()  # (what, path or glob relative to the project root)
    files: tuple[tuple[str, Path], ...] = ()  # (what, file)


@dataclass(frozen=True)
class OutputPath:
    """An inference job's ``output.path`` after :func:`check_output_path`: the file, or why not."""

    file: Path | None  # absolute, inside the project (parent links resolved); None when refused
    problem: str | None = None
    hint: str | None = None


def check_output_path(root: Path, text: str, reads: ProjectReads | None = None) -> OutputPath:
    """The one rule for output files: relative, inside the project after resolving links (P1–P3),
    ending in a suffix the writer supports (``.parquet``, ``.csv``, ``.jsonl``), and, given what
    the project ``reads``, never one of those files nor one a source's path or glob could match.

    >>> import tempfile; root = Path(tempfile.mkdtemp())
    >>> check_output_path(root, "out/x.jsonl").file == root.resolve() / "out" / "x.jsonl"
    True
    >>> check_output_path(root, "../x.csv").problem
    "output path '../x.csv' escapes the project"
    >>> check_output_path(root, "out/x.txt").problem
    "output path 'out/x.txt' must end in .parquet, .csv or .jsonl"
    """
    shown = text[:60]
    escapes = OutputPath(None, f"output path '{shown}' escapes the project", _OUTPUT_HINT)
    if text.startswith("~") or os.path.isabs(text) or "\x00" in text or "://" in text:
        return escapes
    base = Path(root).resolve()
    lexical = Path(os.path.normpath(base / text))
    if base not in lexical.parents:
        return escapes
    resolved = lexical.parent.resolve() / lexical.name
    if base not in resolved.parents or (resolved.is_symlink() and base not in resolved.resolve().parents):
        return OutputPath(None, f"output path '{shown}' is a link outside the project", _OUTPUT_HINT)
    if resolved.suffix.lower() not in OUTPUT_SUFFIXES:
        return OutputPath(None, f"output path '{shown}' must end in {', '.join(OUTPUT_SUFFIXES[:-1])} or {OUTPUT_SUFFIXES[-1]}")
    read_by = _read_by(base, (lexical, resolved, resolved.resolve()), reads) if reads is not None else None
    if read_by is not None:
        return OutputPath(None, f"output path '{shown}' would overwrite {read_by}, which the project reads", "write predictions to a file no source path matches, e.g. out/scores.parquet")
    return OutputPath(resolved)


_GLOB_CHARS = "*?["


def _read_by(base: Path, candidates: tuple[Path, ...], reads: ProjectReads) -> str | None:
    """What in ``reads`` the output file (any of its spellings) is, or could be matched by."""
    names = {c for c in candidates if c == base or base in c.parents}
    parts = {c.relative_to(base).parts for c in names}
    for what, pattern in reads.patterns:
        for form in _pattern_forms(base, pattern):
            glob = any(ch in part for part in form for ch in _GLOB_CHARS)
            for rel in parts:
                # a plain path matches itself and, were it a directory, every file under it
                if _glob_match(form, rel) if glob else rel[: len(form)] == form:
                    return what
    existing = [c for c in names if c.exists()]
    for what, file in reads.files:
        try:
            real = Path(file).resolve()
        except OSError:
            continue
        if real in names or any(_same_file(c, real) for c in existing):
            return what
    return None


def _pattern_forms(base: Path, pattern: str) -> list[tuple[str, ...]]:
    """A source pattern relative to the project root, as written (normalised) and with the links of
    its directory part resolved (a file reached through a linked folder is the same file)."""
    lexical = Path(os.path.normpath(base / pattern))
    if lexical != base and base not in lexical.parents:
        return []
    parts = lexical.relative_to(base).parts
    forms = [parts]
    fixed = 0
    while fixed < len(parts) and not any(ch in parts[fixed] for ch in _GLOB_CHARS):
        fixed += 1
    prefix = (base.joinpath(*parts[:fixed])).resolve()
    if prefix == base or base in prefix.parents:
        real = prefix.relative_to(base).parts + parts[fixed:]
        if real != parts:
            forms.append(real)
    return forms


def _glob_match(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    """``glob(recursive=True)`` semantics per path part: ``**`` spans any number of folders."""
    import fnmatch

    if not pattern:
        return not path
    if pattern[0] == "**":
        return any(_glob_match(pattern[1:], path[i:]) for i in range(len(path) + 1))
    return bool(path) and fnmatch.fnmatchcase(path[0], pattern[0]) and _glob_match(pattern[1:], path[1:])


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def resolve_files(data: dict[str, Any], source_map: SourceMap, root: Path) -> tuple[ProjectFiles, list[Problem]]:
    """Resolve every source path and read every ``sql_file`` of a schema-valid document."""
    resolver = _Resolver(root, source_map)
    sources: dict[str, tuple[Path, ...]] = {}
    for name, body in (data.get("sources") or {}).items():
        sources[name] = resolver.source_files(("sources", name, "path"), body["path"])
    sql: dict[str, str] = {}
    for name, body in (data.get("feature_groups") or {}).items():
        if "sql_file" in body:
            text = resolver.sql_file(("feature_groups", name, "sql_file"), body["sql_file"])
            if text is not None:
                sql[name] = text
    return ProjectFiles(sources, sql), resolver.problems
