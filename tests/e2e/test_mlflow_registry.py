"""`registry: {kind: mlflow}` end to end (issue 12): `engine apply` registers the models in a real
MLflow server, `show models`, batch scoring and retraining idempotence go through it, and a
missing tracking URI is a usage error (exit 2) that names the two ways to give one."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from engine import api
from tests.conftest import run_engine
from tests.e2e.test_training import rides  # noqa: F401 (fixture)

pytest.importorskip("mlflow", reason="mlflow is not installed, so the MLflow registry cannot be tested here")

from tests.support_mlflow import mlflow_server  # noqa: E402,F401 (the session fixture)


def _use_mlflow(root: Path, uri: str | None, namespace: str) -> None:
    spec = root / "specs/rides.yaml"
    target = f"registry: {{kind: mlflow, {'tracking_uri: ' + uri + ', ' if uri else ''}namespace: {namespace}}}\n"
    spec.write_text(spec.read_text().replace("project: rides\n", f"project: rides\n{target}"))


def test_apply_registers_in_mlflow_and_reads_back_through_it(rides: Path, mlflow_server):  # noqa: F811
    from mlflow import MlflowClient

    namespace = f"e2e{uuid.uuid4().hex[:8]}"
    _use_mlflow(rides, mlflow_server.uri, namespace)
    api.apply(rides)
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    versions = client.search_model_versions(f"name = '{namespace}.tips_xgb'")
    assert [v.version for v in versions] == ["1"]
    assert client.get_registered_model(f"{namespace}.tips_xgb").aliases == {"production": "1"}

    rc, out, err = run_engine("show", str(rides), "models", "--format", "json")
    assert rc == 0, err
    models = {m["name"]: m for m in json.loads(out)}
    assert set(models) == {"tips_xgb", "tips_logreg"} and models["tips_xgb"]["aliases"] == ["production"]

    assert api.apply(rides).run is None  # unchanged: nothing new registered
    assert len(client.search_model_versions(f"name = '{namespace}.tips_xgb'")) == 1


def test_mlflow_without_a_tracking_uri_is_a_usage_error(rides: Path, monkeypatch):  # noqa: F811
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    _use_mlflow(rides, None, "none")
    rc, _, err = run_engine("apply", str(rides), env={"MLFLOW_TRACKING_URI": ""})
    assert rc == 2, err
    assert "registry.tracking_uri" in err and "MLFLOW_TRACKING_URI" in err and "Traceback" not in err


def test_an_unknown_registry_kind_is_a_positioned_spec_error(rides: Path):  # noqa: F811
    spec = rides / "specs/rides.yaml"
    spec.write_text(spec.read_text().replace("project: rides\n", "project: rides\nregistry: {kind: sagemaker}\n"))
    rc, _, err = run_engine("validate", str(rides))
    assert rc == 3, err
    assert "specs/rides.yaml:3" in err and "registry.kind" in err
