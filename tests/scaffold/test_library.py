"""Scaffolds for feature libraries (issue 14, item 3): `engine init --layout library` writes a
pip-installable library; `engine init --uses DIST` a project that declares an installed one.

Libraries are "installed" here as an installer leaves them (a package folder and a ``.dist-info``
in a site folder on ``sys.path``), so each test picks the installed version; the real pip install
is in tests/cli/test_init_layouts.py.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from hypothesis import given, strategies as st

from engine import api
from engine.errors import UsageError
from engine.scaffold.library import init_library, init_using, library_files, library_name, requirement_range

GEO_DISTANCE = '''"""Distances."""


def haversine(lat1, lon1, lat2, lon2, radius=6371.0) -> float:
    """Great-circle distance in km.

    More text.
    """
    return 0.0


def _private(x):
    return x
'''


def install(site: Path, name: str, version: str, files: dict[str, str], *, top_level: bool = True) -> None:
    """Install distribution ``name`` at ``version`` into ``site``: its files and a .dist-info."""
    for rel, text in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    tops = sorted({rel.split("/")[0].removesuffix(".py") for rel in files})
    if top_level:
        (info / "top_level.txt").write_text("\n".join(tops) + "\n")
    (info / "RECORD").write_text("".join(f"{rel},,\n" for rel in files) + f"{info.name}/METADATA,,\n")
    importlib.invalidate_caches()


def installed_library(site: Path, dist: str, version: str) -> None:
    """The library `engine init --layout library` writes, installed at ``version``."""
    package = dist.replace("-", "_")
    files = library_files(dist, package)
    install(site, dist, version, {rel.removeprefix("src/"): text for rel, text in files.items() if rel.startswith("src/")})


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for name in [n for n in sys.modules if n.split(".")[0] in ("shared_features", "geo_utils")]:
        sys.modules.pop(name)


def relative_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


# --- names -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "folder,name,expected",
    [
        ("shared_features", None, ("shared-features", "shared_features")),
        ("Shared Features.v2", None, ("shared-features-v2", "shared_features_v2")),
        ("whatever", "ride_features", ("ride-features", "ride_features")),
        ("whatever", "ride-features2", ("ride-features2", "ride_features2")),
    ],
)
def test_library_names_are_lowercase_with_hyphens(tmp_path, folder, name, expected):
    assert library_name(tmp_path / folder, name) == expected


@pytest.mark.parametrize(
    "folder,name,message",
    [
        ("x", "Shared-Features", "library name 'Shared-Features' must be lowercase letters, digits and -"),
        ("x", "2features", "must be lowercase letters"),
        ("x", "ride--features", "must be lowercase letters"),
        ("123", None, "library name '123' must be lowercase letters, digits and - (starting with a letter); pass --name"),
        ("json", None, "would be imported as 'json', which is a module of the Python standard library; pass another --name"),
        ("x", "engine", "would be imported as 'engine', which is engine"),
    ],
)
def test_bad_library_names_are_usage_errors(tmp_path, folder, name, message):
    with pytest.raises(UsageError) as info:
        library_name(tmp_path / folder, name)
    assert message in str(info.value)


# --- the library layout ------------------------------------------------------------------------------


def test_library_layout_is_a_src_package_with_tests_and_a_readme(tmp_path):
    root = tmp_path / "shared_features"
    library = init_library(root)
    assert (library.dist, library.package) == ("shared-features", "shared_features")
    assert relative_files(root) == {
        "pyproject.toml", "README.md", ".gitignore", "src/shared_features/__init__.py",
        "src/shared_features/time.py", "tests/test_time.py",
    }
    assert sorted(library.files) == sorted(root / f for f in relative_files(root))
    meta = tomllib.loads((root / "pyproject.toml").read_text())
    assert meta["build-system"]["requires"] == ["setuptools>=64"]
    assert {k: meta["project"][k] for k in ("name", "version", "requires-python", "dependencies")} == {
        "name": "shared-features", "version": "0.1.0", "requires-python": ">=3.11", "dependencies": ["pandas>=2.1"],
    }
    assert meta["tool"]["setuptools"]["packages"]["find"]["where"] == ["src"]
    readme = (root / "README.md").read_text()
    for step in ("pip install -e", "python -m pytest", "python -m build", "twine upload", "semantic versioning",
                 "engine init --uses shared-features my_project", "engine plan"):
        assert step in readme, step
    snippet = yaml.safe_load(readme.split("```yaml\n", 1)[1].split("```", 1)[0])
    assert snippet["requires"] == [{"package": "shared-features", "version": ">=0.1,<0.2"}]
    assert snippet["functions"]["hour_of_day"]["python"] == "shared_features.time:hour_of_day"
    assert "dist/" in (root / ".gitignore").read_text()


def test_library_functions_agree_on_a_scalar_and_a_series(tmp_path):
    """The library's own tests and doctests pass (run as its developer would, from src/)."""
    root = tmp_path / "shared_features"
    init_library(root)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--doctest-modules", "src", "tests"],
        cwd=root, env={**os.environ, "PYTHONPATH": str(root / "src")}, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 passed" in proc.stdout  # two tests, two doctests


