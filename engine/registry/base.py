"""The model registry seam: the ``ModelRegistry`` protocol, ``ModelVersion`` and the one resolver
of model selectors (``latest``, a number, ``best:<metric>``, an alias).

Every place that turns ``name@selector`` into a version (training's aliases, batch and stream
scoring, the online snapshot, ``show``) goes through :func:`resolve`. Implementations:
``REGISTRIES`` maps a name to a class, imported only when chosen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from engine.errors import UsageError, did_you_mean
from engine.ids import ModelRef
from engine.model.catalogue import higher_is_better

if TYPE_CHECKING:
    from engine.registry.artifacts import Artifact

BEST_SPLIT = "test"
REGISTRIES: dict[str, str] = {"local": "engine.registry.local:LocalRegistry"}


@dataclass(frozen=True)
class ModelVersion:
    """One registered, immutable model version."""

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

    @property
    def artifact(self) -> "Artifact":
        from engine.registry.artifacts import Artifact

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
