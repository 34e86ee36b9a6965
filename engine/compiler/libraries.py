"""Feature libraries: versioned, pip-installed distributions whose functions a project declares
under ``requires`` and references as ``package.module:function``.

Everything here reads installed metadata and source files; nothing imports a library, so
``engine validate`` stays pure (P6) and fast. Owns no storage.

- ``installed(name)`` — the installed distribution of a declared name: its version and the
  top-level import names it provides (``top_level.txt``, else its file list).
- ``locate(module)`` — the file of an installed module, found with the import system's finders
  (``importlib.util.find_spec`` on the top-level name runs no package code).
- ``bound_names(file)`` — the names a module binds at top level (functions, classes, imports),
  from its syntax tree; what a reference may name.
- ``library_of(top)`` — the installed distribution providing an import name, its version.

Identity (``fingerprint.library_code``) hashes what these find.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = [
    "Installed",
    "LibraryError",
    "bound_names",
    "canonical",
    "function_digest",
    "installed",
    "installed_names",
    "library_of",
    "locate",
    "owner_of",
    "package_files",
    "project_has_module",
]


class LibraryError(Exception):
    """An installed distribution whose metadata can't be read (no name or version, broken files)."""


@dataclass(frozen=True)
class Installed:
    name: str  # as its metadata spells it
    version: str
    top_level: tuple[str, ...]  # import names it provides
    location: str  # where it is installed (for messages)


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name: ``Shared_Features`` and ``shared-features`` are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


def project_has_module(root: Path, top: str) -> bool:
    """Whether the top-level import name ``top`` is a package or module of the project itself
    (in its root or ``src/``): the project's own code always wins over an installed library."""
    return any(c.exists() for c in (root / top, root / f"{top}.py", root / "src" / top, root / "src" / f"{top}.py"))


def installed(name: str) -> Installed | None:
    """The installed distribution called ``name`` (any spelling), or None; LibraryError when its
    metadata can't be read."""
    from importlib import metadata

    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        dist = next((d for d in _distributions() if canonical(d.metadata["Name"] or "") == canonical(name)), None)
        if dist is None:
            return None
    except Exception as exc:  # a broken .dist-info: unreadable METADATA, bad encoding
        raise LibraryError(f"the metadata of the installed distribution '{name}' can't be read: {type(exc).__name__}: {exc}") from exc
    try:
        meta_name, version = dist.metadata["Name"], dist.version
    except Exception as exc:
        raise LibraryError(f"the metadata of the installed distribution '{name}' can't be read: {type(exc).__name__}: {exc}") from exc
    if not meta_name or not version:
        raise LibraryError(f"the metadata of the installed distribution '{name}' has no {'Name' if not meta_name else 'Version'}")
    return Installed(meta_name, version, _top_level(dist, meta_name), str(getattr(dist, "_path", "") or ""))


def _distributions() -> list:
    from importlib import metadata

    out = []
    for dist in metadata.distributions():
        try:
            if dist.metadata["Name"]:
                out.append(dist)
        except Exception:  # an unreadable distribution elsewhere in the environment is not ours to report
            continue
    return out


def installed_names() -> list[str]:
    """Every installed distribution's name (for did-you-mean)."""
    return sorted({d.metadata["Name"] for d in _distributions()})


def _top_level(dist, name: str) -> tuple[str, ...]:
    text = None
    try:
        text = dist.read_text("top_level.txt")
    except Exception:
        text = None
    names = {line.strip() for line in (text or "").splitlines() if line.strip()}
    if not names:
        for f in dist.files or ():
            first = f.parts[0] if f.parts else ""
            if not first or first.endswith((".dist-info", ".egg-info", ".pth")) or first in ("..", "__pycache__") or first.startswith("__editable__"):
                continue
            names.add(first[:-3] if first.endswith(".py") else first)
    if not names:  # an editable install lists only its finder: the conventional import name
        names.add(canonical(name).replace("-", "_"))
    return tuple(sorted(n for n in names if n.isidentifier()))


