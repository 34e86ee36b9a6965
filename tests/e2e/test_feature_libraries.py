"""Feature libraries (issue 14, items 1–2): a project declares installed, versioned distributions
under ``requires`` and references their functions; validate checks the declaration from metadata
without importing; the library's version and code go into fingerprints and model manifests; an
upgrade shows in ``plan`` and is refused at scoring and serving time unless --allow-code-drift.

The libraries here are installed the way an installer leaves them — a package folder and its
``.dist-info`` (METADATA, top_level.txt, RECORD) in a site folder on ``sys.path`` — so that each
test controls the installed version. (The example library, installed by pip, is tested in
tests/examples.)
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine import api
from engine.cli.main import cli
from engine.compiler import libraries as libs
from engine.errors import PlanError, SpecError
from engine.scaffold import init_project
from tests.conftest import run_engine

TIME_PY = '''"""Ride time features."""

import pandas as pd


def hour_of_day(ts):
    """Hour (0-23, UTC) of a timestamp."""
    if isinstance(ts, pd.Series):
        return ts.dt.hour
    return pd.Timestamp(ts).hour


def _helper():
    return 1
'''
UPGRADED = TIME_PY.replace("return ts.dt.hour", "return (ts.dt.hour + 1) % 24").replace("return pd.Timestamp(ts).hour", "return (pd.Timestamp(ts).hour + 1) % 24")
ROW = [{"driver_id": 3, "distance_km": 12.5, "requested_at": "2024-02-20T10:00:00Z"}]


def install(site: Path, name: str, version: str, files: dict[str, str], *, metadata: str | None = None) -> None:
    """Install distribution ``name`` at ``version`` into ``site`` as an installer would (replacing
    any installed version of it): its files, and a .dist-info with METADATA, top_level.txt, RECORD."""
    norm = name.replace("-", "_")
    for old in site.glob(f"{norm}-*.dist-info"):
        shutil.rmtree(old)
    tops = sorted({rel.split("/")[0].removesuffix(".py") for rel in files})
    for top in tops:
        shutil.rmtree(site / top, ignore_errors=True)
    for rel, text in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
    info = site / f"{norm}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(metadata if metadata is not None else f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "top_level.txt").write_text("\n".join(tops) + "\n")
    (info / "RECORD").write_text("".join(f"{rel},,\n" for rel in files) + f"{info.name}/METADATA,,\n")
    import importlib

    importlib.invalidate_caches()


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    """A site folder on sys.path (and PYTHONPATH, for subprocesses) for this test's libraries."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    yield folder
    for name in [n for n in sys.modules if n == "tiplib" or n.startswith("tiplib.")]:
        sys.modules.pop(name)
    libs._owner_cached.cache_clear()


def library_project(root: Path, *, requires: str = '[{package: tip-lib, version: ">=1.0,<2"}]', reference: str = "tiplib.time:hour_of_day") -> Path:
    """The scaffold's project with its own feature package removed: its on-demand function comes
    from the installed library ``tip-lib`` instead."""
    init_project(root, "tips")
    shutil.rmtree(root / "tips_features")
    spec = root / "specs" / "project.yaml"
    text = spec.read_text().replace("python: tips_features.time:hour_of_day", f"python: {reference}")
    spec.write_text(text.replace("project: tips\n", f"project: tips\nrequires: {requires}\n", 1))
    (root / "tests" / "test_features.py").unlink()
    return root


