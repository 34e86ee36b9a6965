"""The MLflow registry against a real ``mlflow server`` (tests/support_mlflow.py): what MLflow
users see (lineage tags, params, metrics, signature, aliases), and the faults: an unreachable
server, a tampered artifact (G5), a failed upload or version creation that registers nothing and
an interrupted register that ``check`` reports and ``gc`` removes (G6). The registry contract
itself runs in tests/contract/test_registry.py.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mlflow", reason="mlflow is not installed, so the MLflow registry cannot be tested here")

from engine.errors import ExitCode, StorageIOError, UsageError  # noqa: E402
from engine.registry.mlflow import MlflowRegistry  # noqa: E402
from tests.registry.test_registry import _X, _model  # noqa: E402
from tests.support_mlflow import artifact_path, mlflow_server, new_registry, tamper  # noqa: E402,F401,F811 (the session fixture)


def _manifest(**test_metrics: float) -> dict:
    """What training hands to ``register`` (engine.registry.base.ModelManifest.to_json)."""
    from engine.transforms.model_dependent import FittedTransforms

    return {
        "model": "delay_model",
        "estimator": "sklearn.linear_model.LogisticRegression",
        "task": "classifier",
        "params": {"C": 1.0, "max_iter": 200},
        "seed": 7,
        "class_weight": None,
        "metrics": {"validation": {"roc_auc": 0.75, "log_loss": None}, "test": dict(test_metrics)},
        "metric_warnings": [],
        "feature_view": "delays",
        "feature_view_version": 2,
        "feature_view_fingerprint": "fv0123456789abcd",
        "layout": {},
        "label": "is_delayed",
        "label_classes": [0, 1],
        "feature_columns": ["a", "b", "c"],
        "model_inputs": ["a", "b", "c"],
        "input_schema": {"a": "DOUBLE", "b": "BIGINT", "c": "DOUBLE"},
        "transformers": FittedTransforms(columns=()).to_dict(),
        "split": {"kind": "random", "seed": 7},
        "training_data": {"table": 'training."delay_model__td0123"', "fingerprint": "td0123456789abcd", "rows": {"train": 40}},
        "run_id": "run-20240101-000000",
    }


@pytest.fixture
def registry(mlflow_server, tmp_path: Path) -> MlflowRegistry:
    return new_registry(tmp_path)


def _runs(registry: MlflowRegistry, *, deleted: bool = False) -> list:
    from mlflow.entities import ViewType

    client = registry.remote.client
    view = ViewType.DELETED_ONLY if deleted else ViewType.ACTIVE_ONLY
    runs = client.search_runs([registry.experiment_id()], "tags.`engine.managed` = 'true'", run_view_type=view)
    return [r for r in runs if r.data.tags.get("engine.namespace") == registry.namespace]


def _mlflow_versions(registry: MlflowRegistry) -> list:
    return registry.remote.client.search_model_versions(f"name LIKE '{registry.namespace}.%'")


# --- what MLflow users see ------------------------------------------------------------------------


def test_a_version_carries_lineage_tags_params_metrics_and_a_signature_but_no_mlflow_flavour(registry) -> None:
    mv = registry.register("delay_model", "fp-1", _manifest(roc_auc=0.8, log_loss=0.4), _model())
    client = registry.remote.client
    mlv = client.get_model_version(registry.mlflow_name("delay_model"), "1")
    assert (mv.version, mlv.version) == (1, "1")
    assert mlv.tags["engine.fingerprint"] == "fp-1" and mlv.source.endswith("/artifacts/model")
    run = client.get_run(mlv.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"C": "1.0", "max_iter": "200"}
    assert run.data.metrics == {"validation_roc_auc": 0.75, "test_roc_auc": 0.8, "test_log_loss": 0.4}  # None skipped
    tags = run.data.tags
    assert tags["engine.feature_view"] == "feature_view:delays@2"
    assert tags["engine.feature_view_fingerprint"] == "fv0123456789abcd"
    assert tags["engine.training_data_fingerprint"] == "td0123456789abcd"
    assert tags["engine.fingerprint"] == "fp-1" and tags["engine.run_id"] == "run-20240101-000000"
    assert tags["engine.artifact_sha256"] == mv.artifact.sha256 and tags["engine.artifact_format"] == "skops"
    files = sorted(f.path for f in client.list_artifacts(mlv.run_id, "model"))
    assert files == ["model/MLmodel", "model/manifest.json", "model/model.skops"]
    from mlflow.models import Model

    mlmodel = Model.load(client.download_artifacts(mlv.run_id, "model/MLmodel"))
    assert mlmodel.flavors == {}  # nothing in MLflow can unpickle or load it: the engine's safe format only
    assert [(c.name, c.type.name) for c in mlmodel.signature.inputs.inputs] == [("a", "double"), ("b", "long"), ("c", "double")]
    assert mv.manifest["version"] == 1 and mv.manifest["input_schema"] == {"a": "DOUBLE", "b": "BIGINT", "c": "DOUBLE"}


def test_aliases_round_trip_between_the_engine_and_mlflow(registry) -> None:
    for i in range(2):
        registry.register("delay_model", f"fp-{i}", _manifest(), _model(seed=i))
    client, full = registry.remote.client, registry.mlflow_name("delay_model")
    registry.set_alias("delay_model", "production", 1)
    assert client.get_registered_model(full).aliases == {"production": "1"}
    client.set_registered_model_alias(full, "champion", "2")  # set by someone in the MLflow UI
    assert registry.get("delay_model", "champion").version == 2
    assert [mv.aliases for mv in registry.list("delay_model")] == [("production",), ("champion",)]
    with pytest.raises(UsageError, match="MLflow reserves"):
        registry.set_alias("delay_model", "v1", 1)


def test_retraining_identical_inputs_registers_nothing_new(registry) -> None:
    first = registry.register("delay_model", "fp-1", _manifest(roc_auc=0.8), _model())
    assert registry.register("delay_model", "fp-1", _manifest(roc_auc=0.1), _model(seed=3)) == first
    assert len(_mlflow_versions(registry)) == 1 and len(_runs(registry)) == 1


# --- faults ---------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("operation", ["list", "register", "get"])
def test_an_unreachable_server_is_a_storage_error_naming_the_uri_within_seconds(tmp_path: Path, monkeypatch, operation) -> None:
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    uri = f"http://127.0.0.1:{_closed_port()}"
    registry = MlflowRegistry(uri, cache_dir=tmp_path / "models")
    calls = {
        "list": lambda: registry.list(),
        "register": lambda: registry.register("delay_model", "fp-1", _manifest(), _model()),
        "get": lambda: registry.get("delay_model", "production"),
    }
    started = time.monotonic()
    with pytest.raises(StorageIOError) as caught:
        calls[operation]()
    assert time.monotonic() - started < 15
    assert caught.value.exit_code == ExitCode.IO_ERROR == 74
    assert uri in caught.value.message and "unreachable" in caught.value.message
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ  # bounded per call, not left behind


def test_a_tracking_uri_that_is_not_a_server_is_refused(tmp_path: Path) -> None:
    for uri in ("sqlite:///mlflow.db", "file:///etc", "/tmp/mlruns", "http://"):
        with pytest.raises(UsageError, match="http"):
            MlflowRegistry(uri)


def test_G5_a_tampered_artifact_is_refused_naming_both_hashes(registry, mlflow_server) -> None:
    import hashlib

    mv = registry.register("delay_model", "fp-1", _manifest(), _model())
    tamper(registry, mv)
    actual = hashlib.sha256(artifact_path(mlflow_server, registry, mv).read_bytes()).hexdigest()
    with pytest.raises(StorageIOError) as caught:
        registry.load(mv)
    message = caught.value.message
    assert caught.value.exit_code == 74
    assert "sha256 mismatch for model artifact model.skops of model:delay_model@1" in message
    assert f"expected {mv.artifact.sha256}" in message and f"got {actual}" in message
    assert registry.check() == [message]


def test_G6_a_failed_version_creation_registers_nothing_and_deletes_the_run(registry, monkeypatch) -> None:
    from mlflow.exceptions import MlflowException

    def refuse(*args, **kwargs):
        raise MlflowException("injected failure while creating the model version")

    monkeypatch.setattr(registry.remote.client, "create_model_version", refuse)
    with pytest.raises(StorageIOError, match="could not create the model version: injected failure"):
        registry.register("delay_model", "fp-1", _manifest(), _model())
    assert registry.list() == [] and _mlflow_versions(registry) == []
    assert registry.remote.client.search_registered_models(f"name = '{registry.mlflow_name('delay_model')}'") == []
    assert _runs(registry) == [] and len(_runs(registry, deleted=True)) == 1
    assert registry.check() == [] and registry.gc() == []
    monkeypatch.undo()
    assert registry.register("delay_model", "fp-1", _manifest(), _model()).version == 1


def test_G6_an_upload_that_arrives_corrupted_is_caught_before_any_version_exists(registry, mlflow_server, monkeypatch) -> None:
    """The artifact store keeps other bytes than were sent (a truncated upload, a faulty proxy):
    the download-and-check step refuses it, so no version ever points at it."""
    client = registry.remote.client
    upload = client.log_artifacts

    def truncating(run_id, local_dir, artifact_path=None):
        upload(run_id, local_dir, artifact_path)
        [stored] = [p for p in mlflow_server.artifacts.rglob("model.skops") if run_id in p.parts]
        stored.write_bytes(stored.read_bytes()[:100])

    monkeypatch.setattr(client, "log_artifacts", truncating)
    with pytest.raises(StorageIOError, match=r"sha256 mismatch for uploaded model.skops of model:delay_model .*\(100 bytes\)"):
        registry.register("delay_model", "fp-1", _manifest(), _model())
    assert registry.list() == [] and _mlflow_versions(registry) == [] and _runs(registry) == []


def test_G6_an_interrupted_register_leaves_an_orphan_run_that_check_reports_and_gc_removes(registry, monkeypatch) -> None:
    """A crash between upload and version creation (the clean-up never runs) leaves a run with
    artifacts and no version: reported by check, removed by gc, never listed as a version."""
    from mlflow.exceptions import MlflowException

    def crash(*args, **kwargs):
        raise MlflowException("process killed here")

    registry.register("delay_model", "fp-0", _manifest(), _model())
    monkeypatch.setattr(registry.remote.client, "create_model_version", crash)
    monkeypatch.setattr(registry, "_discard_run", lambda run_id: None)  # the crash skips the clean-up
    with pytest.raises(StorageIOError):
        registry.register("delay_model", "fp-1", _manifest(), _model(seed=1))
    monkeypatch.undo()
    [orphan] = [r for r in _runs(registry) if r.data.tags["engine.fingerprint"] == "fp-1"]
    [problem] = registry.check()
    assert orphan.info.run_id in problem and "never registered" in problem and "`engine gc`" in problem
    assert [mv.version for mv in registry.list()] == [1]
    [removed] = registry.gc()
    assert removed.startswith(f"MLflow run {orphan.info.run_id} (mlflow-artifacts:/")
    assert registry.check() == [] and registry.gc() == []
    assert [r.data.tags["engine.fingerprint"] for r in _runs(registry)] == ["fp-0"]
    assert registry.register("delay_model", "fp-1", _manifest(), _model(seed=1)).version == 2


# --- serving from an online snapshot --------------------------------------------------------------


def test_index_copies_verified_versions_where_an_online_snapshot_serves_them(registry, tmp_path: Path) -> None:
    from engine.serving.online import load_snapshot_model

    model = _model()
    registry.register("delay_model", "fp-1", _manifest(roc_auc=0.8), model)
    registry.set_alias("delay_model", "production", 1)
    index = registry.index()
    entry = index["delay_model"]["versions"][0]
    assert index["delay_model"]["aliases"] == {"production": 1}
    assert entry["path"] == "models/delay_model/1" and entry["fingerprint"] == "fp-1"
    loaded = load_snapshot_model(tmp_path, "delay_model", entry, index["delay_model"]["aliases"])
    X, _ = _X(3)
    np.testing.assert_array_equal(loaded.estimator.predict_proba(X), model.predict_proba(X))
    assert loaded.version.aliases == ("production",) and loaded.version.manifest["version"] == 1
    assert registry.index() == index  # a second publication reuses the verified copies
