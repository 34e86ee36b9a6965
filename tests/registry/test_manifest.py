"""The model manifest as a dataclass: ``ModelManifest.to_json`` is exactly the stored JSON (the same
bytes, so the same sha256 the registry index and the online snapshot check), ``from_json`` reads
every manifest training writes, and readers get typed fields."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from engine.registry.artifacts import Artifact
from engine.registry.base import ModelManifest, TrainingData
from engine.registry.local import _manifest_bytes
from engine.session import reading
from engine.state.workspace import Workspace
from tests.inference.conftest import apply_models, make_project

REGISTRY_KEYS = {"name", "version", "fingerprint", "artifact", "created_at", "engine_version"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[list, Path]:
    """The registered versions of the rides project and its models directory."""
    root = make_project(tmp_path_factory.mktemp("manifest") / "rides")
    apply_models(root)
    with reading(Workspace.for_project(root)) as stores:
        return stores.registry.list(), stores.registry.models_dir


@pytest.fixture(scope="module")
def versions(trained: tuple[list, Path]) -> list:
    return trained[0]


def test_to_json_is_the_stored_manifest_byte_for_byte(trained: tuple[list, Path]) -> None:
    versions, models_dir = trained
    assert {mv.name for mv in versions} == {"tips_xgb", "tips_logreg"}
    for mv in versions:
        typed = ModelManifest.from_json(mv.manifest)
        assert typed.to_json() == mv.manifest
        stored = (models_dir / mv.name / str(mv.version) / "manifest.json").read_bytes()
        assert _manifest_bytes(typed.to_json()) == stored
        assert hashlib.sha256(_manifest_bytes(typed.to_json())).hexdigest() == hashlib.sha256(stored).hexdigest()


def test_fields_are_typed(versions: list) -> None:
    mv = next(v for v in versions if v.name == "tips_xgb")
    info = mv.info
    assert info is mv.info  # parsed once
    assert (info.model, info.name, info.version, info.fingerprint) == ("tips_xgb", "tips_xgb", mv.version, mv.fingerprint)
    assert (info.task, info.feature_view, info.feature_view_version, info.feature_view_ref) == ("classifier", "tips", 1, "feature_view:tips@1")
    assert isinstance(info.training_data, TrainingData) and set(info.training_data.rows) >= {"train", "test"}
    assert isinstance(info.artifact, Artifact) and info.artifact == mv.artifact
    assert isinstance(info.feature_columns, tuple) and isinstance(info.label_classes, tuple)
    assert info.split["by"] == "time" and type(info.split["by"]) is str


def test_before_registration_the_registry_keys_are_absent(versions: list) -> None:
    info = versions[0].info
    trained = dataclasses.replace(info, **{k: None for k in REGISTRY_KEYS})
    assert set(trained.to_json()) == set(versions[0].manifest) - REGISTRY_KEYS
    assert ModelManifest.from_json(trained.to_json()) == trained


def test_a_manifest_without_a_key_training_writes_is_refused(versions: list) -> None:
    broken = {k: v for k, v in versions[0].manifest.items() if k != "feature_columns"}
    with pytest.raises(KeyError, match="feature_columns"):
        ModelManifest.from_json(broken)


def test_show_model_reads_the_typed_manifest(versions: list) -> None:
    from engine.inspect import _model_summary

    mv = versions[0]
    summary = _model_summary(mv)
    assert summary["feature_view"] == "feature_view:tips@1" and summary["estimator"] == mv.manifest["estimator"]
    assert summary["metrics"] == mv.manifest["metrics"] and summary["training_rows"] == mv.manifest["training_data"]["rows"]
