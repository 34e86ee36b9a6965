"""Model artifacts on disk: safe formats (skops, XGBoost UBJ), atomic writes, hash-verified loads.

Owns the bytes of ``model.skops`` / ``model.ubj`` in one version directory; must not touch the
registry index, manifests or training. Never pickle, never joblib (DESIGN §5, RELIABILITY V19).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.state.atomic import quietly, write_atomic
from engine.errors import ExecutionError, InternalError, StorageIOError

# Types skops does not trust by default that the estimators the engine supports need (linear
# models, trees, forests, gradient boosting, HistGradientBoosting, k-NN, naive Bayes, SVM, MLP,
# dummy). Derived by dumping each one fitted on tiny data (tests/registry/test_artifacts.py
# re-derives it). numpy arrays, dtypes and builtins are trusted by skops itself. Deliberately
# absent: ``functools.partial`` and ``sklearn.utils.validation.check_array`` (only needed by
# HistGradientBoosting with native ``categorical_features``); such a model is refused at save time.
TRUSTED_SKLEARN_TYPES: tuple[str, ...] = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.metrics._dist_metrics.ChebyshevDistance64",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance64",
    "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.tree._tree.Tree",
)

SKOPS = "skops"
XGBOOST_UBJ = "xgboost-ubj"
ARTIFACT_FILES = {SKOPS: "model.skops", XGBOOST_UBJ: "model.ubj"}
XGBOOST_CLASSES = ("xgboost.XGBClassifier", "xgboost.XGBRegressor")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Artifact:
    """One model artifact file inside a version directory, with what is needed to verify it."""

    file: str  # "model.skops" | "model.ubj"
    format: str  # "skops" | "xgboost-ubj"
    sha256: str
    size: int
    estimator_class: str  # e.g. "xgboost.XGBClassifier", "sklearn.linear_model._ridge.Ridge"

    def as_dict(self) -> dict[str, Any]:
        """The JSON-safe form stored in ``manifest.json``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Artifact:
        """Rebuild from :meth:`as_dict` output."""
        return cls(
            file=str(data["file"]),
            format=str(data["format"]),
            sha256=str(data["sha256"]),
            size=int(data["size"]),
            estimator_class=str(data["estimator_class"]),
        )


# --- atomic writes (RELIABILITY G4) --------------------------------------------------------------


# --- save ----------------------------------------------------------------------------------------


def _class_path(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _is_xgboost(estimator: object) -> bool:
    return type(estimator).__module__.split(".")[0] == "xgboost"


def save_estimator(estimator: object, directory: Path, *, owner: str = "model") -> Artifact:
    """Write a fitted estimator into ``directory`` in a safe format and return its :class:`Artifact`.

    XGBoost estimators go to ``model.ubj``; scikit-learn estimators go through skops to
    ``model.skops``, refused (``ExecutionError``, nothing written) when they need a type outside
    :data:`TRUSTED_SKLEARN_TYPES` (RELIABILITY M1).
    """
    if _is_xgboost(estimator):
        fmt, estimator_class = XGBOOST_UBJ, f"xgboost.{type(estimator).__name__}"
        data = _xgboost_bytes(estimator, directory, owner)
    else:
        fmt, estimator_class = SKOPS, _class_path(estimator)
        data = _skops_bytes(estimator, owner)
    file = ARTIFACT_FILES[fmt]
    write_atomic(directory / file, data)
    return Artifact(file, fmt, hashlib.sha256(data).hexdigest(), len(data), estimator_class)


def _skops_bytes(estimator: object, owner: str) -> bytes:
    import skops.io as sio

    try:
        data = sio.dumps(estimator)
    except Exception as exc:  # skops raises assorted types for objects it cannot represent
        raise ExecutionError(
            f"{owner}: estimator {type(estimator).__name__} cannot be saved with skops: {type(exc).__name__}: {exc}"
        ) from exc
    data = canonical_skops(data)
    untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(TRUSTED_SKLEARN_TYPES))
    if untrusted:
        raise ExecutionError(
            f"{owner}: estimator {type(estimator).__name__} needs types outside the trusted list, "
            f"so it cannot be saved safely: {', '.join(untrusted)}"
        )
    return data


_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def canonical_skops(data: bytes) -> bytes:
    """A skops archive rewritten so that the same fitted estimator always gives the same bytes.

    skops names each stored array after its Python ``id()`` (``__id__`` in ``schema.json``, and
    the member ``<id>.npy``) and stamps members with the time of writing, so identical runs gave
    different sha256s. Here the ids are renumbered 1, 2, … in the order ``schema.json`` (keys
    sorted) first mentions them (the same id stays the same number: shared objects stay shared), members get a
    fixed time, order and mode, and the schema is written with sorted keys. skops loads the result
    as it loads its own (tests/registry/test_artifacts.py checks predictions on every estimator
    kind)."""
    import io
    import json
    import re
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    schema = json.loads(members.pop("schema.json"))
    numbers: dict[int, int] = {}
    numbered = re.compile(r"^(\d+)(\.[A-Za-z0-9]+)$")

    def number(old: int) -> int:
        return numbers.setdefault(old, len(numbers) + 1)

    def walk(node: object) -> object:
        if isinstance(node, dict):
            out = {}
            for key, value in sorted(node.items()):  # the order the schema is written in: idempotent
                if key == "__id__" and isinstance(value, int):
                    out[key] = number(value)
                elif key == "file" and isinstance(value, str) and (m := numbered.match(value)) and value in members:
                    out[key] = f"{number(int(m.group(1)))}{m.group(2)}"
                else:
                    out[key] = walk(value)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    schema = walk(schema)
    renamed: dict[str, bytes] = {}
    for name, content in members.items():
        m = numbered.match(name)
        renamed[f"{number(int(m.group(1)))}{m.group(2)}" if m else name] = content
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, content in [("schema.json", json.dumps(schema, sort_keys=True, indent=2).encode()), *sorted(renamed.items())]:
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, content)
    return out.getvalue()