def _problems(root: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        api.validate(root)
    return [p.render() if hasattr(p, "render") else str(p) for p in info.value.problems]


# --- unit: reading installed libraries without importing them ------------------------------------


def test_installed_reads_metadata_and_import_names(site) -> None:
    install(site, "tip-lib", "1.2.0", {"tiplib/__init__.py": "", "tiplib/time.py": TIME_PY})
    found = libs.installed("Tip_Lib")  # any spelling of the name
    assert (found.name, found.version, found.top_level) == ("tip-lib", "1.2.0", ("tiplib",))
    assert libs.installed("no-such-lib") is None
    assert libs.locate("tiplib.time") == site / "tiplib" / "time.py"
    assert libs.locate("tiplib.nope") is None
    assert "tiplib" not in sys.modules  # located, never imported


def test_bound_names_and_function_digest_ignore_docs_and_formatting(tmp_path) -> None:
    f = tmp_path / "m.py"
    f.write_text(TIME_PY + "\nfrom os import path as p\nx = y = 1\ntry:\n    import numpy\nexcept ImportError:\n    pass\n")
    assert {"hour_of_day", "_helper", "pd", "p", "x", "y", "numpy"} <= libs.bound_names(f)
    before = libs.function_digest(f, "hour_of_day")
    f.write_text(TIME_PY.replace('"""Hour (0-23, UTC) of a timestamp."""', "# a comment\n    \"\"\"Other words.\"\"\"\n"))
    assert libs.function_digest(f, "hour_of_day") == before != ""
    f.write_text(UPGRADED)
    assert libs.function_digest(f, "hour_of_day") != before
    assert libs.function_digest(f, "missing") == ""
    f.write_text("from os.path import *\n")
    assert libs.bound_names(f) is None  # can't be known without running it: not refused


def test_the_fingerprint_of_a_library_function_follows_its_version_and_code(site, tmp_path) -> None:
    from engine.compiler.fingerprint import python_package_fingerprint

    install(site, "tip-lib", "1.0.0", {"tiplib/__init__.py": "", "tiplib/time.py": TIME_PY})
    v1 = python_package_fingerprint(tmp_path, "tiplib.time", "hour_of_day")
    assert python_package_fingerprint(tmp_path, "tiplib.time", "hour_of_day") == v1
    install(site, "tip-lib", "1.0.1", {"tiplib/__init__.py": "", "tiplib/time.py": TIME_PY})
    v101 = python_package_fingerprint(tmp_path, "tiplib.time", "hour_of_day")
    assert v101 != v1  # same code, another version: an upgrade is a change
    install(site, "tip-lib", "1.0.1", {"tiplib/__init__.py": "", "tiplib/time.py": UPGRADED})
    assert python_package_fingerprint(tmp_path, "tiplib.time", "hour_of_day") not in (v1, v101)


# --- validate: the declaration and the references ------------------------------------------------


def test_a_declared_installed_library_validates(site, tmp_path) -> None:
    install(site, "tip-lib", "1.3.0", {"tiplib/__init__.py": "", "tiplib/time.py": TIME_PY})
    root = library_project(tmp_path / "p")
    checked = api.validate(root)
    assert [(r.package, r.version) for r in checked.project.requires] == [("tip-lib", ">=1.0,<2")]
    assert "tiplib" not in sys.modules  # validate imports nothing (P6)


def test_bad_declarations_are_all_reported_positioned_with_exit_3(site, tmp_path) -> None:
    install(site, "tip-lib", "2.1.0", {"tiplib/__init__.py": "", "tiplib/time.py": TIME_PY})
    install(site, "other-lib", "0.3.0", {"otherlib/__init__.py": "", "otherlib/geo.py": "def dist(a):\n    return a\n"})
    root = library_project(
        tmp_path / "p",
        requires='[{package: tip-lib, version: ">=1.0,<2"}, {package: tip-libs}, {package: geo-lib, version: "not a range"}]',
    )
    code, out, err = run_engine("validate", str(root))
    assert code == 3, out + err
    text = out + err
    assert "library 'tip-lib' 2.1.0 is installed, outside the declared range '>=1.0,<2'" in text
    assert "library 'tip-libs' is not installed" in text and "did you mean 'tip-lib'?" in text and "pip install 'tip-libs'" in text
    assert "'not a range' is not a version range" in text
    assert "specs/project.yaml:4:" in text and "requires[1].package" in text  # positioned on the declaration
    assert "3 problems found" in text  # the reference to the out-of-range library is not reported again
    assert "Traceback" not in text


def test_references_to_missing_functions_modules_and_undeclared_libraries(site, tmp_path) -> None:
    install(site, "tip-lib", "1.0.0", {"tiplib/__init__.py": "", "tiplib/time.py": TIME_PY})
    install(site, "other-lib", "0.3.0", {"otherlib/__init__.py": "", "otherlib/geo.py": "def dist(a):\n    return a\n"})
    root = library_project(tmp_path / "p", reference="tiplib.time:hour_of_dya")
    spec = root / "specs" / "project.yaml"
    spec.write_text(
        spec.read_text().replace(
            "functions:\n",
            "functions:\n  far: {python: otherlib.geo:dist, inputs: [distance_km], returns: float64}\n"
            "  near: {python: tiplib.clock:hour, inputs: [requested_at], returns: int64}\n",
        )
    )
    code, out, err = run_engine("validate", str(root))
    assert code == 3, out + err
    text = out + err
    assert "module 'tiplib.time' of library 'tip-lib' 1.0.0 has no function 'hour_of_dya'" in text and "did you mean 'hour_of_day'?" in text
    assert "module 'tiplib.clock' not found in library 'tip-lib' 1.0.0" in text
    assert "module 'otherlib.geo' belongs to the installed library 'other-lib' 0.3.0, which the project does not declare" in text
    assert 'requires: [{package: other-lib, version: ">=0.3.0"}]' in text
    assert "3 problems" in text or text.count("error") >= 3


def test_a_distribution_whose_metadata_cant_be_read(site, tmp_path) -> None:
    install(site, "tip-lib", "1.0.0", {"tiplib/__init__.py": "", "tiplib/time.py": TIME_PY}, metadata="Metadata-Version: 2.1\nName: tip-lib\n")
    root = library_project(tmp_path / "p")
    code, out, err = run_engine("validate", str(root))
    assert code == 3, out + err
    assert "the metadata of the installed distribution 'tip-lib' has no Version" in out + err


def test_a_project_function_that_does_not_exist_is_a_validate_error(tmp_path) -> None:
    root = tmp_path / "p"
    init_project(root, "tips")
    spec = root / "specs" / "project.yaml"
    spec.write_text(spec.read_text().replace("tips_features.time:hour_of_day", "tips_features.time:hour_of_the_day"))
    code, out, err = run_engine("validate", str(root))
    assert code == 3, out + err
    assert "module 'tips_features.time' of the project has no function 'hour_of_the_day'" in out + err and "did you mean 'hour_of_day'?" in out + err


# --- apply, train, serve; an upgrade at plan and serving time -------------------------------------


def _plan(root: Path) -> dict[str, str]:
    code, out, err = run_engine("plan", str(root), "--format", "json")
    assert code == 0, out + err
    return {s["id"]: s["reason"] for s in json.loads(out)["steps"]}


def _predict(root: Path, *extra: str):
    return CliRunner().invoke(cli, ["predict", str(root), "api", *extra], input=json.dumps(ROW), catch_exceptions=False)


def test_apply_train_serve_with_a_library_and_an_upgrade(site, tmp_path) -> None:
    install(site, "tip-lib", "1.0.0", {"tiplib/__init__.py": "", "tiplib/time.py": TIME_PY})
    root = library_project(tmp_path / "p")
    code, out, err = run_engine("apply", str(root))
    assert code == 0, out + err

    manifest = api.show_model(root, "tip_model")["manifest"]
    entry = manifest["function_code"]["hour_of_day"]
    assert entry["python"] == "tiplib.time:hour_of_day" and entry["package"] == "tip-lib" and entry["version"] == "1.0.0"
    assert entry["function"] == libs.function_digest(site / "tiplib" / "time.py", "hour_of_day")
    first = _predict(root)
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["predictions"][0]["prediction"] is not None
    assert set(_plan(root).values()) == {"unchanged"}

    # Upgrade within the range: plan shows what changes, scoring refuses the old model.
    install(site, "tip-lib", "1.1.0", {"tiplib/__init__.py": "", "tiplib/time.py": UPGRADED})
    code, out, err = run_engine("plan", str(root))
    assert code == 0 and "Feature libraries changed since the last apply" in out and "  ~ tip-lib 1.0.0 -> 1.1.0" in out, out + err
    reasons = _plan(root)
    assert reasons["feature_view:tips@1"] == "changed" and reasons["model:tip_model"] == "upstream changed"
    assert reasons["feature_group:trips@1"] == reasons["feature_group:driver_activity@1"] == "unchanged"  # what does not use the library stays
    refused = _predict(root)
    assert refused.exit_code == 3, refused.output
    assert "trained with tip-lib 1.0.0, installed: tip-lib 1.1.0" in refused.output and "--allow-code-drift" in refused.output
    from engine.serving.http import create_app
    from engine.state.workspace import Workspace

    checked = api.validate(root)
    with pytest.raises(PlanError, match="trained with tip-lib 1.0.0, installed: tip-lib 1.1.0"):
        create_app(checked, Workspace.for_project(root).root)
    allowed = _predict(root, "--allow-code-drift")
    assert allowed.exit_code == 0, allowed.output

    # The upgrade changes what tips@1 means, and tip_model@1 was trained on it: apply refuses
    # until the view gets a new version; then it retrains with the new library, and the endpoint
    # serves the new model (tip_model@1 stays servable from tips@1, with --allow-code-drift).
    code, out, err = run_engine("apply", str(root))
    assert code == 3 and "Bump feature_views.tips.version to 2" in err and "~ code of tiplib.time:hour_of_day" in err, out + err
    spec = root / "specs" / "project.yaml"
    spec.write_text(spec.read_text().replace("  tips:\n", "  tips:\n    version: 2\n", 1))
    code, out, err = run_engine("apply", str(root))
    assert code == 0, out + err
    assert api.show_model(root, "tip_model")["manifest"]["function_code"]["hour_of_day"]["version"] == "1.1.0"
    again = _predict(root)
    assert again.exit_code == 0, again.output
    from tests.serving.conftest import LiveServer
    from tests.serving.test_http import call

    with LiveServer(root) as server:  # the real endpoint, over HTTP on 127.0.0.1
        status, _, body = call(server.port, "POST", "/jobs/api/predict", ROW[0])
    assert status == 200 and body["predictions"][0]["prediction"] == json.loads(again.output)["predictions"][0]["prediction"], body

    # An upgrade out of the declared range: validate (and so plan and apply) refuse, exit 3.
    install(site, "tip-lib", "2.0.0", {"tiplib/__init__.py": "", "tiplib/time.py": UPGRADED})
    code, out, err = run_engine("plan", str(root))
    assert code == 3 and "library 'tip-lib' 2.0.0 is installed, outside the declared range '>=1.0,<2'" in out + err
