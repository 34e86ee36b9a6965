"""The local model registry: immutable model versions, their manifests, aliases and look-up.

Owns ``models/<name>/<version>/`` in the workspace and what goes into the index tables
(``engine.state.model_index``, through the backend's catalog); must not touch training or serving.
A version directory is complete (artifact + ``manifest.json``, fsynced, renamed into place) before
its index row commits, so the index never points at a missing artifact (RELIABILITY G6).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.backends.base import Catalog
from engine.errors import EngineError, InternalError, StorageIOError, UsageError
from engine.faults import fault_point
from engine.registry.artifacts import Artifact, load_estimator, read_verified, save_estimator
from engine.ids import ModelRef
from engine.registry.base import BEST_SPLIT, ModelVersion, resolve
from engine.state import model_index
from engine.state.atomic import fsync_directory, write_atomic

__all__ = ["BEST_SPLIT", "LocalRegistry", "ModelVersion"]

MANIFEST = "manifest.json"
TMP_PREFIX = ".tmp-"
ORPHAN_PREFIX = ".orphan-"  # an orphan version directory set aside so that its number is reused
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_RESERVED_ALIASES = frozenset({"latest"})


@dataclass(frozen=True)
class _Row:
    version: ModelVersion
    manifest_sha256: str
    manifest_size: int  # bytes of manifest.json as written (the index keeps the same text)
    artifact: Artifact


def _manifest_bytes(manifest: dict) -> bytes:
    try:
        text = json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InternalError(f"model manifest is not JSON-safe (NaN or a non-JSON value): {exc}") from exc
    return (text + "\n").encode("utf-8")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalRegistry:
    """Model versions in ``models_dir``, indexed in the workspace catalog.

    ``register`` runs its own transaction. ``clock`` returns the current time (UTC); it is passed
    in so tests and reruns are deterministic. A read-only catalog can list, resolve and load.
    """

    def __init__(self, catalog: Catalog, models_dir: Path, *, clock: Callable[[], datetime] | None = None) -> None:
        self.catalog = catalog
        self.models_dir = Path(models_dir)
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    # --- reading the index -----------------------------------------------------------------------

    def _rows(self, name: str | None = None) -> list[_Row]:
        aliases: dict[tuple[str, int], list[str]] = {}
        for alias_name, alias, version in sorted(model_index.aliases(self.catalog), key=lambda r: r[1]):
            aliases.setdefault((alias_name, version), []).append(alias)
        out = []
        for r in model_index.version_rows(self.catalog, name):
            manifest = r["manifest"]
            parsed = json.loads(manifest)
            n, v = r["name"], r["version"]
            mv = ModelVersion(n, v, r["fingerprint"], parsed, parsed.get("created_at", ""), tuple(aliases.get((n, v), ())))
            artifact = Artifact(r["artifact_file"], r["artifact_format"], r["artifact_sha256"], r["artifact_size"], r["estimator_class"])
            out.append(_Row(mv, r["manifest_sha256"], len(manifest.encode("utf-8")), artifact))
        return out

    def _names(self) -> list[str]:
        return model_index.names(self.catalog)

    def find_by_fingerprint(self, name: str, fingerprint: str) -> ModelVersion | None:
        """The version of ``name`` trained from exactly these inputs, if any."""
        for row in self._rows(name):
            if row.version.fingerprint == fingerprint:
                return row.version
        return None

    def list(self, name: str | None = None) -> list[ModelVersion]:
        """All registered versions (of ``name``, or of every model), ordered by name and version."""
        return [row.version for row in self._rows(name)]

    def index(self) -> dict[str, dict]:
        """What an online snapshot embeds: every model's versions (with hashes) and aliases."""
        models: dict[str, dict] = {}
        for row in self._rows():
            mv, manifest = row.version, row.version.manifest
            models.setdefault(mv.name, {"aliases": {}, "versions": []})["versions"].append(
                {
                    "version": mv.version,
                    "path": f"models/{mv.name}/{mv.version}",
                    "manifest_sha256": row.manifest_sha256,
                    "manifest_size": row.manifest_size,
                    "artifact": manifest["artifact"],
                    "feature_view": manifest.get("feature_view"),
                    "feature_view_version": manifest.get("feature_view_version"),
                    "metrics": manifest.get("metrics", {}),
                    "created_at": manifest.get("created_at"),
                    "fingerprint": manifest.get("fingerprint"),
                }
            )
        for name, alias, version in model_index.aliases(self.catalog):
            if name in models:
                models[name]["aliases"][alias] = version
        return models

    # --- registering -----------------------------------------------------------------------------

    def register(self, name: str, fingerprint: str, manifest: dict, estimator: object) -> ModelVersion:
        """Store ``estimator`` as the next version of ``name`` and return it.

        If a version with the same ``fingerprint`` exists it is returned and nothing is written.
        The registry fills ``name``, ``version``, ``fingerprint``, ``artifact``, ``created_at`` and
        ``engine_version`` in the manifest; the caller provides the rest (estimator, params,
        metrics ``{split: {metric: value}}``, feature view, schema, transformers state, ...), all
        JSON-safe with no NaN.
        """
        if not _NAME.match(name):
            raise InternalError(f"invalid model name {name!r}")
        existing = self.find_by_fingerprint(name, fingerprint)
        if existing is not None:
            return existing
        version = self._next_version(name)
        fault_point("before_artifact")
        final, full_manifest = self.stage(name, version, fingerprint, manifest, estimator)
        try:
            fsync_directory(final.parent)
            fault_point("after_artifact")  # G6: crash between artifact and index -> orphan dir
            self._insert(full_manifest)
        except OSError as exc:
            shutil.rmtree(final, ignore_errors=True)
            raise StorageIOError(f"could not write model:{name}@{version} under {final.parent}: {exc.strerror or exc}") from exc
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise
        return self.get(name, version)

    def _next_version(self, name: str) -> int:
        """The index's highest version + 1 (G6: numbers never skip). A directory of that number can
        only be an orphan a crash left between artifact and index row: it is set aside (renamed,
        atomically) for `engine check` to report and `engine gc` to remove. Indexed versions are
        never touched (register never overwrites)."""
        version = model_index.highest_version(self.catalog, name) + 1
        final = self.models_dir / name / str(version)
        if final.exists() or final.is_symlink():
            aside = final.parent / f"{ORPHAN_PREFIX}{version}-{uuid.uuid4().hex[:8]}"
            try:
                os.rename(final, aside)
                fsync_directory(final.parent)
            except OSError as exc:
                raise StorageIOError(f"could not set aside the orphan directory {final} (not in the registry index): {exc.strerror or exc}") from exc
        return version

    def stage(self, name: str, version: int, fingerprint: str, manifest: dict, estimator: object) -> tuple[Path, dict]:
        """Write artifact + manifest into a temp dir and rename it to ``models/<name>/<version>``.

        The first half of :meth:`register`; a crash after it leaves an orphan directory that
        :meth:`check` reports and :meth:`gc` removes.
        """
        parent = self.models_dir / name
        final = parent / str(version)
        if final.exists():
            raise InternalError(f"model directory {final} already exists; versions are immutable")
        tmp = parent / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            parent.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
            artifact = save_estimator(estimator, tmp, owner=f"model:{name}@{version}")
            full = {
                **manifest,
                "name": name,
                "version": version,
                "fingerprint": fingerprint,
                "artifact": artifact.as_dict(),
                "created_at": self.clock().astimezone(timezone.utc).isoformat(timespec="seconds"),
                "engine_version": _engine_version(),
            }
            write_atomic(tmp / MANIFEST, _manifest_bytes(full))
            fsync_directory(tmp)
            os.rename(tmp, final)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise StorageIOError(f"could not write model:{name}@{version} under {parent}: {exc.strerror or exc}") from exc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final, full

    def _insert(self, manifest: dict) -> None:
        data = _manifest_bytes(manifest)
        artifact = Artifact.from_dict(manifest["artifact"])
        row = {
            "name": manifest["name"],
            "version": manifest["version"],
            "fingerprint": manifest["fingerprint"],
            "manifest": data.decode("utf-8"),
            "manifest_sha256": _sha256(data),
            "artifact_file": artifact.file,
            "artifact_format": artifact.format,
            "artifact_sha256": artifact.sha256,
            "artifact_size": artifact.size,
            "estimator_class": artifact.estimator_class,
        }
        with self.catalog.transaction():
            model_index.ensure_schema(self.catalog)
            model_index.insert_version(self.catalog, row, datetime.fromisoformat(manifest["created_at"]))

    # --- look-up ---------------------------------------------------------------------------------

    def get(self, name: str, selector: str | int | None = None) -> ModelVersion:
        """Resolve ``name`` + selector to a version.

        ``None``/``"latest"`` → highest version; ``3`` or ``"3"`` → that version; ``"best:<metric>"``
        → best on the test split (direction from ``engine.ids``; ties → newest);
        any other word → an alias. Unknown names, versions, aliases or metrics raise
        :class:`UsageError` listing the known options.
        """
        if isinstance(selector, bool):
            raise UsageError(f"invalid version selector {selector!r} for model '{name}'")
        versions = [row.version for row in self._rows(name)]
        known = self._names() if not versions else ()
        return resolve(versions, ModelRef(name, None if selector is None else str(selector)), known_models=known)

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` of model ``name`` at ``version`` (moving it from another version if set)."""
        if not _ALIAS.match(alias) or alias in _RESERVED_ALIASES:
            raise UsageError(
                f"invalid alias '{alias}' for model '{name}': use lowercase letters, digits, '_' or '-', "
                "starting with a letter, and not 'latest'"
            )
        mv = self.get(name, int(version))
        with self.catalog.transaction():
            model_index.set_alias(self.catalog, name, alias, mv.version, self.clock())

    # --- loading and integrity -------------------------------------------------------------------

    def _row(self, mv: ModelVersion) -> _Row:
        for row in self._rows(mv.name):
            if row.version.version == mv.version:
                return row
        raise UsageError(f"{mv.ref} is not in the registry")

    def load(self, mv: ModelVersion) -> object:
        """The estimator of ``mv``, after checking ``manifest.json`` and the artifact against the index."""
        row = self._row(mv)
        directory = self.models_dir / mv.name / str(mv.version)
        read_verified(directory / MANIFEST, row.manifest_sha256, row.manifest_size, what=f"{MANIFEST} of {mv.ref}")
        return load_estimator(directory, row.artifact, owner=mv.ref)

    def _stray_dirs(self) -> list[tuple[Path, str]]:
        """Directories under ``models_dir`` that no index row owns, with why."""
        if not self.models_dir.is_dir():
            return []
        indexed = {(row.version.name, row.version.version) for row in self._rows()}
        out: list[tuple[Path, str]] = []
        for parent in sorted(p for p in self.models_dir.iterdir() if p.is_dir()):
            for child in sorted(parent.iterdir()):
                if child.is_dir() and child.name.startswith(TMP_PREFIX):
                    out.append((child, "leftover temporary directory"))
                elif child.is_dir() and child.name.startswith(ORPHAN_PREFIX):
                    out.append((child, "orphan model directory set aside (not in the registry index)"))
                elif child.is_dir() and child.name.isdigit() and (parent.name, int(child.name)) not in indexed:
                    out.append((child, "orphan model directory (not in the registry index)"))
        return out

    def _show(self, path: Path) -> str:
        try:
            return path.relative_to(self.models_dir.parent).as_posix()
        except ValueError:
            return str(path)

    def check(self) -> list[str]:
        """Problems in the registry: orphan or temp dirs, missing files, size/sha256 mismatches."""
        problems = [f"{self._show(path)}: {why}; `engine gc` removes it" for path, why in self._stray_dirs()]
        for row in self._rows():
            mv = row.version
            directory = self.models_dir / mv.name / str(mv.version)
            checks = [
                (directory / MANIFEST, row.manifest_sha256, row.manifest_size, f"{MANIFEST} of {mv.ref}"),
                (directory / row.artifact.file, row.artifact.sha256, row.artifact.size, f"model artifact {row.artifact.file} of {mv.ref}"),
            ]
            for path, sha, size, what in checks:
                try:
                    read_verified(path, sha, size, what=what)
                except EngineError as exc:
                    problems.append(exc.message)
        return sorted(problems)

    def gc(self) -> list[Path]:
        """Remove orphan version directories and leftover temp directories; return what was removed."""
        removed = []
        for path, _ in self._stray_dirs():
            shutil.rmtree(path)
            removed.append(path)
        return removed


def _engine_version() -> str:
    from engine import __version__

    return __version__
