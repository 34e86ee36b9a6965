"""issue 11, item 9: the same spec and data give byte-identical model artifacts (the same sha256)
for every estimator kind the project trains, in two workspaces built by two processes."""

from __future__ import annotations

import shutil
from pathlib import Path

from engine import api
from tests.conftest import run_engine
from tests.e2e.test_training import rides  # noqa: F401 (the fixture)


def test_two_applies_of_the_same_project_give_the_same_artifact_bytes(rides: Path, tmp_path: Path) -> None:  # noqa: F811
    twin = tmp_path / "twin"
    shutil.copytree(rides, twin)
    for root in (rides, twin):
        rc, _, err = run_engine("apply", str(root))
        assert rc == 0, err
    shas = [{m["name"]: api.show_model(root, m["name"])["manifest"]["artifact"]["sha256"] for m in api.list_models(root)} for root in (rides, twin)]
    assert set(shas[0]) == {"tips_xgb", "tips_logreg"}
    assert shas[0] == shas[1]