def test_library_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="is not empty") as info:
        init_library(tmp_path / "lib")
    assert "--marker-only" not in str(info.value)  # a library is no engine project to mark
    assert relative_files(tmp_path / "lib") == {"notes.txt"}


# --- the range a project declares --------------------------------------------------------------------


@pytest.mark.parametrize(
    "version,expected",
    [
        ("0.1.0", ">=0.1,<0.2"),
        ("0.3.1", ">=0.3,<0.4"),
        ("0.0.7", ">=0.0,<0.1"),
        ("1.4.2", ">=1.4,<2"),
        ("2", ">=2.0,<3"),
        ("10.0.3.post1", ">=10.0,<11"),
        ("1.4.2+local.7", ">=1.4,<2"),
        ("2.0.0rc1", ">=2.0.0rc1,<3"),
        ("0.5.dev3", ">=0.5.dev3,<0.6"),
        ("1!2.3", ">=1!2.3,<1!3"),
    ],
)
def test_requirement_range_is_semver_compatible(version, expected):
    assert requirement_range(version) == expected


def test_a_version_that_is_not_pep_440_is_a_usage_error():
    with pytest.raises(UsageError, match="not a PEP 440 version"):
        requirement_range("latest")


@given(
    major=st.integers(0, 12), minor=st.integers(0, 30), patch=st.integers(0, 30),
    suffix=st.sampled_from(["", "rc1", "a2", "b1", ".post3", ".dev4", "+local.1"]),
)
def test_requirement_range_holds_the_installed_version_and_what_semver_calls_compatible(major, minor, patch, suffix):
    """Oracle: the range, read by `packaging` (what pip reads), holds the version and its patches
    (and its minors from 1.0), and neither the next breaking version nor the previous minor."""
    packaging = pytest.importorskip("packaging.specifiers")
    version = f"{major}.{minor}.{patch}{suffix}"
    spec = packaging.SpecifierSet(requirement_range(version))
    assert spec.contains(version, prereleases=True)
    assert spec.contains(f"{major}.{minor}.{patch + 1}")
    assert spec.contains(f"{major}.{minor + 1}.0") == (major > 0)
    assert not spec.contains(f"{major + 1}.0.0" if major else f"0.{minor + 1}.0")
    if minor:
        assert not spec.contains(f"{major}.{minor - 1}.99")


# --- a project that uses an installed library ----------------------------------------------------------


