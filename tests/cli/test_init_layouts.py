"""`engine init --layout library` and `engine init --uses DIST` from the command line (issue 14,
item 3): usage errors exit 2 and write nothing; a library generated, pip-installed and declared by
a generated project trains a model and scores online with the library's function."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli.main import cli
from tests.conftest import run_engine

ROWS = json.dumps([{"driver_id": 3, "distance_km": 12.5, "requested_at": "2024-02-20T10:00:00Z"}])


def _init(*args: str):
    return CliRunner().invoke(cli, ["init", *args])


@pytest.mark.parametrize(
    "args,message",
    [
        (["--uses", "shared-features", "--layout", "library"], "--uses makes a new pipeline project; it can't be combined with --layout library"),
        (["--uses", "shared-features", "--marker-only"], "--uses makes a new pipeline project; it can't be combined with --marker-only"),
        (["--layout", "library", "--marker-only"], "--marker-only marks an existing engine project; it can't be combined with --layout library"),
        (["--layout", "poly"], "Invalid value for '--layout'"),
        (["--layout", "library", "--name", "Shared_Features"], "library name 'Shared_Features' must be lowercase letters, digits and -"),
    ],
)
def test_incompatible_or_bad_options_exit_2_and_write_nothing(tmp_path: Path, args, message):
    result = _init(str(tmp_path / "p"), *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "p").exists()


def test_uses_a_library_that_is_not_installed_exits_2_with_the_closest_installed_name(tmp_path: Path):
    rc, out, err = run_engine("init", "--uses", "scikit-lern", str(tmp_path / "p"))
    assert rc == 2 and "Traceback" not in err
    assert "feature library 'scikit-lern' is not installed; did you mean 'scikit-learn'?" in err
    assert "pip install -e PATH/TO/LIBRARY" in err
    assert not (tmp_path / "p").exists()


def test_default_layout_is_the_monorepo_project(tmp_path: Path):
    for folder, args in (("a", ()), ("b", ("--layout", "monorepo"))):
        result = _init(str(tmp_path / folder), *args)
        assert result.exit_code == 0, result.output
    files = {p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("*") if p.is_file()}
    assert files == {
        ".gitignore", "README.md", "engine.yaml", "pyproject.toml", "schemas/engine.schema.json", "specs/project.yaml",
        "data/trips.csv", "data/drivers.csv", "a_features/__init__.py", "a_features/time.py", "tests/test_features.py",
        "tests/conftest.py",
    }
    assert "requires" not in (tmp_path / "a/specs/project.yaml").read_text()
    assert (tmp_path / "b/b_features/time.py").read_text() == (tmp_path / "a/a_features/time.py").read_text()


def test_library_layout_from_the_command_line(tmp_path: Path):
    result = _init("--layout", "library", str(tmp_path / "shared_features"))
    assert result.exit_code == 0, result.output
    assert "feature library shared-features (import shared_features)" in result.output
    assert "pip install -e" in result.output
    assert (tmp_path / "shared_features/src/shared_features/time.py").is_file()
    result = _init("--layout", "library", str(tmp_path / "shared_features"))
    assert result.exit_code == 2 and "is not empty" in result.output


def _pip_install(library: Path, site: Path) -> None:
    """Install the library as a user would (a wheel built by pip in an isolated build env)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(library)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_pip_installed_library_serves_a_project_made_with_uses(tmp_path: Path):
    """End to end: library -> pip install -> engine init --uses -> validate, apply (a model is
    trained with the library's hour_of_day), and the online path scores with it."""
    library, site, root = tmp_path / "shared_features", tmp_path / "site", tmp_path / "rides"
    rc, _, err = run_engine("init", "--layout", "library", str(library))
    assert rc == 0, err
    _pip_install(library, site)
    assert sorted(p.name for p in site.iterdir()) == ["shared_features", "shared_features-0.1.0.dist-info"]
    with_library = {"PYTHONPATH": str(site)}

    rc, out, err = run_engine("init", "--uses", "shared-features", str(root), env=with_library)
    assert rc == 0, err
    assert "using feature library shared-features 0.1.0 (requires >=0.1,<0.2" in out
    assert not (root / "rides_features").exists()
    rc, out, err = run_engine("validate", cwd=root, env=with_library)
    assert rc == 0, err
    rc, out, err = run_engine("apply", "--format", "json", cwd=root, env=with_library)
    assert rc == 0, err
    assert {s["status"] for s in json.loads(out)["steps"]} == {"ran"}

    rc, out, err = run_engine("show", "models", "--format", "json", cwd=root, env=with_library)
    assert rc == 0, err
    assert [(m["name"], m["version"]) for m in json.loads(out)] == [("tip_model", 1)]
    rc, out, err = run_engine("show", "model", "tip_model", "--format", "json", cwd=root, env=with_library)
    assert rc == 0, err
    manifest = json.loads(out)["manifest"]
    assert "hour_of_day" in manifest["feature_columns"]
    assert manifest["function_code"]["hour_of_day"]["python"] == "shared_features.time:hour_of_day"

    proc = subprocess.run([sys.executable, "-m", "engine", "predict", "api"], input=ROWS, cwd=root, capture_output=True, text=True,
                          env={**os.environ, **with_library}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    [prediction] = json.loads(proc.stdout)["predictions"]
    assert prediction["status"] == "ok" and set(prediction["probabilities"]) == {"False", "True"}
    # The function comes from the installed library only: without it, the online path refuses.
    proc = subprocess.run([sys.executable, "-m", "engine", "predict", "api"], input=ROWS, cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": ""}, timeout=120)
    assert proc.returncode == 3 and "library 'shared-features' is not installed" in proc.stdout + proc.stderr

    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=root, capture_output=True,
                           text=True, env={**os.environ, **with_library}, timeout=120)
    assert tests.returncode == 0 and "1 passed" in tests.stdout, tests.stdout + tests.stderr
