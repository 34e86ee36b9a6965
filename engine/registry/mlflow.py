"""The MLflow model registry: engine model versions as MLflow runs and registered model versions.

Owns what the engine writes to an MLflow tracking server (one run per version with its params,
metrics, lineage tags and artifacts; the registered model version, its tags and aliases) and the
verified local copies that an online snapshot serves; must not touch training, serving or the
workspace catalog. Talking to the server (timeouts, retries, error mapping) is
``engine.registry.mlflow_remote``.

Artifacts stay in the engine's safe formats (``engine.registry.artifacts``: skops with the trusted
list, XGBoost UBJ), never an MLflow pickle flavour. A version is created only after its artifacts
are uploaded, downloaded again and sha256-checked; a failure before that deletes the run, so
MLflow never lists a half-registered version (RELIABILITY G6). Version numbers are MLflow's:
``manifest.json`` in the run holds everything but ``version``, which the registry adds when it
reads a version back (it cannot know the number before MLflow assigns it).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from engine.errors import EngineError, ExecutionError, InternalError, StorageIOError, UsageError
from engine.faults import fault_point
from engine.ids import ModelRef
from engine.registry.artifacts import Artifact, load_estimator, read_verified, save_estimator
from engine.registry.base import ModelVersion, resolve
from engine.registry.local import _ALIAS, _NAME, _RESERVED_ALIASES, MANIFEST, _engine_version, _manifest_bytes
from engine.registry.mlflow_remote import Remote
from engine.registry.mlflow_run import lineage_tags, log_values, write_signature
from engine.state.atomic import write_atomic

__all__ = ["MlflowRegistry"]

ARTIFACT_PATH = "model"  # the run's artifact folder that a model version's source points at
MANAGED, MODEL, NAMESPACE, FINGERPRINT = "engine.managed", "engine.model", "engine.namespace", "engine.fingerprint"
MANIFEST_TEXT, MANIFEST_SHA256, MANIFEST_SIZE = "engine.manifest", "engine.manifest_sha256", "engine.manifest_size"
MAX_TAG_VALUE = 100_000  # MLflow's limit for a registered-model-version tag value
ORPHAN_GRACE = timedelta(minutes=30)  # a RUNNING run younger than this may be a register in progress
_RESERVED_BY_MLFLOW = re.compile(r"^[vV]\d+$")  # MLflow keeps `v<number>` aliases for versions
_TOKEN = re.compile(r"^[A-Za-z0-9_.:@-]{1,250}$")  # fingerprints: no quote to escape in a filter
_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}$")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _verified(path: Path, sha256: str, size: int, *, what: str) -> bytes:
    """``read_verified`` for bytes that came over the network: a mismatch means the remote store
    holds other bytes than the registry recorded, a storage fault (exit 74) naming both hashes."""
    try:
        return read_verified(path, sha256, size, what=what)
    except ExecutionError as exc:
        raise StorageIOError(exc.message) from exc


class MlflowRegistry:
    """Model versions in an MLflow tracking server and model registry at ``tracking_uri``.

    ``namespace`` keeps several projects (or tests) apart on one server: engine model ``m`` is
    MLflow registered model ``<namespace>.m`` (just ``m`` without one). Runs go to ``experiment``.
    ``cache_dir`` (the workspace's ``models/``) receives verified copies of the versions an online
    snapshot serves (:meth:`index`). ``clock`` returns the current UTC time. ``timeout`` (seconds
    per HTTP request) and ``max_retries`` bound how long an unreachable server takes to report.
    """

    def __init__(
        self,
        tracking_uri: str,
        *,
        registry_uri: str | None = None,
        experiment: str = "engine",
        namespace: str = "",
        cache_dir: Path | None = None,
        clock: Callable[[], datetime] | None = None,
        timeout: float = 10.0,
        max_retries: int = 1,
    ) -> None:
        if namespace and not _NAMESPACE.match(namespace):
            raise UsageError(f"invalid MLflow registry namespace {namespace!r}: letters, digits, '_', '.' or '-'")
        self.remote = Remote(tracking_uri, registry_uri, timeout=timeout, max_retries=max_retries)
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.namespace = namespace
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self._experiment_id: str | None = None

    # --- names --------------------------------------------------------------------------------------

    def mlflow_name(self, name: str) -> str:
        """The MLflow registered-model name of engine model ``name``."""
        return f"{self.namespace}.{name}" if self.namespace else name

    def _engine_name(self, mlflow_name: str) -> str | None:
        """The engine name of an MLflow registered model of this namespace, else None."""
        rest = mlflow_name
        if self.namespace:
            if not mlflow_name.startswith(f"{self.namespace}."):
                return None
            rest = mlflow_name[len(self.namespace) + 1 :]
        return rest if _NAME.match(rest) else None

    def _name_filter(self, name: str | None) -> str:
        if name is not None:
            return f"name = '{self.mlflow_name(name)}'"
        return f"name LIKE '{self.namespace}.%'" if self.namespace else ""

    # --- reading ------------------------------------------------------------------------------------

    def _aliases(self, name: str | None) -> dict[str, dict[int, list[str]]]:
        """engine model -> version -> its aliases (sorted)."""
        out: dict[str, dict[int, list[str]]] = {}
        for rm in self.remote.pages("list registered models", self.remote.client.search_registered_models, self._name_filter(name)):
            engine_name = self._engine_name(rm.name)
            if engine_name is None:
                continue
            for alias, version in sorted((rm.aliases or {}).items()):
                out.setdefault(engine_name, {}).setdefault(int(version), []).append(alias)
        return out

    def _search_versions(self, filter_string: str) -> list:
        """MLflow model versions made by the engine in this namespace matching ``filter_string``."""
        found = self.remote.pages("search model versions", self.remote.client.search_model_versions, filter_string)
        return [v for v in found if MANIFEST_SHA256 in (v.tags or {}) and self._engine_name(v.name) is not None]

    def _model_version(self, mlv, aliases: dict[str, dict[int, list[str]]]) -> ModelVersion:
        name, version = self._engine_name(mlv.name), int(mlv.version)
        manifest = {**self._stored_manifest(mlv), "version": version}
        mine = tuple(aliases.get(name, {}).get(version, ()))
        return ModelVersion(name, version, mlv.tags[FINGERPRINT], manifest, manifest.get("created_at", ""), mine)

    def _stored_manifest(self, mlv) -> dict:
        """The stored manifest of an MLflow version: its tag copy when that matches the recorded
        sha256, else ``manifest.json`` from the artifact store, verified."""
        sha, size = mlv.tags[MANIFEST_SHA256], int(mlv.tags[MANIFEST_SIZE])
        text = mlv.tags.get(MANIFEST_TEXT)
        if text is not None and _sha256(text.encode("utf-8")) == sha and len(text.encode("utf-8")) == size:
            return json.loads(text)
        with tempfile.TemporaryDirectory(prefix="engine-mlflow-") as tmp:
            path = self.remote.download(mlv.source, MANIFEST, Path(tmp), what=f"{MANIFEST} of {self._ref(mlv)}")
            return json.loads(_verified(path, sha, size, what=f"{MANIFEST} of {self._ref(mlv)}"))

    def _ref(self, mlv) -> str:
        return f"model:{self._engine_name(mlv.name)}@{mlv.version}"

    def _sorted(self, mlvs: Iterable, name: str | None) -> list[ModelVersion]:
        aliases = self._aliases(name)
        versions = [self._model_version(v, aliases) for v in mlvs]
        return sorted(versions, key=lambda mv: (mv.name, mv.version))

    def list(self, name: str | None = None) -> list[ModelVersion]:
        """All engine versions (of ``name``, or of every model of the namespace), by name and version."""
        if name is not None and not _NAME.match(name):
            return []
        return self._sorted(self._search_versions(self._name_filter(name)), name)

    def find_by_fingerprint(self, name: str, fingerprint: str) -> ModelVersion | None:
        """The version of ``name`` trained from exactly these inputs, if any (a tag search)."""
        if not _NAME.match(name):
            return None
        _check_token(fingerprint, "fingerprint")
        query = f"{self._name_filter(name)} and tags.`{FINGERPRINT}` = '{fingerprint}'"
        found = self._sorted(self._search_versions(query), name)
        return found[0] if found else None

    def get(self, name: str, selector: str | int | None = None) -> ModelVersion:
        """Resolve ``name`` + selector (latest, a number, ``best:<metric>``, an alias) with the
        registry's one resolver; UsageError listing the known options otherwise."""
        if isinstance(selector, bool):
            raise UsageError(f"invalid version selector {selector!r} for model '{name}'")
        versions = self.list(name)
        known = sorted({mv.name for mv in self.list()}) if not versions else ()
        return resolve(versions, ModelRef(name, None if selector is None else str(selector)), known_models=known)

    # --- registering --------------------------------------------------------------------------------

    def register(self, name: str, fingerprint: str, manifest: dict, estimator: object) -> ModelVersion:
        """Store ``estimator`` as the next MLflow version of ``name`` and return it.

        Same fingerprint as an existing version → that version, nothing written. Otherwise: a run
        with params, metrics and lineage tags; the artifact (safe format) and ``manifest.json``
        uploaded, downloaded again and checked; only then the registered model version. Any
        failure on the way deletes the run and leaves no version (G6).
        """
        if not _NAME.match(name):
            raise InternalError(f"invalid model name {name!r}")
        _check_token(fingerprint, "fingerprint")
        existing = self.find_by_fingerprint(name, fingerprint)
        if existing is not None:
            return existing
        owner = f"model:{name}"
        with tempfile.TemporaryDirectory(prefix="engine-mlflow-") as tmp:
            staged = Path(tmp) / ARTIFACT_PATH
            staged.mkdir()
            artifact = save_estimator(estimator, staged, owner=owner)
            stored = {
                **{k: v for k, v in manifest.items() if k != "version"},
                "name": name,
                "fingerprint": fingerprint,
                "artifact": artifact.as_dict(),
                "created_at": self.clock().astimezone(timezone.utc).isoformat(timespec="seconds"),
                "engine_version": _engine_version(),
            }
            data = _manifest_bytes(stored)
            write_atomic(staged / MANIFEST, data)
            write_signature(staged, stored.get("input_schema"))
            run_id = self._start_run(name, fingerprint, stored)
            try:
                source = self._upload(run_id, staged)
                self._check_upload(source, Path(tmp) / "check", artifact, _sha256(data), len(data), owner)
                fault_point("after_artifact")  # G6: a crash here leaves an orphan run, no version
                self.remote.call("finish run", self.remote.client.set_terminated, run_id, "FINISHED")
                mlv = self._create_version(name, run_id, source, fingerprint, data)
            except BaseException as exc:
                if not self.remote.unreachable(exc):  # else nothing to talk to: check/gc report the run later
                    self._discard_run(run_id)
                raise
        return self.get(name, int(mlv.version))

    def experiment_id(self) -> str:
        """The id of the MLflow experiment the runs go to (created on first use)."""
        if self._experiment_id is None:
            client = self.remote.client
            found = self.remote.call("find the experiment", client.get_experiment_by_name, self.experiment)
            if found is None:
                found_id = self.remote.call("create the experiment", client.create_experiment, self.experiment, tags={MANAGED: "true"})
            else:
                found_id = found.experiment_id
            self._experiment_id = str(found_id)
        return self._experiment_id

    def _start_run(self, name: str, fingerprint: str, stored: dict) -> str:
        tags = {
            "mlflow.runName": f"{name}-{fingerprint[:12]}",
            MANAGED: "true",
            MODEL: name,
            NAMESPACE: self.namespace,
            FINGERPRINT: fingerprint,
            **lineage_tags(stored),
        }
        run = self.remote.call("create a run", self.remote.client.create_run, self.experiment_id(), tags=tags)
        run_id = run.info.run_id
        try:
            log_values(self.remote, run_id, stored, self.clock())
        except BaseException as exc:
            if not self.remote.unreachable(exc):
                self._discard_run(run_id)
            raise
        return run_id

    def _upload(self, run_id: str, staged: Path) -> str:
        """Upload the staged folder as the run's ``model/``; return its artifact URI."""
        client = self.remote.client
        self.remote.call("upload the model artifacts", client.log_artifacts, run_id, str(staged), ARTIFACT_PATH)
        run = self.remote.call("read the run", client.get_run, run_id)
        return f"{run.info.artifact_uri.rstrip('/')}/{ARTIFACT_PATH}"

    def _check_upload(self, source: str, into: Path, artifact: Artifact, manifest_sha: str, manifest_size: int, owner: str) -> None:
        """Download what was uploaded and compare with what was written (before any version exists)."""
        into.mkdir()
        for file, sha, size in ((MANIFEST, manifest_sha, manifest_size), (artifact.file, artifact.sha256, artifact.size)):
            what = f"uploaded {file} of {owner} at {source}"
            _verified(self.remote.download(source, file, into, what=what), sha, size, what=what)

    def _create_version(self, name: str, run_id: str, source: str, fingerprint: str, data: bytes):
        client, full = self.remote.client, self.mlflow_name(name)
        created_model = False
        if not self.remote.pages("find the registered model", client.search_registered_models, f"name = '{full}'"):
            self.remote.create_once("create the registered model", client.create_registered_model, full, tags={MANAGED: "true"})
            created_model = True
        text = data.decode("utf-8")
        tags = {MANAGED: "true", MODEL: name, FINGERPRINT: fingerprint, MANIFEST_SHA256: _sha256(data), MANIFEST_SIZE: str(len(data))}
        if len(text) <= MAX_TAG_VALUE:
            tags[MANIFEST_TEXT] = text
        try:
            fault_point("before_version")
            mlv = self.remote.call(
                "create the model version", client.create_model_version, full, source, run_id=run_id, tags=tags, await_creation_for=0
            )
        except BaseException:
            if created_model and not self.remote.pages("list versions", client.search_model_versions, f"name = '{full}'"):
                self.remote.quietly(client.delete_registered_model, full)
            raise
        if str(mlv.status) not in ("READY", "1"):
            raise StorageIOError(f"MLflow at {self.tracking_uri} left model:{name}@{mlv.version} in status {mlv.status}")
        return mlv

    def _discard_run(self, run_id: str) -> None:
        """Best effort after a failed register: delete any version made from ``run_id``, the run's
        artifacts and the run. What survives a second failure is an orphan :meth:`check` reports."""
        client = self.remote.client
        try:
            for v in self.remote.pages("find versions of the run", client.search_model_versions, f"run_id = '{run_id}'"):
                self.remote.quietly(client.delete_model_version, v.name, v.version)
        except EngineError:
            pass
        self._delete_run(run_id)

    def _delete_run(self, run_id: str) -> None:
        client = self.remote.client
        try:
            run = self.remote.call("read the run", client.get_run, run_id)
            self.remote.quietly(self.remote.delete_artifacts, run.info.artifact_uri)
        except EngineError:
            pass
        self.remote.quietly(client.set_terminated, run_id, "FAILED")
        self.remote.quietly(client.delete_run, run_id)

    # --- aliases ------------------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` of model ``name`` at ``version`` (an MLflow registered-model alias)."""
        if not _ALIAS.match(alias) or alias in _RESERVED_ALIASES:
            raise UsageError(
                f"invalid alias '{alias}' for model '{name}': use lowercase letters, digits, '_' or '-', "
                "starting with a letter, and not 'latest'"
            )
        if _RESERVED_BY_MLFLOW.match(alias):
            raise UsageError(f"invalid alias '{alias}' for model '{name}': MLflow reserves 'v<number>' aliases")
        mv = self.get(name, int(version))
        client = self.remote.client
        self.remote.call(f"set alias {alias} of {mv.ref}", client.set_registered_model_alias, self.mlflow_name(name), alias, str(mv.version))

    # --- loading and integrity ----------------------------------------------------------------------

    def _mlflow_version(self, mv: ModelVersion):
        found = self._search_versions(f"{self._name_filter(mv.name)} and tags.`{FINGERPRINT}` = '{mv.fingerprint}'")
        for mlv in found:
            if int(mlv.version) == mv.version:
                return mlv
        raise UsageError(f"{mv.ref} is not in the registry")

    def _fetch(self, mlv, manifest: dict, into: Path) -> Path:
        """Download ``manifest.json`` and the artifact of ``mlv`` into ``into``, both verified."""
        ref = self._ref(mlv)
        artifact = Artifact.from_dict(manifest["artifact"])
        checks = (
            (MANIFEST, mlv.tags[MANIFEST_SHA256], int(mlv.tags[MANIFEST_SIZE]), f"{MANIFEST} of {ref}"),
            (artifact.file, artifact.sha256, artifact.size, f"model artifact {artifact.file} of {ref}"),
        )
        for file, sha, size, what in checks:
            _verified(self.remote.download(mlv.source, file, into, what=what), sha, size, what=what)
        return into

    def load(self, mv: ModelVersion) -> object:
        """The estimator of ``mv``: downloaded, size and sha256 checked against the manifest (a
        mismatch is StorageIOError naming both hashes), then parsed with the trusted types."""
        mlv = self._mlflow_version(mv)
        manifest = self._stored_manifest(mlv)
        with tempfile.TemporaryDirectory(prefix="engine-mlflow-") as tmp:
            directory = self._fetch(mlv, manifest, Path(tmp))
            return load_estimator(directory, Artifact.from_dict(manifest["artifact"]), owner=mv.ref)

    def _orphan_runs(self) -> list:
        """Engine runs of this namespace that no version points at (an interrupted register)."""
        client = self.remote.client
        used = {v.run_id for v in self._search_versions(self._name_filter(None))}
        runs = self.remote.pages(
            "search runs", client.search_runs, [self.experiment_id()], f"tags.`{MANAGED}` = 'true'"
        )
        now = self.clock().astimezone(timezone.utc)
        out = []
        for run in runs:
            if run.info.run_id in used or run.data.tags.get(NAMESPACE, "") != self.namespace:
                continue
            started = datetime.fromtimestamp((run.info.start_time or 0) / 1000, timezone.utc)
            if run.info.status == "RUNNING" and now - started < ORPHAN_GRACE:
                continue
            out.append(run)
        return out

    def check(self) -> list[str]:
        """Problems: versions whose manifest or artifact is missing or differs from the recorded
        size/sha256, and orphan runs (uploaded, never registered)."""
        problems = []
        for mlv in self._search_versions(self._name_filter(None)):
            try:
                manifest = self._stored_manifest(mlv)
                with tempfile.TemporaryDirectory(prefix="engine-mlflow-") as tmp:
                    self._fetch(mlv, manifest, Path(tmp))
            except EngineError as exc:
                problems.append(exc.message)
        for run in self._orphan_runs():
            tags = run.data.tags
            problems.append(
                f"MLflow run {run.info.run_id} of model '{tags.get(MODEL)}' (fingerprint {tags.get(FINGERPRINT)}): "
                "uploaded but never registered as a version; `engine gc` removes it"
            )
        return sorted(problems)

    def gc(self) -> list[str]:
        """Delete orphan runs (artifacts, then the run); return ``MLflow run <id> (<artifact URI>)``
        for each. Registered versions are never touched."""
        removed = []
        for run in self._orphan_runs():
            self._delete_run(run.info.run_id)
            removed.append(f"MLflow run {run.info.run_id} ({run.info.artifact_uri})")
        return removed

    # --- the online snapshot ------------------------------------------------------------------------

    def index(self) -> dict[str, dict]:
        """What an online snapshot embeds, as :meth:`LocalRegistry.index`, with every version copied
        (verified) to ``cache_dir/<name>/<version>`` so the snapshot can serve it without MLflow."""
        if self.cache_dir is None:
            raise InternalError("the MLflow registry needs a cache_dir (the workspace's models/) to publish models online")
        models: dict[str, dict] = {}
        for mv in self.list():
            data = _manifest_bytes(mv.manifest)
            self._materialise(mv, data)
            entry = models.setdefault(mv.name, {"aliases": {}, "versions": []})
            entry["aliases"].update({alias: mv.version for alias in mv.aliases})
            entry["versions"].append(
                {
                    "version": mv.version,
                    "path": f"models/{mv.name}/{mv.version}",
                    "manifest_sha256": _sha256(data),
                    "manifest_size": len(data),
                    "artifact": mv.manifest["artifact"],
                    "feature_view": mv.manifest.get("feature_view"),
                    "feature_view_version": mv.manifest.get("feature_view_version"),
                    "metrics": mv.manifest.get("metrics", {}),
                    "created_at": mv.manifest.get("created_at"),
                    "fingerprint": mv.fingerprint,
                }
            )
        return models

    def _materialise(self, mv: ModelVersion, manifest_data: bytes) -> None:
        """``cache_dir/<name>/<version>/``: ``manifest.json`` (with its version) and the artifact,
        both verified; kept when already complete, else rebuilt in a temp dir and renamed."""
        final = self.cache_dir / mv.name / str(mv.version)
        artifact = mv.artifact
        try:
            read_verified(final / MANIFEST, _sha256(manifest_data), len(manifest_data), what=MANIFEST)
            read_verified(final / artifact.file, artifact.sha256, artifact.size, what=artifact.file)
            return
        except EngineError:
            pass
        tmp = final.parent / f".tmp-{uuid.uuid4().hex}"
        try:
            tmp.mkdir(parents=True)
            mlv = self._mlflow_version(mv)
            what = f"model artifact {artifact.file} of {mv.ref}"
            path = self.remote.download(mlv.source, artifact.file, tmp, what=what)
            _verified(path, artifact.sha256, artifact.size, what=what)
            write_atomic(tmp / MANIFEST, manifest_data)
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
        except OSError as exc:
            raise StorageIOError(f"could not copy {mv.ref} into {final.parent}: {exc.strerror or exc}") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _check_token(value: str, what: str) -> None:
    """Values that go into an MLflow filter string are plain tokens (no quotes to escape)."""
    if not isinstance(value, str) or not _TOKEN.match(value):
        raise InternalError(f"invalid {what} {value!r} for the MLflow registry")