def test_uses_wires_the_library_into_a_project_that_validates(site, tmp_path):
    installed_library(site, "shared-features", "1.4.2")
    root = tmp_path / "rides"
    project = init_using(root, "Shared_Features")  # any spelling of the distribution's name
    assert (project.dist, project.version, project.requirement, project.package, project.wired) == (
        "shared-features", "1.4.2", ">=1.4,<2", "shared_features", True)
    files = relative_files(root)
    assert {"engine.yaml", "specs/project.yaml", "data/trips.csv", "data/drivers.csv", "tests/test_features.py",
            "schemas/engine.schema.json", "specs/library_functions.yaml", "README.md", ".gitignore"} == files
    spec = yaml.safe_load((root / "specs/project.yaml").read_text())
    assert spec["requires"] == [{"package": "shared-features", "version": ">=1.4,<2"}]
    assert spec["functions"]["hour_of_day"] == {"python": "shared_features.time:hour_of_day", "inputs": ["requested_at"], "returns": "int64"}
    assert "from shared_features.time import hour_of_day" in (root / "tests/test_features.py").read_text()
    listed = (root / "specs/library_functions.yaml").read_text()
    assert "#   day_of_week: {python: shared_features.time:day_of_week, inputs: [ts], returns: TYPE}" in listed
    assert "#   hour_of_day: {python: shared_features.time:hour_of_day" in listed and "specs/project.yaml uses it" in listed
    assert yaml.safe_load(listed) == {"spec_version": 1, "project": "rides"}
    readme = (root / "README.md").read_text()
    assert "feature library `shared-features`" in readme and "engine plan" in readme and 'version: ">=1.4,<2"' in readme
    assert "shared_features" not in sys.modules  # read from metadata and files, never imported
    checked = api.validate(root)
    assert [(r.package, r.version) for r in checked.project.requires] == [("shared-features", ">=1.4,<2")]


def test_uses_a_0x_library_declares_its_minor_version(site, tmp_path):
    installed_library(site, "shared-features", "0.3.1")
    project = init_using(tmp_path / "rides", "shared-features")
    assert project.requirement == ">=0.3,<0.4"
    assert 'version: ">=0.3,<0.4"' in (tmp_path / "rides/specs/project.yaml").read_text()


def test_uses_a_library_without_hour_of_day_keeps_the_projects_package_and_lists_the_library(site, tmp_path):
    install(site, "geo-utils", "2.3.1", {
        "geo_utils/__init__.py": "from .distance import haversine\n\n\ndef is_far(km) -> bool:\n    return km > 10\n",
        "geo_utils/distance.py": GEO_DISTANCE,
        "geo_utils/_internal.py": "def helper(x):\n    return x\n",
        "geo_utils/tests/test_distance.py": "def test_it():\n    pass\n",
    }, top_level=False)  # import names from the file list
    root = tmp_path / "rides"
    project = init_using(root, "geo-utils")
    assert (project.requirement, project.package, project.wired) == (">=2.3,<3", "geo_utils", False)
    assert {"rides_features/time.py", "pyproject.toml", "tests/conftest.py"} <= relative_files(root)
    spec = yaml.safe_load((root / "specs/project.yaml").read_text())
    assert spec["requires"] == [{"package": "geo-utils", "version": ">=2.3,<3"}]
    assert spec["functions"]["hour_of_day"]["python"] == "rides_features.time:hour_of_day"
    listed = (root / "specs/library_functions.yaml").read_text()
    entries = [line for line in listed.splitlines() if line.startswith("#   ") and "python:" in line]
    assert entries == [
        "#   is_far: {python: geo_utils:is_far, inputs: [km], returns: bool}",
        "#   haversine: {python: geo_utils.distance:haversine, inputs: [lat1, lon1, lat2, lon2], returns: float64}",
    ]
    assert "#   # Great-circle distance in km.\n" in listed
    assert "no `geo_utils.time:hour_of_day`" in (root / "README.md").read_text()
    api.validate(root)


def test_uses_a_library_that_is_not_installed_names_it_and_the_closest_installed_one(site, tmp_path):
    installed_library(site, "shared-features", "1.0.0")
    with pytest.raises(UsageError) as info:
        init_using(tmp_path / "rides", "shared-featurs")
    message = str(info.value)
    assert "feature library 'shared-featurs' is not installed" in message
    assert "did you mean 'shared-features'?" in message and "pip install -e PATH/TO/LIBRARY" in message
    assert not (tmp_path / "rides").exists()


def test_uses_refuses_a_non_empty_folder_before_reading_the_library(site, tmp_path):
    (tmp_path / "rides").mkdir()
    (tmp_path / "rides" / "x.txt").write_text("")
    with pytest.raises(UsageError, match="is not empty"):
        init_using(tmp_path / "rides", "not-installed-anywhere")
