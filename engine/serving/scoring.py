"""Score with a registered model version: the one code path batch, streaming and online share.

A ``LoadedModel`` holds the verified estimator, its fitted transforms and label classes. Batch
and streaming call ``predict_frame`` on feature-view rows; online calls ``predict_vectors`` on
rows built by ``FittedTransforms.transform_row``. Both feed the same float64 matrix to the same
estimator, so offline and online predictions agree. Must not train or touch HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    import pandas

    from engine.registry.base import ModelManifest, ModelVersion
    from engine.transforms.model_dependent import FittedTransforms


@dataclass(frozen=True)
class LoadedModel:
    version: "ModelVersion"
    estimator: Any
    transforms: "FittedTransforms"

    @property
    def manifest(self) -> dict:
        return self.version.manifest

    @property
    def info(self) -> "ModelManifest":
        return self.version.info

    @property
    def ref(self) -> str:
        return self.version.ref

    @property
    def task(self) -> str:
        return self.info.task

    @property
    def classes(self) -> list | None:
        classes = self.info.label_classes
        return list(classes) if classes is not None else None

    @property
    def features(self) -> list[str]:
        return list(self.info.feature_columns)

    @property
    def has_proba(self) -> bool:
        return self.task == "classifier" and hasattr(self.estimator, "predict_proba")

    def predict_matrix(self, X) -> tuple[list, "Any | None"]:
        """(predicted labels, class probabilities or None) for a model matrix, in the float type
        the model was trained on (``input_dtype``: float32 for tree learners)."""
        import numpy as np

        from engine.model.catalogue import input_dtype

        X = np.asarray(X, dtype=np.float64).astype(input_dtype(self.info.estimator), copy=False)
        proba = None
        if self.has_proba:
            # One pass through the model: labels are the most probable class (for binary models
            # that is p > 0.5, as the estimators' own predict; an exact 0.5 tie goes to the first
            # class). Batch, stream and online all score through here, so they always agree.
            proba = self.estimator.predict_proba(X).astype(np.float64)
            proba /= proba.sum(axis=1, keepdims=True)
            threshold = self.manifest.get("decision_threshold")
            # A binary model with a decision threshold: the positive class (code 1) from p >= it.
            raw = (proba[:, 1] >= threshold).astype(int) if threshold is not None and proba.shape[1] == 2 else proba.argmax(axis=1)
        else:
            raw = self.estimator.predict(X)
        if self.task == "classifier":
            classes = self.classes or []
            labels = [classes[int(code)] for code in raw]
        else:
            labels = [float(v) for v in raw]
        return labels, proba

    def predict_frame(self, frame: "pandas.DataFrame") -> "pandas.DataFrame":
        """Predictions for feature-view rows: ``prediction`` and ``proba_<class>`` per class."""
        import pandas as pd

        X = self.transforms.transform(frame[self.features])
        labels, proba = self.predict_matrix(X.to_numpy())
        out = pd.DataFrame({"prediction": labels}, index=frame.index)
        if proba is not None:
            for i, cls in enumerate(self.classes or []):
                out[f"proba_{cls}"] = proba[:, i]
        return out

    def predict_vectors(self, vectors: list[list[float]]) -> list[dict]:
        """Predictions for rows already transformed with ``transform_row`` (the online path)."""
        labels, proba = self.predict_matrix(vectors)
        out = []
        for i, label in enumerate(labels):
            item: dict = {"prediction": label}
            if proba is not None:
                item["probabilities"] = {str(cls): float(proba[i, j]) for j, cls in enumerate(self.classes or [])}
            out.append(item)
        return out


def check_code(model: LoadedModel, root: "Path", *, allow: bool, where: str = "") -> list[str]:
    """PlanError (exit 3) when the on-demand functions ``model`` was trained with have other code
    on disk now: scoring or serving it would compute its features differently from its training
    data. With ``allow`` (``--allow-code-drift``) the drift is returned, to be reported, instead."""
    from engine.errors import PlanError
    from engine.transforms.on_demand import code_drift

    drift = code_drift(model.info.function_code, root)
    if drift and not allow:
        raise PlanError(
            f"{where}{model.ref} was trained with other code than is on disk now for {', '.join(drift)}: "
            "retrain it (engine apply), or pass --allow-code-drift to run it with the code on disk"
        )
    return drift


def load_model(registry, ref) -> LoadedModel:
    """Resolve ``ref`` (an ``engine.ids.ModelRef``) in the registry and load it, verifying its artifact hash (G5)."""
    from engine.transforms.model_dependent import FittedTransforms

    version = registry.get(ref.name, ref.selector)
    estimator = registry.load(version)
    transforms = FittedTransforms.from_dict(version.info.transformers)
    return LoadedModel(version, estimator, transforms)
