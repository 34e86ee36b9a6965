"""The local model registry: immutable model versions, their manifests, aliases and look-up.

Owns ``models/<name>/<version>/`` in the workspace and the ``_engine.model_versions`` /
``_engine.model_aliases`` index tables; must not touch training, serving or other ``_engine`` tables.
A version directory is complete (artifact + ``manifest.json``, fsynced, renamed into place) before
its index row commits, so the index never points at a missing artifact (RELIABILITY G6).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.faults import fault_point
from engine.errors import EngineError, InternalError, StorageIOError, UsageError, did_you_mean
from engine.registry.artifacts import Artifact, load_estimator, read_verified, save_estimator
from engine.state.atomic import fsync_directory, write_atomic

MANIFEST = "manifest.json"
TMP_PREFIX = ".tmp-"
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "mse", "rmse", "brier_score"})
BEST_SPLIT = "test"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_RESERVED_ALIASES = frozenset({"latest"})

_DDL = [
    "CREATE SCHEMA IF NOT EXISTS _engine",
    """CREATE TABLE IF NOT EXISTS _engine.model_versions (
        name VARCHAR NOT NULL,
        version INTEGER NOT NULL,
        fingerprint VARCHAR NOT NULL,
        manifest JSON NOT NULL,
        manifest_sha256 VARCHAR NOT NULL,
        artifact_file VARCHAR NOT NULL,
        artifact_format VARCHAR NOT NULL,
        artifact_sha256 VARCHAR NOT NULL,
        artifact_size BIGINT NOT NULL,
        estimator_class VARCHAR NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (name, version),
        UNIQUE (name, fingerprint))""",
    """CREATE TABLE IF NOT EXISTS _engine.model_aliases (
        name VARCHAR NOT NULL,
        alias VARCHAR NOT NULL,
        version INTEGER NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (name, alias))""",
]
_TABLES = ("model_versions", "model_aliases")
_COLUMNS = "name, version, fingerprint, manifest, manifest_sha256, artifact_file, artifact_format, artifact_sha256, artifact_size, estimator_class"


def ensure_registry_schema(con) -> None:
    """Create the registry index tables in ``_engine`` if they do not exist (idempotent)."""
    for statement in _DDL:
        con.execute(statement)


def _has_schema(con) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = '_engine' AND table_name IN (?, ?)", list(_TABLES)
    ).fetchone()
    return rows[0] == len(_TABLES)


@dataclass(frozen=True)
class ModelVersion:
    """One registered, immutable model version as the index records it."""

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
    def artifact(self) -> Artifact:
        return Artifact.from_dict(self.manifest["artifact"])


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


def _listing(items: list[str]) -> str:
    return ", ".join(items) if items else "none"


class ModelRegistry:
    """Model versions in ``models_dir`` indexed in the workspace DuckDB connection ``con``.

    ``register`` runs its own transaction: ``con`` must not be inside one. ``clock`` returns the
    current time (UTC); it is passed in so tests and reruns are deterministic.
    """

    def __init__(self, con, models_dir: Path, *, clock: Callable[[], datetime] | None = None) -> None:
        self.con = con
        self.models_dir = Path(models_dir)
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        if not _has_schema(con):
            ensure_registry_schema(con)

    # --- reading the index -----------------------------------------------------------------------

    def _rows(self, name: str | None = None) -> list[_Row]:
        sql = f"SELECT {_COLUMNS} FROM _engine.model_versions"
        params: list[Any] = []
        if name is not None:
            sql += " WHERE name = ?"
            params.append(name)
        rows = self.con.execute(sql + " ORDER BY name, version", params).fetchall()
        aliases: dict[tuple[str, int], list[str]] = {}
        for alias_name, alias, version in self.con.execute(
            "SELECT name, alias, version FROM _engine.model_aliases ORDER BY alias"
        ).fetchall():
            aliases.setdefault((alias_name, version), []).append(alias)
        out = []
        for n, v, fingerprint, manifest, manifest_sha, file, fmt, sha, size, cls in rows:
            parsed = json.loads(manifest)
            mv = ModelVersion(n, v, fingerprint, parsed, parsed.get("created_at", ""), tuple(aliases.get((n, v), ())))
            out.append(_Row(mv, manifest_sha, len(manifest.encode("utf-8")), Artifact(file, fmt, sha, size, cls)))
        return out

    def _names(self) -> list[str]:
        return [r[0] for r in self.con.execute("SELECT DISTINCT name FROM _engine.model_versions ORDER BY name").fetchall()]

    def find_by_fingerprint(self, name: str, fingerprint: str) -> ModelVersion | None:
        """The version of ``name`` trained from exactly these inputs, if any."""
        for row in self._rows(name):
            if row.version.fingerprint == fingerprint:
                return row.version
        return None

    def list(self, name: str | None = None) -> list[ModelVersion]:
        """All registered versions (of ``name``, or of every model), ordered by name and version."""
        return [row.version for row in self._rows(name)]

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
        row = self.con.execute("SELECT max(version) FROM _engine.model_versions WHERE name = ?", [name]).fetchone()
        highest = row[0] or 0
        # Never reuse the number of a directory left by a crash (register never overwrites).
        on_disk = [int(p.name) for p in self._version_dirs(name)]
        return max([highest, *on_disk]) + 1

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
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute(
                f"INSERT INTO _engine.model_versions ({_COLUMNS}, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    manifest["name"],
                    manifest["version"],
                    manifest["fingerprint"],
                    data.decode("utf-8"),
                    _sha256(data),
                    artifact.file,
                    artifact.format,
                    artifact.sha256,
                    artifact.size,
                    artifact.estimator_class,
                    datetime.fromisoformat(manifest["created_at"]),
                ],
            )
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    # --- look-up ---------------------------------------------------------------------------------

    def get(self, name: str, selector: str | int | None = None) -> ModelVersion:
        """Resolve ``name`` + selector to a version.

        ``None``/``"latest"`` → highest version; ``3`` or ``"3"`` → that version; ``"best:<metric>"``
        → best on the test split (higher is better except :data:`LOWER_IS_BETTER`; ties → newest);
        any other word → an alias. Unknown names, versions, aliases or metrics raise
        :class:`UsageError` listing the known options.
        """
        rows = self._rows(name)
        if not rows:
            names = self._names()
            if not names:
                raise UsageError(f"unknown model '{name}': no model has been registered yet (`engine apply` trains them)")
            hint = did_you_mean(name, names)
            raise UsageError(
                f"unknown model '{name}' in the registry{f' ({hint})' if hint else ''}; known models: {_listing(names)}"
            )
        versions = [row.version for row in rows]
        if selector is None or selector == "latest":
            return versions[-1]
        if isinstance(selector, bool):
            raise UsageError(f"invalid version selector {selector!r} for model '{name}'")
        if isinstance(selector, int) or selector.isdigit():
            wanted = int(selector)
            for mv in versions:
                if mv.version == wanted:
                    return mv
            known = [str(mv.version) for mv in versions]
            raise UsageError(f"model '{name}' has no version {wanted}; known versions: {_listing(known)}")
        if selector.startswith("best:"):
            return self._best(name, versions, selector[len("best:") :])
        return self._by_alias(name, versions, selector)

    def _best(self, name: str, versions: list[ModelVersion], metric: str) -> ModelVersion:
        scored: list[tuple[float, int, ModelVersion]] = []
        known: set[str] = set()
        for mv in versions:
            values = (mv.manifest.get("metrics") or {}).get(BEST_SPLIT) or {}
            known.update(values)
            value = values.get(metric)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                scored.append((-value if metric in LOWER_IS_BETTER else value, mv.version, mv))
        if not scored:
            hint = did_you_mean(metric, known)
            raise UsageError(
                f"model '{name}' has no {BEST_SPLIT} metric '{metric}'{f' ({hint})' if hint else ''}; "
                f"known {BEST_SPLIT} metrics: {_listing(sorted(known))}"
            )
        return max(scored, key=lambda item: (item[0], item[1]))[2]

    def _by_alias(self, name: str, versions: list[ModelVersion], alias: str) -> ModelVersion:
        for mv in versions:
            if alias in mv.aliases:
                return mv
        known = sorted(a for mv in versions for a in mv.aliases)
        hint = did_you_mean(alias, [*known, "latest"])
        raise UsageError(
            f"model '{name}' has no alias '{alias}'{f' ({hint})' if hint else ''}; known aliases: {_listing(known)} "
            f"(selectors: latest, a version number, best:<metric>)"
        )

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` of model ``name`` at ``version`` (moving it from another version if set)."""
        if not _ALIAS.match(alias) or alias in _RESERVED_ALIASES:
            raise UsageError(
                f"invalid alias '{alias}' for model '{name}': use lowercase letters, digits, '_' or '-', "
                "starting with a letter, and not 'latest'"
            )
        mv = self.get(name, int(version))
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute(
                "INSERT OR REPLACE INTO _engine.model_aliases (name, alias, version, updated_at) VALUES (?, ?, ?, ?)",
                [name, alias, mv.version, self.clock()],
            )
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

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

    def _version_dirs(self, name: str) -> list[Path]:
        parent = self.models_dir / name
        if not parent.is_dir():
            return []
        return sorted((p for p in parent.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))

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
