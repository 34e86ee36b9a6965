"""What a model page shows beyond its manifest: ROC and precision-recall curves, the confusion
matrix and feature importances, computed by scoring the version's own stored test split (or its
training split when it has no test rows) with the verified artifact. Read-only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.registry.base import ModelVersion
    from engine.session import Stores

MAX_CURVE_POINTS = 200


@dataclass(frozen=True)
class Evaluation:
    split: str
    rows: int
    classes: tuple[str, ...] = ()
    roc: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # (fpr, tpr)
    pr: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # (recall, precision)
    confusion: tuple[tuple[int, ...], ...] | None = None  # rows: actual, columns: predicted
    importances: tuple[tuple[str, float], ...] = ()  # model input -> importance, largest first
    residuals: tuple[float, ...] = field(default=(), repr=False)  # regressors: actual - predicted


def _thin(xs, ys) -> tuple[tuple[float, ...], tuple[float, ...]]:
    step = max(1, len(xs) // MAX_CURVE_POINTS)
    idx = list(range(0, len(xs), step))
    if idx[-1] != len(xs) - 1:
        idx.append(len(xs) - 1)
    return tuple(round(float(xs[i]), 5) for i in idx), tuple(round(float(ys[i]), 5) for i in idx)


def importances(estimator, inputs: list[str]) -> tuple[tuple[str, float], ...]:
    """Feature importances as the estimator reports them (trees: ``feature_importances_``; linear
    models: the absolute coefficients, summed over classes), largest first."""
    import numpy as np

    values = getattr(estimator, "feature_importances_", None)
    if values is None and hasattr(estimator, "coef_"):
        values = np.abs(np.atleast_2d(estimator.coef_)).sum(axis=0)
    if values is None or len(values) != len(inputs):
        return ()
    pairs = sorted(zip(inputs, (float(v) for v in values)), key=lambda p: (-p[1], p[0]))
    return tuple((name, round(v, 6)) for name, v in pairs)


def evaluate(stores: "Stores", mv: "ModelVersion") -> Evaluation | None:
    """Curves, confusion matrix and importances of ``mv`` on its stored split; None when its
    training data is no longer stored."""
    import numpy as np

    from engine.ids import ModelRef
    from engine.serving.scoring import load_model
    from engine.sql.ops import Relation

    table = Relation.parse(mv.info.training_data.table)
    if not stores.backend.exists(table):
        return None
    frame = stores.backend.frame(table)
    split = "test" if (frame["_split"] == "test").any() else "train"
    frame = frame[frame["_split"] == split].reset_index(drop=True)
    model = load_model(stores.registry, ModelRef(mv.name, str(mv.version)))
    label = mv.manifest["label"]
    scored = model.predict_frame(frame)
    imps = importances(model.estimator, list(mv.manifest.get("model_inputs") or model.features))
    if model.task != "classifier":
        actual = frame[label].astype(float).to_numpy()
        return Evaluation(split, len(frame), importances=imps, residuals=tuple(float(v) for v in actual - scored["prediction"].astype(float).to_numpy()))
    from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

    classes = list(model.classes or [])
    actual = frame[label].tolist()
    confusion = confusion_matrix(actual, scored["prediction"].tolist(), labels=classes)
    roc = pr = None
    if len(classes) == 2 and f"proba_{classes[1]}" in scored and len(set(actual)) == 2:
        y = np.asarray([a == classes[1] for a in actual])
        p = scored[f"proba_{classes[1]}"].to_numpy()
        fpr, tpr, _ = roc_curve(y, p)
        precision, recall, _ = precision_recall_curve(y, p)
        roc, pr = _thin(fpr, tpr), _thin(recall[::-1], precision[::-1])
    return Evaluation(split, len(frame), tuple(str(c) for c in classes), roc, pr,
                      tuple(tuple(int(v) for v in row) for row in confusion), imps)
