"""`engine init --layout library` and `engine init --uses DIST`: a pip-installable feature library,
and a pipeline project that declares an installed one under ``requires:``.

Owns these templates only; the project files both share come from ``engine.scaffold``. An installed
library is read from its metadata and its modules' syntax trees (``engine.compiler.libraries``),
never imported.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import UsageError, did_you_mean
from engine.scaffold import (
    HOUR_OF_DAY,
    SCHEMA_FILE,
    TIME_MODULE_HEAD,
    check_empty,
    checked_name,
    features_test_text,
    package_files,
    project_files,
    readme_text,
    write_files,
)

if TYPE_CHECKING:
    from engine.compiler.libraries import Installed

_DIST = re.compile(r"^[a-z][a-z0-9]*(?:[-_.][a-z0-9]+)*$")
_RETURNS = {"int": "int64", "float": "float64", "str": "string", "bool": "bool"}

DAY_OF_WEEK = '''

def day_of_week(ts):
    """Day of the week (Monday 0 … Sunday 6) of a timestamp.

    >>> day_of_week(pd.Timestamp("2024-01-06 13:45", tz="UTC"))
    5
    """
    if isinstance(ts, pd.Series):
        return ts.dt.day_of_week
    return pd.Timestamp(ts).day_of_week
'''


@dataclass(frozen=True)
class Library:
    """A feature library written by ``init_library``."""

    dist: str  # distribution name (pip install, requires: package)
    package: str  # import name
    files: list[Path]


@dataclass(frozen=True)
class UsingProject:
    """A pipeline project written by ``init_using``, and the installed library it declares."""

    dist: str
    version: str  # installed when the project was made
    requirement: str  # the declared range
    package: str  # the library's import name
    wired: bool  # the sample spec calls the library's time:hour_of_day (else the project's own package)
    files: list[Path]


def requirement_range(version: str) -> str:
    """The ``requires:`` range that accepts ``version`` and what semantic versioning calls
    compatible with it: the same major version, or the same minor one below 1.0.

    >>> requirement_range("1.4.2")
    '>=1.4,<2'
    >>> requirement_range("0.3.1")
    '>=0.3,<0.4'
    >>> requirement_range("2.0.0rc1")
    '>=2.0.0rc1,<3'
    """
    found = re.match(r"^v?(?:(\d+)!)?(\d+)(?:\.(\d+))?((?:\.\d+)*)(.*)$", version.strip().lower())
    if found is None:
        raise UsageError(f"version '{version}' is not a PEP 440 version; write the requires: range by hand")
    epoch, major, minor, _, rest = found.groups()
    epoch = f"{epoch}!" if epoch else ""
    major, minor = int(major), int(minor or 0)
    upper = f"{epoch}0.{minor + 1}" if major == 0 else f"{epoch}{major + 1}"
    # A pre-release (1.2.0rc1, 1.2.dev3) is below 1.2: the range starts at it exactly, which also
    # lets the specifier accept pre-releases.
    pre = re.match(r"^[-_.]?(a|b|c|rc|alpha|beta|pre|preview|dev)", rest)
    lower = version.strip() if pre else f"{epoch}{major}.{minor}"
    return f">={lower},<{upper}"


def library_name(root: Path, name: str | None) -> tuple[str, str]:
    """The distribution and import names of a library: ``name`` (``shared-features``; ``_`` and
    ``.`` read as ``-``), else derived from the folder's name; UsageError when unusable."""
    given = name
    if name is None:
        name = re.sub(r"[^a-z0-9]+", "-", root.resolve().name.lower()).strip("-")
    if not _DIST.match(name) or len(name) > 60:
        origin = "pass --name" if given is None else "for example shared-features"
        raise UsageError(f"library name '{name}' must be lowercase letters, digits and - (starting with a letter); {origin}")
    dist = re.sub(r"[-_.]+", "-", name)
    package = dist.replace("-", "_")
    if package in sys.stdlib_module_names or package == "engine":
        raise UsageError(f"library name '{dist}' would be imported as '{package}', which is {'engine' if package == 'engine' else 'a module of the Python standard library'}; pass another --name")
    return dist, package


