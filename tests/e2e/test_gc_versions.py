"""`engine gc` collects feature group and view versions that nothing references (issue 10,
item 2): not declared, not joined by number, no registered model version trained on them — once
published longer than `storage.retention` ago. What is referenced stays readable."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine import api
from engine.errors import EngineError
from engine.scaffold import init_project
from tests.conftest import run_engine

EXTRA_GROUP = """
  ratings:
    primary_key: [driver_id]
    sql: SELECT driver_id, rating FROM drivers_raw
"""
EXTRA_VIEW = """
  driver_view:
    spine: trips
    label: tipped
    features: [distance_km]
    join:
      - {feature_group: ratings, on: [driver_id], prefix: driver_}
"""
BUMPED = """
  ratings:
    version: 2
    primary_key: [driver_id]
    sql: SELECT driver_id, rating AS score FROM drivers_raw
"""


def _apply(root: Path) -> None:
    code, out, err = run_engine("apply", str(root))
    assert code == 0, out + err


def _gc(root: Path) -> str:
    code, out, err = run_engine("gc", str(root))
    assert code == 0, out + err
    return out


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "tips"
    init_project(root, "tips")
    spec = root / "specs" / "project.yaml"
    text = spec.read_text().replace("project: tips\n", "project: tips\nstorage: {retention: 1s}\n", 1)
    text = text.replace("feature_views:\n", "feature_views:\n" + EXTRA_VIEW.lstrip("\n"), 1)
    spec.write_text(text.replace("\nfunctions:\n", EXTRA_GROUP + "\nfunctions:\n", 1))
    _apply(root)
    return root


def test_superseded_and_removed_versions_are_collected_and_referenced_ones_kept(project) -> None:
    spec = project / "specs" / "project.yaml"
    text = spec.read_text()
    # ratings gets a version 2 (a removed column needs one) that no view reads; driver_view, which
    # no model was trained on, leaves the spec. drivers gets a version 2 too, and so tips (model
    # versions were trained on tips@1, which read drivers@1: both stay).
    text = text.replace(EXTRA_GROUP, BUMPED).replace(EXTRA_VIEW.lstrip("\n"), "")
    text = text.replace("  drivers:\n    primary_key: [driver_id]\n    sql: SELECT driver_id, rating, years FROM drivers_raw",
                        "  drivers:\n    version: 2\n    primary_key: [driver_id]\n    sql: SELECT driver_id, rating FROM drivers_raw")
    spec.write_text(text.replace("  tips:\n    spine: trips", "  tips:\n    version: 2\n    spine: trips", 1))
    _apply(project)
    assert len(api.read_feature_group(project, "ratings", version=1)) > 0  # still readable before gc
    time.sleep(1.2)  # past storage.retention

    out = _gc(project)
    assert "feature_group:ratings@1 (no longer declared or used)" in out
    assert "feature_view:driver_view@1 (no longer declared or used)" in out
    assert "feature_view:tips@1" not in out and "feature_group:drivers@1" not in out  # model versions use them
    assert "feature_group:drivers@2" not in out and "feature_group:trips@1" not in out and "feature_group:ratings@2" not in out
    with pytest.raises(EngineError):
        api.read_feature_group(project, "ratings", version=1)
    assert len(api.read_feature_group(project, "drivers", version=1)) > 0
    assert len(api.read_feature_group(project, "ratings")) > 0
    assert len(api.read_feature_view(project, "tips")) > 0
    # Nothing left to collect; the project still applies with nothing to do.
    assert "(no longer declared or used)" not in _gc(project)
    code, out, err = run_engine("apply", str(project))
    assert code == 0 and "No changes." in out, out + err


def test_a_view_version_a_model_version_was_trained_on_is_kept(project) -> None:
    spec = project / "specs" / "project.yaml"
    # tips gets version 2; model versions trained on tips@1 keep it.
    spec.write_text(spec.read_text().replace("  tips:\n    spine: trips", "  tips:\n    version: 2\n    spine: trips", 1))
    _apply(project)
    time.sleep(1.2)
    out = _gc(project)
    assert "feature_view:tips@1" not in out
    from engine.session import reading
    from engine.state import metadata
    from engine.state.workspace import Workspace

    with reading(Workspace.for_project(project)) as stores:
        versions = {(r["name"], r["version"]) for r in metadata.feature_view_versions(stores.backend.catalog)}
    assert {("tips", 1), ("tips", 2)} <= versions


def test_nothing_is_collected_within_the_retention_period(tmp_path) -> None:
    root = tmp_path / "tips"
    init_project(root, "tips")
    _apply(root)
    spec = root / "specs" / "project.yaml"
    spec.write_text(spec.read_text().replace("  drivers:\n    primary_key", "  drivers:\n    version: 2\n    primary_key", 1).replace("  tips:\n    spine", "  tips:\n    version: 2\n    spine", 1))
    _apply(root)
    assert "no longer declared" not in _gc(root)  # default retention: 7 days
    assert len(api.read_feature_group(root, "drivers", version=1)) > 0