def owner_of(top: str) -> str | None:
    """The installed distribution that provides the import name ``top``, if any."""
    from importlib import metadata

    try:  # the common case first: the distribution is named after its package (nyc_features -> nyc-features)
        guess = metadata.distribution(top)
        name = guess.metadata["Name"]
        if name and top in _top_level(guess, name):
            return name
    except Exception:
        pass
    try:
        owners = metadata.packages_distributions().get(top) or []
    except Exception:
        owners = []
    if owners:
        return owners[0]
    for dist in _distributions():
        name = dist.metadata["Name"]
        if top in _top_level(dist, name):
            return name
    return None


def _search_roots(top: str) -> list[Path]:
    """Where the installed top-level package ``top`` lives: its package folders, or its single file."""
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    if spec.submodule_search_locations:
        return [Path(p) for p in spec.submodule_search_locations]
    if spec.origin and spec.origin.endswith(".py"):
        return [Path(spec.origin)]
    return []


def locate(module: str) -> Path | None:
    """The source file of an installed module ``a.b.c`` (its ``.py`` or package ``__init__.py``),
    found without running any of the package's code; None when there is none."""
    top, *rest = module.split(".")
    for base in _search_roots(top):
        if base.suffix == ".py":
            if not rest:
                return base
            continue
        target = base.joinpath(*rest)
        for candidate in (target.with_suffix(".py"), target / "__init__.py") if rest else (base / "__init__.py",):
            if candidate.is_file():
                return candidate
    return None


def package_files(top: str) -> list[tuple[str, Path]]:
    """Every ``.py`` file of the installed top-level package ``top``, keyed by its path inside it."""
    out: list[tuple[str, Path]] = []
    for base in _search_roots(top):
        if base.suffix == ".py":
            out.append((base.name, base))
            continue
        out += [(f"{top}/{p.relative_to(base).as_posix()}", p) for p in sorted(base.rglob("*.py")) if "__pycache__" not in p.parts]
    return sorted(out)


def modules_of(top: str) -> list[str]:
    """The dotted names of the installed package's modules (for did-you-mean)."""
    names = []
    for rel, _ in package_files(top):
        parts = rel[:-3].split("/")
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def _top_statements(body: list[ast.stmt]):
    for node in body:
        yield node
        if isinstance(node, ast.If | ast.Try):
            for block in (node.body, getattr(node, "orelse", []), getattr(node, "finalbody", [])):
                yield from _top_statements(block)
            for handler in getattr(node, "handlers", []):
                yield from _top_statements(handler.body)


def bound_names(file: Path) -> set[str] | None:
    """The names module ``file`` binds at top level (def, class, assignment, import); None when
    that can't be known without running it (a star import, a module ``__getattr__``, no parse)."""
    try:
        tree = ast.parse(file.read_bytes(), filename=str(file))
    except (OSError, SyntaxError, ValueError):
        return None
    names: set[str] = set()
    for node in _top_statements(tree.body):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    return None
                names.add(alias.asname or alias.name.split(".")[0])
    return None if "__getattr__" in names else names


def function_digest(file: Path | None, name: str) -> str:
    """The normalised syntax-tree hash of the top-level function ``name`` in ``file`` (docstring,
    comments and formatting excluded); "" when it is not defined there by a ``def``."""
    if file is None:
        return ""
    try:
        tree = ast.parse(file.read_bytes(), filename=str(file))
    except (OSError, SyntaxError, ValueError):
        return ""
    for node in _top_statements(tree.body):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
            return hashlib.sha256(ast.dump(node, annotate_fields=False, include_attributes=False).encode()).hexdigest()
    return ""


@lru_cache(maxsize=256)
def _owner_cached(top: str, stamp: tuple) -> str | None:
    return owner_of(top)


def library_of(top: str) -> Installed | None:
    """The installed distribution providing import name ``top``, its version read afresh (the
    scan of every distribution for the owner is cached per location of the package)."""
    roots = _search_roots(top)
    owner = _owner_cached(top, tuple(str(p) for p in roots))
    if owner is None:
        return None
    try:
        return installed(owner)
    except LibraryError:
        return None
