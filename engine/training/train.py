"""Train one model: read its feature view, split, fit model-dependent transforms on the training
split only, fit the estimator, score the other splits, and register the version.

Owns the order of those steps; the pieces (splits, transforms, estimators, metrics, registry)
live in their own modules. Same spec and same data give the same fingerprint, so retraining
unchanged inputs registers nothing new.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import Enum

from engine.compiler.fingerprint import definition_fingerprint, digest
from engine.errors import DataError, ExecutionError
from engine.model import objects as m
from engine.registry.base import ModelManifest, TrainingData
from engine.sql.ops import Relation, Scan, key_columns


@dataclass(frozen=True)
class TrainOutcome:
    rows: int  # training rows
    version: object  # registry ModelVersion
    created: bool  # False when an identical version already existed
    notes: tuple[str, ...] = ()  # aliases a gate kept where they were, and why


def _content_fingerprint(frame) -> str:
    import pandas as pd

    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes() + json.dumps(list(map(str, frame.columns))).encode()).hexdigest()[:16]


def _view_content_fingerprint(stores, table: Relation, frame) -> str:
    """``_content_fingerprint`` of the published view ``table`` as read into ``frame``, computed
    once per committed version in a run (``Stores.view_hashes``): every model on the view reads the
    same rows in the same order (``Scan`` by its keys). Hashing the example's 330k-row view took
    0.46 s per model, and grows with the rows. A table outside the lake has no version to key
    by and is hashed every time."""
    version = stores.backend.lake_version(table)
    if version is None:
        return _content_fingerprint(frame)
    key = (str(table), version)
    if key not in stores.view_hashes:
        stores.view_hashes[key] = _content_fingerprint(frame)
    return stores.view_hashes[key]


def _split(frame, model: m.Model, event_time: str | None) -> dict:
    from engine.training.splits import split_by_time, split_random

    s = model.split
    match s.by:
        case m.SplitKind.TIME:
            return split_by_time(frame, event_time, s.test_from, s.validation_from, s.test_until)
        case m.SplitKind.RANDOM:
            return split_random(frame, s.test_size if s.test_size is not None else 0.2, s.validation_size, s.seed)


def store_training_dataset(backend, model: m.Model, fv: m.FeatureView, parts: dict, fingerprint: str, run_id: str) -> tuple[str, dict[str, int]]:
    """Materialise the split data as ``training.<model>__<fingerprint>`` (once per fingerprint)."""
    import pandas as pd

    from engine.state import metadata

    name = f"{model.name}__{fingerprint}"
    table = Relation("training", name)
    rows = {split: len(frame) for split, frame in parts.items()}
    if metadata.has_training_dataset(backend.catalog, name):
        return str(table), rows
    frame = pd.concat([f.assign(_split=split) for split, f in parts.items()], ignore_index=True)
    with backend.transaction():
        backend.write(table, frame, mode="replace")
        metadata.insert_training_dataset(backend.catalog, name, model.name, fv.name, fv.version, str(table), fingerprint, _split_dict(model.split), rows, run_id)
    return str(table), rows


def _split_dict(split: m.Split) -> dict:
    return {k: str(v) if isinstance(v, Enum) else v for k, v in vars(split).items() if v is not None}


def _float_or_none(value) -> float | None:
    import math

    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def train_model(stores, model: m.Model, project: m.Project, *, run_id: str) -> TrainOutcome:
    """Train ``model`` on its published feature view and register it (see module docstring)."""
    import numpy as np

    from engine.store.views import stored_layout
    from engine.model.catalogue import estimator_task, input_dtype, supports_proba
    from engine.training.estimators import build_estimator, fit, fit_label_mapping, resolve_class_weight
    from engine.training.metrics import compute_metrics, default_metrics
    from engine.transforms.model_dependent import fit_transforms
    from engine.transforms.on_demand import function_code

    fv = project.feature_views[model.feature_view]
    backend = stores.backend
    stored = stored_layout(backend, fv.name, fv.version)
    if stored is None:
        raise ExecutionError(f"{model.id}: {fv.id} has not been materialised")
    table, layout, view_fingerprint = stored
    label = layout.labels[0]
    frame = backend.frame(Scan(table, order_by=key_columns(layout.keys, layout.event_time)))

    task = estimator_task(model.estimator)
    if task == "classifier":
        pass  # label problems (NULLs, one class) are reported by the label mapping below
    else:
        missing = int(frame[label].isna().sum())
        if missing:
            raise DataError(f"{model.id}: label '{label}' has {missing} missing values; nothing registered")
    parts = _split(frame, model, layout.event_time)
    train = parts["train"]

    data_fingerprint = _view_content_fingerprint(stores, table, frame) + _content_fingerprint(train[[*layout.keys]] if layout.keys else train)
    data_fingerprint = digest(data_fingerprint)
    import dataclasses

    identity = dataclasses.replace(model, aliases=(), gates=())  # moving an alias (or gating it) is not a new model
    fingerprint = digest(definition_fingerprint(identity), definition_fingerprint(fv), layout.as_dict(), data_fingerprint)
    registry = stores.registry
    existing = registry.find_by_fingerprint(model.name, fingerprint)
    if existing is not None:
        return TrainOutcome(len(train), existing, False, _set_aliases(registry, model, existing))

    dataset_table, rows = store_training_dataset(backend, model, fv, parts, data_fingerprint, run_id)

    mapping = None
    class_weight = dict(model.class_weight) if isinstance(model.class_weight, tuple) else model.class_weight
    if task == "classifier":
        mapping = fit_label_mapping(train[label], label=label, split="training")
        encode = lambda part, split: mapping.encode(part[label], label=label, split=split)  # noqa: E731
        class_weight = resolve_class_weight(class_weight, mapping) if class_weight is not None else None
    else:
        encode = lambda part, split: part[label].to_numpy(dtype=float)  # noqa: E731

    features = model_features(model, layout.features)
    chosen = {**{c: t for c, t in fv.transforms if c in features}, **dict(model.transforms)}  # the model's own win
    try:
        transforms = fit_transforms(train, features, chosen)
    except ValueError as exc:
        raise DataError(f"{model.id}: cannot prepare the features of {fv.id}: {exc}") from exc
    params = dict(model.params)
    seed = model.split.seed
    estimator = build_estimator(model.estimator, params, seed=seed, class_weight=class_weight, model_name=model.name)
    dtype = input_dtype(model.estimator)  # the same in every scoring path (LoadedModel.predict_matrix)
    X = {split: transforms.transform(part).to_numpy(dtype=np.float64).astype(dtype) for split, part in parts.items()}
    y = {split: encode(part, "training" if split == "train" else split) for split, part in parts.items()}
    eval_set = [(X["validation"], y["validation"])] if "validation" in X and model.estimator.startswith("xgboost.") else None
    warnings: list[str] = []
    with _captured_warnings(warnings):
        fit(estimator, X["train"], y["train"], class_weight=class_weight, eval_set=eval_set, model_name=model.name)

    has_proba = supports_proba(model.estimator, params)
    metric_names = model.metrics or default_metrics(task, has_proba)
    threshold = _decision_threshold(model, estimator, mapping, X, y, label) if task == "classifier" and has_proba else None
    metrics: dict[str, dict[str, float | None]] = {}
    for split in ("validation", "test"):
        if split not in X:
            continue
        with _captured_warnings(warnings):
            pred = estimator.predict(X[split])
            proba = None
            if has_proba and task == "classifier":
                # XGBoost returns float32 rows that sum to 1 only within float32 precision.
                proba = estimator.predict_proba(X[split]).astype(np.float64)
                proba /= proba.sum(axis=1, keepdims=True)
                if threshold is not None:  # as every scoring path decides (LoadedModel.predict_matrix)
                    pred = (proba[:, 1] >= threshold).astype(int)
            classes = list(range(len(mapping.classes))) if mapping is not None else None
            result = compute_metrics(task, metric_names, y[split], pred, proba, classes=classes)
        metrics[split] = {k: _float_or_none(v) for k, v in result.values.items()}
        warnings += [f"{split}: {w}" for w in result.warnings]

    view_types = backend.columns(table)
    manifest = ModelManifest(
        model=model.name,
        estimator=model.estimator,
        task=task,
        params=params,
        seed=seed,
        class_weight=class_weight if not isinstance(class_weight, dict) else {str(k): v for k, v in class_weight.items()},
        metrics=metrics,
        metric_warnings=tuple(warnings),
        feature_view=fv.name,
        feature_view_version=fv.version,
        feature_view_fingerprint=view_fingerprint,
        layout=layout.as_dict(),
        label=label,
        label_classes=tuple(mapping.classes) if mapping is not None else None,
        feature_columns=tuple(features),
        model_inputs=tuple(transforms.output_columns),
        input_schema={c: view_types.get(c, "UNKNOWN") for c in features},
        transformers=transforms.to_dict(),
        split=_split_dict(model.split),
        training_data=TrainingData(dataset_table, data_fingerprint, rows),
        run_id=run_id,
        function_code=function_code(project.root, [project.functions[name] for name in fv.on_demand]),
        decision_threshold=threshold,
    )
    version = registry.register(model.name, fingerprint, manifest.to_json(), estimator)
    shown = [f"warning while training: {w}" for w in warnings[:5]] + ([f"... and {len(warnings) - 5} more warnings (engine show model {model.name})"] if len(warnings) > 5 else [])
    return TrainOutcome(len(train), version, True, (*shown, *_set_aliases(registry, model, version)))


def model_features(model: m.Model, view_features) -> list[str]:
    """The view's features ``model`` takes, in the view's order (``features`` / ``exclude``)."""
    if model.features:
        return [c for c in view_features if c in model.features]
    return [c for c in view_features if c not in model.exclude]


def _decision_threshold(model: m.Model, estimator, mapping, X: dict, y: dict, label: str) -> float | None:
    """The model's decision threshold: as declared, or tuned on the validation split; None
    without one. DataError for a label that is not binary."""
    import numpy as np

    from engine.training.metrics import tune_threshold

    if model.threshold is None and model.threshold_tune is None:
        return None
    if len(mapping.classes) != 2:
        raise DataError(f"{model.id}: a decision threshold applies to binary labels, and '{label}' has {len(mapping.classes)} classes; nothing registered")
    if model.threshold is not None:
        return float(model.threshold)
    proba = estimator.predict_proba(X["validation"]).astype(np.float64)
    proba /= proba.sum(axis=1, keepdims=True)
    return tune_threshold(y["validation"], proba[:, 1], model.threshold_tune)


class _captured_warnings:
    """Library warnings during fit/score go into the manifest, not onto the user's terminal."""

    def __init__(self, sink: list[str]):
        import warnings

        self.sink = sink
        self._ctx = warnings.catch_warnings(record=True)

    def __enter__(self):
        import warnings

        self._records = self._ctx.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        for w in self._records:
            text = f"{w.category.__name__}: {str(w.message).splitlines()[0]}"
            if text not in self.sink:
                self.sink.append(text)
        return self._ctx.__exit__(*exc)


def _set_aliases(registry, model: m.Model, version) -> tuple[str, ...]:
    """Move each alias to ``version``, unless its gate (``engine.model.gates``) does not hold;
    one note per alias that stayed."""
    from engine.model.gates import evaluate

    notes = []
    for alias in model.aliases:
        gate = model.gate(alias)
        if gate is not None:
            holder = next((mv for mv in registry.list(model.name) if alias in mv.aliases), None)
            if holder is not None and holder.version == version.version:
                continue
            verdict = evaluate(
                gate,
                version.manifest.get("metrics") or {},
                (holder.manifest.get("metrics") or {}) if holder is not None else None,
                candidate_ref=version.ref,
                current_ref=holder.ref if holder is not None else None,
            )
            if not verdict.moves:
                stays = f"stays on {holder.ref}" if holder is not None else "names no version yet"
                notes.append(f"alias '{alias}' {stays}: {'; '.join(verdict.reasons)}")
                continue
        registry.set_alias(model.name, alias, version.version)
    return tuple(notes)
