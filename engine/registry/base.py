"""The model registry seam: the ``ModelRegistry`` protocol, ``ModelVersion``, the typed
``ModelManifest`` and the one resolver of model selectors (``latest``, a number, ``best:<metric>``,
an alias).

Every place that turns ``name@selector`` into a version (training's aliases, batch and stream
scoring, the online snapshot, ``show``) goes through :func:`resolve`. Implementations:
``REGISTRIES`` maps a name to a class, imported only when chosen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import import_module
from typing import Any, Protocol, runtime_checkable

from engine.errors import UsageError, did_you_mean
from engine.ids import ModelRef
from engine.model.catalogue import higher_is_better
from engine.registry.artifacts import Artifact

BEST_SPLIT = "test"
REGISTRIES: dict[str, str] = {"local": "engine.registry.local:LocalRegistry", "mlflow": "engine.registry.mlflow:MlflowRegistry"}


@dataclass(frozen=True)
class TrainingData:
    """Where a model version's training rows are kept: the dataset table, the data fingerprint and
    the rows of each split."""

    table: str  # "training"."<model>__<fingerprint>"
    fingerprint: str
    rows: Mapping[str, int]  # split -> rows

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "fingerprint": self.fingerprint, "rows": dict(self.rows)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "TrainingData":
        return cls(data["table"], data["fingerprint"], dict(data["rows"]))


@dataclass(frozen=True)
class ModelManifest:
    """What ``manifest.json`` of a model version says, typed. Training fills the first block; the
    registry fills the second when it stores the version (None before that).

    :meth:`to_json` gives exactly the stored JSON object (same keys and values, so the same bytes
    and sha256); :meth:`from_json` reads it back: ``from_json(d).to_json() == d`` for every manifest
    this engine writes. Nested parts that other packages own (``layout``: the view layout,
    ``transformers``: the fitted transforms, ``split``) stay JSON objects here and are parsed by
    their owners (``ViewLayout``, ``FittedTransforms``), which the registry must not import.
    """

    model: str
    estimator: str  # sklearn.* / xgboost.* class path as written in the spec
    task: str  # "classifier" | "regressor"
    params: Mapping[str, object]
    seed: int
    class_weight: str | Mapping[str, float] | None
    metrics: Mapping[str, Mapping[str, float | None]]  # split -> metric -> value (None: not finite)
    metric_warnings: tuple[str, ...]
    feature_view: str
    feature_view_version: int
    feature_view_fingerprint: str
    layout: Mapping[str, Any]  # engine.store.views.ViewLayout.as_dict()
    label: str
    label_classes: tuple[Any, ...] | None  # classifier: class of each code, in code order
    feature_columns: tuple[str, ...]  # feature-view columns the model reads
    model_inputs: tuple[str, ...]  # columns after the model-dependent transforms
    input_schema: Mapping[str, str]  # feature column -> type
    transformers: Mapping[str, Any]  # engine.transforms.model_dependent.FittedTransforms.to_dict()
    split: Mapping[str, Any]  # the model's split, fields that are set
    training_data: TrainingData
    run_id: str
    # filled by the registry
    name: str | None = None
    version: int | None = None
    fingerprint: str | None = None
    artifact: Artifact | None = None
    created_at: str | None = None  # ISO 8601, UTC, seconds
    engine_version: str | None = None
    # on-demand function name -> {"python": "module:function", "code": code digest of its package}:
    # what scoring and serving compare with the code on disk (``engine.transforms.on_demand.code_drift``)
    function_code: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # binary classifiers with a threshold: the positive class is predicted when its probability is >= it
    decision_threshold: float | None = None

    @property
    def feature_view_ref(self) -> str:
        """``feature_view:name@version`` of the view the model was trained on."""
        return f"feature_view:{self.feature_view}@{self.feature_view_version}"

    def to_json(self) -> dict[str, Any]:
        """The JSON object stored as ``manifest.json`` (registry fields only once they are set)."""
        cw = self.class_weight
        out: dict[str, Any] = {
            "model": self.model,
            "estimator": self.estimator,
            "task": self.task,
            "params": dict(self.params),
            "seed": self.seed,
            "class_weight": dict(cw) if isinstance(cw, Mapping) else cw,
            "metrics": {split: dict(values) for split, values in self.metrics.items()},
            "metric_warnings": list(self.metric_warnings),
            "feature_view": self.feature_view,
            "feature_view_version": self.feature_view_version,
            "feature_view_fingerprint": self.feature_view_fingerprint,
            "layout": dict(self.layout),
            "label": self.label,
            "label_classes": list(self.label_classes) if self.label_classes is not None else None,
            "feature_columns": list(self.feature_columns),
            "model_inputs": list(self.model_inputs),
            "input_schema": dict(self.input_schema),
            "transformers": dict(self.transformers),
            "split": dict(self.split),
            "training_data": self.training_data.to_json(),
            "run_id": self.run_id,
        }
        if self.function_code:
            out["function_code"] = {name: dict(entry) for name, entry in self.function_code.items()}
        if self.decision_threshold is not None:
            out["decision_threshold"] = self.decision_threshold
        registry = {
            "name": self.name,
            "version": self.version,
            "fingerprint": self.fingerprint,
            "artifact": self.artifact.as_dict() if self.artifact is not None else None,
            "created_at": self.created_at,
            "engine_version": self.engine_version,
        }
        out.update({k: v for k, v in registry.items() if v is not None})
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ModelManifest":
        """Read a stored manifest (KeyError when a key training always writes is missing)."""
        classes = data["label_classes"]
        artifact = data.get("artifact")
        return cls(
            model=data["model"],
            estimator=data["estimator"],
            task=data["task"],
            params=data["params"],
            seed=data["seed"],
            class_weight=data["class_weight"],
            metrics=data["metrics"],
            metric_warnings=tuple(data["metric_warnings"]),
            feature_view=data["feature_view"],
            feature_view_version=data["feature_view_version"],
            feature_view_fingerprint=data["feature_view_fingerprint"],
            layout=data["layout"],
            label=data["label"],
            label_classes=tuple(classes) if classes is not None else None,
            feature_columns=tuple(data["feature_columns"]),
            model_inputs=tuple(data["model_inputs"]),
            input_schema=data["input_schema"],
            transformers=data["transformers"],
            split=data["split"],
            training_data=TrainingData.from_json(data["training_data"]),
            run_id=data["run_id"],
            name=data.get("name"),
            version=data.get("version"),
            fingerprint=data.get("fingerprint"),
            artifact=Artifact.from_dict(artifact) if artifact is not None else None,
            created_at=data.get("created_at"),
            engine_version=data.get("engine_version"),
            function_code=data.get("function_code") or {},
            decision_threshold=data.get("decision_threshold"),
        )


@dataclass(frozen=True)
class ModelVersion:
    """One registered, immutable model version.

    ``manifest`` is the stored JSON object itself (what ``manifest.json`` holds, byte for byte, and
    what ``engine show`` prints); :attr:`info` is the same, typed. A snapshot's index entry for a
    version (``engine.serving.online``) is a smaller object: read it by key, not through ``info``.
    """

    name: str
    version: int
    fingerprint: str  # of the training inputs (spec + data): same fingerprint => same model
    manifest: dict  # JSON-safe; see ModelRegistry.register
    created_at: str
    aliases: tuple[str, ...]

    @property
    def ref(self) -> str:
        """``model:name@version``, the way messages name it."""
        return f"model:{self.name}@{self.version}"

    @cached_property
    def info(self) -> ModelManifest:
        """The manifest, typed (parsed once)."""
        return ModelManifest.from_json(self.manifest)

    @property
    def artifact(self) -> Artifact:
        return Artifact.from_dict(self.manifest["artifact"])


@runtime_checkable
class ModelRegistry(Protocol):
    """Where model versions live. One contract suite (tests/contract) runs on every implementation."""

    def find_by_fingerprint(self, name: str, fingerprint: str) -> ModelVersion | None: ...
    def register(self, name: str, fingerprint: str, manifest: dict, estimator: object) -> ModelVersion: ...
    def list(self, name: str | None = None) -> list[ModelVersion]: ...
    def get(self, name: str, selector: str | int | None = None) -> ModelVersion: ...
    def set_alias(self, name: str, alias: str, version: int) -> None: ...
    def load(self, mv: ModelVersion) -> object: ...
    def check(self) -> list[str]: ...
    def gc(self) -> list: ...


def _listing(items: Sequence[str]) -> str:
    return ", ".join(items) if items else "none"


def resolve(versions: Sequence[ModelVersion], ref: ModelRef | str, *, known_models: Sequence[str] = ()) -> ModelVersion:
    """The version of ``ref`` among ``versions`` (all of that model, ordered by version).

    ``None``/``latest`` → highest version; ``3`` → that version; ``best:<metric>`` → best on the
    test split (direction from ``engine.ids``; ties → newest); any other word → an alias. Unknown
    names, versions, aliases or metrics raise UsageError listing the known options.
    """
    ref = ModelRef.parse(ref) if isinstance(ref, str) else ref
    name, selector = ref.name, ref.selector
    if not versions:
        if not known_models:
            raise UsageError(f"unknown model '{name}': no model has been registered yet (`engine apply` trains them)")
        hint = did_you_mean(name, list(known_models))
        raise UsageError(f"unknown model '{name}' in the registry{f' ({hint})' if hint else ''}; known models: {_listing(list(known_models))}")
    if selector is None or selector == "latest":
        return versions[-1]
    if selector.isdigit():
        wanted = int(selector)
        for mv in versions:
            if mv.version == wanted:
                return mv
        raise UsageError(f"model '{name}' has no version {wanted}; known versions: {_listing([str(mv.version) for mv in versions])}")
    if selector.startswith("best:"):
        return _best(name, versions, selector[len("best:") :])
    for mv in versions:
        if selector in mv.aliases:
            return mv
    known = sorted(a for mv in versions for a in mv.aliases)
    hint = did_you_mean(selector, [*known, "latest"])
    raise UsageError(
        f"model '{name}' has no alias '{selector}'{f' ({hint})' if hint else ''}; known aliases: {_listing(known)} "
        f"(selectors: latest, a version number, best:<metric>)"
    )


def _best(name: str, versions: Sequence[ModelVersion], metric: str) -> ModelVersion:
    scored: list[tuple[float, int, ModelVersion]] = []
    known: set[str] = set()
    for mv in versions:
        values = (mv.manifest.get("metrics") or {}).get(BEST_SPLIT) or {}
        known.update(values)
        value = values.get(metric)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            scored.append((value if higher_is_better(metric) else -value, mv.version, mv))
    if not scored:
        hint = did_you_mean(metric, known)
        raise UsageError(
            f"model '{name}' has no {BEST_SPLIT} metric '{metric}'{f' ({hint})' if hint else ''}; "
            f"known {BEST_SPLIT} metrics: {_listing(sorted(known))}"
        )
    return max(scored, key=lambda item: (item[0], item[1]))[2]


def load_registry(kind: str = "local") -> type:
    """The registry class registered as ``kind``; UsageError for an unknown one."""
    if kind not in REGISTRIES:
        hint = did_you_mean(kind, list(REGISTRIES))
        raise UsageError(f"unknown registry '{kind}'{f' ({hint})' if hint else ''}; known registries: {', '.join(sorted(REGISTRIES))}")
    module, _, attr = REGISTRIES[kind].partition(":")
    return getattr(import_module(module), attr)