def library_files(dist: str, package: str) -> dict[str, str]:
    """A feature library in the src layout: pyproject, package, tests, README, .gitignore."""
    example = f"""requires:
  - {{package: {dist}, version: "{requirement_range('0.1.0')}"}}
functions:
  hour_of_day: {{python: {package}.time:hour_of_day, inputs: [requested_at], returns: int64}}"""
    return {
        "pyproject.toml": f"""[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"   # semantic versioning: see README.md before changing it
description = "Feature functions shared by engine pipeline projects."
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["pandas>=2.1"]

[project.optional-dependencies]
test = ["pytest>=7"]

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]
""",
        ".gitignore": "__pycache__/\n*.egg-info/\nbuild/\ndist/\n.venv/\n",
        f"src/{package}/__init__.py": f'"""{dist}: feature functions shared by pipeline projects; pure, deterministic, tested."""\n',
        f"src/{package}/time.py": TIME_MODULE_HEAD + HOUR_OF_DAY + DAY_OF_WEEK,
        "tests/test_time.py": f'''"""Every function gives the same answer on a scalar (online path) and on a Series (offline path)."""

import pandas as pd

from {package}.time import day_of_week, hour_of_day

TIMES = pd.Series(pd.to_datetime(["2024-01-01 00:10", "2024-01-06 12:00", "2024-01-07 23:59"], utc=True))


def test_hour_of_day_scalar_and_series_agree():
    assert list(hour_of_day(TIMES)) == [hour_of_day(t) for t in TIMES] == [0, 12, 23]


def test_day_of_week_scalar_and_series_agree():
    assert list(day_of_week(TIMES)) == [day_of_week(t) for t in TIMES] == [0, 5, 6]  # Monday is 0
''',
        "README.md": f"""# {dist}

Feature functions shared by engine pipeline projects, versioned and installed with pip: a
project declares the range of versions it accepts under `requires:` and references a function as
`{package}.module:function`. Each function is pure and deterministic, and works on a scalar (the
online path: one request) and on a pandas Series (the offline path: a whole column).

## Develop

```sh
python -m venv .venv && . .venv/bin/activate
pip install -e '.[test]'    # editable: every project in this environment sees your edits
python -m pytest            # scalar and Series agree, for every function
```

Functions live in modules under `src/{package}/`, defined with `def` at the top of the module:
`engine validate` finds them by reading the files, without importing them. Give every new
function a test that calls it on a scalar and on a Series.

## Versions

The version in `pyproject.toml` follows semantic versioning, because pipeline projects pin a
range (`>=1.4,<2`) and upgrade on purpose:

- a change of what any existing function returns (a bug fix too), or a function removed or
  renamed: a new major version, `1.4.2` -> `2.0.0` (below 1.0, a new minor one: `0.3.1` -> `0.4.0`);
- a new function or module: a new minor version, `1.4.2` -> `1.5.0`;
- anything that changes no output (docs, speed, tests): a new patch version, `1.4.2` -> `1.4.3`.

Never publish different code under a version that is already published.

## Build and publish

```sh
pip install build twine
python -m build                                   # dist/*.whl and dist/*.tar.gz
twine upload dist/*                               # to PyPI, or to a private index:
twine upload --repository-url https://pypi.example.com/ dist/*
```

Projects then install it with `pip install '{dist}{requirement_range('0.1.0')}'` (add
`--index-url https://pypi.example.com/simple/` for a private index).

## Use it from a pipeline project

A new project, wired to this library's `time:hour_of_day` (its range computed from the installed
version):

```sh
pip install -e PATH/TO/THIS/FOLDER   # or the published version
engine init --uses {dist} my_project
```

An existing project declares it in a spec and references its functions:

```yaml
{example}
```

`engine validate` checks that the installed version is in the range and that each reference
names a function of it; after an upgrade, `engine plan` shows what the new version re-runs.
""",
    }


def init_library(directory: str | Path, name: str | None = None) -> Library:
    """Write a new feature library into ``directory`` (which must not exist or be empty)."""
    root = Path(directory)
    dist, package = library_name(root, name)
    check_empty(root, directory, marker_hint=False)
    return Library(dist, package, write_files(root, library_files(dist, package)))


@dataclass(frozen=True)
class _Function:
    module: str
    name: str
    inputs: tuple[str, ...]
    returns: str | None
    summary: str


