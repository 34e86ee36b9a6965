"""What the MLflow run of one engine model version records besides its artifacts: params,
metrics per split, lineage tags and an input signature.

Owns the mapping from an engine manifest to MLflow params, metrics, tags and ``MLmodel``; must not
talk to the server except through the ``Remote`` it is given, nor decide what is registered.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

MLMODEL = "MLmodel"  # metadata only (signature), no flavour: MLflow cannot load it, by design
MAX_PARAM_VALUE = 6000  # MLflow's limit for a param value
MAX_RUN_TAG_VALUE = 8000  # MLflow's limit for a run tag value
_BATCH = 100  # params per log_batch request (MLflow's limit)


def log_values(remote, run_id: str, stored: dict, now: datetime) -> None:
    """Log the manifest's estimator params and its finite metrics as ``<split>_<metric>``."""
    from mlflow.entities import Metric, Param

    millis = int(now.timestamp() * 1000)
    params = [Param(str(k), _param_text(v)) for k, v in sorted((stored.get("params") or {}).items())]
    metrics = [
        Metric(f"{split}_{metric}", float(value), millis, 0)
        for split, values in sorted((stored.get("metrics") or {}).items())
        for metric, value in sorted(values.items())
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ]
    for start in range(0, max(len(params), 1), _BATCH):
        chunk = params[start : start + _BATCH]
        remote.call("log params and metrics", remote.client.log_batch, run_id, metrics=metrics if start == 0 else [], params=chunk)


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text[:MAX_PARAM_VALUE]


def lineage_tags(stored: dict) -> dict[str, str]:
    """Run tags that say where the version came from (only the ones the manifest has)."""
    training = stored.get("training_data") or {}
    tags = {
        "engine.feature_view": (
            f"feature_view:{stored['feature_view']}@{stored['feature_view_version']}"
            if stored.get("feature_view") is not None and stored.get("feature_view_version") is not None
            else None
        ),
        "engine.feature_view_fingerprint": stored.get("feature_view_fingerprint"),
        "engine.training_data_fingerprint": training.get("fingerprint"),
        "engine.training_data_table": training.get("table"),
        "engine.code_fingerprint": stored.get("code_fingerprint"),
        "engine.run_id": stored.get("run_id"),
        "engine.estimator": stored.get("estimator"),
        "engine.artifact_format": stored["artifact"]["format"],
        "engine.artifact_sha256": stored["artifact"]["sha256"],
        "engine.engine_version": stored.get("engine_version"),
    }
    return {k: str(v)[:MAX_RUN_TAG_VALUE] for k, v in tags.items() if v is not None}


_MLFLOW_TYPES = {
    "BOOLEAN": "boolean",
    "TINYINT": "integer", "SMALLINT": "integer", "INTEGER": "integer", "INT": "integer",
    "BIGINT": "long", "HUGEINT": "long", "UTINYINT": "integer", "USMALLINT": "integer", "UINTEGER": "long",
    "FLOAT": "float", "REAL": "float", "DOUBLE": "double",
    "VARCHAR": "string", "TEXT": "string",
    "DATE": "datetime", "TIMESTAMP": "datetime", "TIMESTAMP WITH TIME ZONE": "datetime", "TIMESTAMPTZ": "datetime",
}  # fmt: skip


def write_signature(directory: Path, input_schema: Any) -> None:
    """An ``MLmodel`` file with only an input signature (the feature-view columns the model reads),
    so the MLflow UI shows the schema. No flavour: nothing in MLflow can load the model from it.
    Skipped when a column's type has no MLflow equivalent (the schema stays in the manifest)."""
    if not isinstance(input_schema, dict) or not input_schema:
        return
    types = {column: _MLFLOW_TYPES.get(str(kind).upper().split("(")[0]) for column, kind in input_schema.items()}
    if None in types.values():
        return
    from mlflow.models import Model
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    signature = ModelSignature(inputs=Schema([ColSpec(kind, column) for column, kind in types.items()]))
    Model(signature=signature).save(str(directory / MLMODEL))