def _xgboost_bytes(estimator: object, directory: Path, owner: str) -> bytes:
    import xgboost
    from sklearn.exceptions import NotFittedError

    name = f"xgboost.{type(estimator).__name__}"
    if name not in XGBOOST_CLASSES or type(estimator) is not getattr(xgboost, type(estimator).__name__):
        raise ExecutionError(f"{owner}: estimator {name} is not supported (supported: {', '.join(XGBOOST_CLASSES)})")
    try:
        estimator.get_booster()
    except NotFittedError as exc:
        raise InternalError(f"{owner}: cannot save an unfitted {name}") from exc
    # The sklearn wrapper only saves to a path (it adds its own metadata), so save to a temp file
    # beside the target, read it back and remove it; the final file is written by write_atomic.
    tmp = directory / f".tmp-{uuid.uuid4().hex}.ubj"
    try:
        estimator.save_model(tmp)
        return tmp.read_bytes()
    except (OSError, xgboost.core.XGBoostError) as exc:
        raise StorageIOError(f"could not write the model artifact of {owner} in {directory}: {exc}") from exc
    finally:
        quietly(os.unlink, tmp)


# --- load ----------------------------------------------------------------------------------------


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_verified(path: Path, sha256: str, size: int, *, what: str) -> bytes:
    """Read ``path`` and return its bytes only if its size and sha256 are the recorded ones.

    ``what`` names the file in messages, e.g. ``"model artifact model.ubj of model:m@3"``.
    """
    try:
        actual_size = path.stat().st_size
        if actual_size != size:
            got = _hash_file(path)
            raise ExecutionError(
                f"sha256 mismatch for {what}: expected {sha256} ({size} bytes), got {got} ({actual_size} bytes)"
            )
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ExecutionError(f"{what} is missing: {path}") from exc
    except OSError as exc:
        raise StorageIOError(f"could not read {what} at {path}: {exc.strerror or exc}") from exc
    got = hashlib.sha256(data).hexdigest()
    if got != sha256 or len(data) != size:
        raise ExecutionError(f"sha256 mismatch for {what}: expected {sha256} ({size} bytes), got {got} ({len(data)} bytes)")
    return data


def load_estimator(directory: Path, artifact: Artifact, *, owner: str) -> object:
    """Load the estimator of ``artifact`` from ``directory`` after verifying size and sha256.

    Any mismatch or parse failure raises :class:`ExecutionError` naming ``owner`` (RELIABILITY G5);
    bytes are hashed and parsed from the same in-memory copy, so a file swapped in between is never
    parsed.
    """
    expected_file = ARTIFACT_FILES.get(artifact.format)
    if expected_file is None or artifact.file != expected_file:
        raise ExecutionError(
            f"model artifact of {owner} has an unknown format or file name: {artifact.format!r} / {artifact.file!r}"
        )
    what = f"model artifact {artifact.file} of {owner}"
    data = read_verified(directory / artifact.file, artifact.sha256, artifact.size, what=what)
    if artifact.format == XGBOOST_UBJ:
        return _load_xgboost(data, artifact, what)
    return _load_skops(data, artifact, what)


def _load_skops(data: bytes, artifact: Artifact, what: str) -> object:
    import skops.io as sio

    try:
        estimator = sio.loads(data, trusted=list(TRUSTED_SKLEARN_TYPES))
    except Exception as exc:  # BadZipFile, UntrustedTypesFoundException, KeyError, ...: all mean "refused"
        raise ExecutionError(f"{what} could not be loaded as skops: {type(exc).__name__}: {exc}") from exc
    if _class_path(estimator) != artifact.estimator_class:
        raise ExecutionError(
            f"{what} holds a {_class_path(estimator)}, but the registry recorded {artifact.estimator_class}"
        )
    return estimator


def _load_xgboost(data: bytes, artifact: Artifact, what: str) -> object:
    import xgboost

    if artifact.estimator_class not in XGBOOST_CLASSES:
        raise ExecutionError(f"{what}: unsupported estimator class {artifact.estimator_class!r}")
    estimator = getattr(xgboost, artifact.estimator_class.split(".", 1)[1])()
    try:
        estimator.load_model(bytearray(data))
    except (xgboost.core.XGBoostError, TypeError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ExecutionError(f"{what} could not be loaded as XGBoost UBJ: {type(exc).__name__}: {first_line}") from exc
    return estimator