def _public_functions(top: str) -> list[_Function]:
    """The public top-level functions of the installed package ``top``, read from its modules'
    syntax trees (private modules and tests skipped); nothing is imported."""
    from engine.compiler.libraries import package_files as installed_files

    found = []
    for rel, path in installed_files(top):
        parts = rel[:-3].split("/")
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(p.startswith("_") or p in ("tests", "test") or p.startswith("test_") for p in parts):
            continue
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (OSError, SyntaxError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                args = node.args.posonlyargs + node.args.args
                required = args[: len(args) - len(node.args.defaults)]
                returns = node.returns.id if isinstance(node.returns, ast.Name) else None
                doc = (ast.get_docstring(node) or "").strip().splitlines()
                found.append(_Function(".".join(parts), node.name, tuple(a.arg for a in required), _RETURNS.get(returns or ""), doc[0] if doc else ""))
    return found


def _functions_text(name: str, dist: str, version: str, functions: list[_Function], used: set[str]) -> str:
    lines = [
        f"# yaml-language-server: $schema=../{SCHEMA_FILE}",
        f"# The public functions of the feature library {dist} {version}, as engine init found them.",
        "# To use one, uncomment it (and the functions: line), set inputs to the columns passed in order",
        "# (written here as the function's parameters) and returns to what it returns: int64, float64,",
        "# string, bool or timestamp; then list it under a feature view's on_demand.",
        "spec_version: 1",
        f"project: {name}",
        "",
        "# functions:",
    ]
    for fn in functions:
        if fn.summary:
            lines.append(f"#   # {fn.summary}")
        note = "   # specs/project.yaml uses it" if f"{fn.module}:{fn.name}" in used else ""
        lines.append(f"#   {fn.name}: {{python: {fn.module}:{fn.name}, inputs: [{', '.join(fn.inputs)}], returns: {fn.returns or 'TYPE'}}}{note}")
    if not functions:
        lines.append("#   (none found: the library has no public top-level functions)")
    return "\n".join(lines) + "\n"


def _installed_library(dist: str) -> tuple[Installed, str]:
    """The installed distribution ``dist`` and the import name to scaffold from; UsageError when
    it is not installed (did-you-mean among installed ones) or none of its packages is found."""
    from engine.compiler import libraries

    hint = f"install it into this Python environment ({sys.executable}) first: pip install -e PATH/TO/LIBRARY, or pip install {dist}"
    try:
        lib = libraries.installed(dist)
        names = [] if lib is not None else libraries.installed_names()
    except libraries.LibraryError as exc:
        raise UsageError(f"feature library '{dist}': {exc}") from exc
    if lib is None:
        close = did_you_mean(libraries.canonical(dist), {libraries.canonical(n) for n in names})
        raise UsageError(f"feature library '{dist}' is not installed; {close + ' Or ' if close else ''}{hint}")
    packages = [t for t in lib.top_level if libraries.package_files(t)]
    if not packages:
        raise UsageError(f"feature library '{lib.name}' {lib.version} is installed, but none of its packages ({', '.join(lib.top_level) or 'none listed'}) can be found on the import path; {hint}")
    preferred = libraries.canonical(lib.name).replace("-", "_")
    return lib, (preferred if preferred in packages else packages[0])


def init_using(directory: str | Path, dist: str, name: str | None = None) -> UsingProject:
    """Write a new pipeline project into ``directory`` whose specs declare the installed feature
    library ``dist`` (``requires:``, a range around its installed version) and call its
    ``time:hour_of_day``; a library without it leaves the sample spec on the project's own package,
    and ``specs/library_functions.yaml`` lists what the library offers."""
    from engine.compiler.libraries import canonical

    root = Path(directory)
    name = checked_name(root, name)
    check_empty(root, directory)
    lib, package = _installed_library(dist)
    dist_name = canonical(lib.name)
    requirement = requirement_range(lib.version)
    functions = _public_functions(package)
    wired = any(f.module == f"{package}.time" and f.name == "hour_of_day" for f in functions)
    own = f"{name}_features"
    if not wired and own == package:
        raise UsageError(f"the project's own package '{own}' would hide the library's package '{package}'; pass another --name")
    module = f"{package}.time" if wired else f"{own}.time"
    requires = f'requires:   # feature libraries: installed distributions whose functions the specs may call\n  - {{package: {dist_name}, version: "{requirement}"}}\n'
    readme = readme_text(name, _layout(package, own, wired), "tests of the feature functions the specs use", _library_section(dist_name, lib.version, package, requirement, wired))
    files = project_files(name, module, readme, requires)
    files |= {"tests/test_features.py": features_test_text(module)} if wired else package_files(name)
    files["specs/library_functions.yaml"] = _functions_text(name, dist_name, lib.version, functions, {f"{module}:hour_of_day"})
    return UsingProject(dist_name, lib.version, requirement, package, wired, write_files(root, files))


def _layout(package: str, own: str, wired: bool) -> str:
    functions = "" if wired else f"`{own}/` (this project's own feature functions), "
    return f"""Layout: `specs/` (YAML; `specs/library_functions.yaml` lists the library's functions),
{functions}`data/` (sample data), `tests/`, `schemas/` (the spec JSON Schema for editors; refresh
it after upgrading engine with `engine schema > {SCHEMA_FILE}`).
"""


def _library_section(dist: str, version: str, package: str, requirement: str, wired: bool) -> str:
    uses = (
        f"The sample spec's feature function, `{package}.time:hour_of_day`, comes from it."
        if wired
        else f"The library has no `{package}.time:hour_of_day`, so the sample spec calls this project's own\n"
        "package; `specs/library_functions.yaml` lists the library's functions to use instead."
    )
    return f"""
## Feature library

This project uses the feature library `{dist}` (import name `{package}`; version {version}
was installed when the project was made). `specs/project.yaml` declares the versions it accepts:

```yaml
requires:
  - {{package: {dist}, version: "{requirement}"}}
```

{uses}
The library is not part of this repository: install it wherever engine runs (your machine, CI,
the scheduler) with `pip install '{dist}{requirement}'`, or with `pip install -e PATH/TO/LIBRARY`
while developing both. `engine validate` checks that the installed version is in the range and
that every reference names one of its functions.

To upgrade: install the new version, move the range in `requires:` (a new major version may
change what a function returns), then

```sh
engine validate   # the references still name functions of the new version
engine plan       # what the new version changes: what re-runs, which models retrain
engine apply
```
"""
