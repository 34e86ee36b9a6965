"""The online service without HTTP: a loaded snapshot with its verified models (``OnlineState``),
hot swap on a new snapshot (``StateHolder``), request parsing and prediction. Shared by
``engine serve`` (through ``engine.serving.http``) and ``engine predict``. Never opens the DuckDB
database (an apply holds its lock, V7): it reads snapshots and model files only. Must not import
the API, the runtime, the CLI or HTTP libraries.

A refused request raises :class:`engine.errors.RequestError` (status, message, per-field errors).
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import EngineError, ExecutionError, RequestError, SpecError, UsageError
from engine.ids import ModelRef
from engine.model import objects as m
from engine.registry.artifacts import Artifact, load_estimator, read_verified
from engine.registry.base import ModelVersion, resolve
from engine.serving.scoring import LoadedModel
from engine.serving.vectors import FeatureVectorService, InputField, OnDemandError, coerce_row, input_kind
from engine.state.workspace import Workspace
from engine.store.online import CURRENT, OnlineSnapshot, online_dir, read_current
from engine.transforms.model_dependent import FittedTransforms

log = logging.getLogger("engine.serving")

NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
SELECTOR = re.compile(r"[a-z0-9_:-]{1,80}")
MAX_ROWS = 1000


# --- strict JSON (V23, H2, H3) -------------------------------------------------------------------


class _Object(dict):
    """A parsed JSON object that remembers keys given more than once."""

    duplicates: tuple[str, ...] = ()


def _pairs(pairs: list[tuple[str, Any]]) -> dict:
    obj = _Object(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        obj.duplicates = tuple(dict.fromkeys(k for k, _ in pairs if k in seen or seen.add(k)))  # type: ignore[func-returns-value]
    return obj


def _constant(name: str) -> float:
    raise ValueError(f"{name} is not a valid JSON number")


# A \uD800-\uDFFF escape, or such a code point in a ``str`` input: the only ways JSON text can
# yield a lone surrogate, which is not Unicode (it cannot be encoded as UTF-8, so an error body
# naming it would itself fail with a 500). One C-level scan of the text; the walk runs only on a hit
# (a valid pair such as \ud83d\ude00 decodes to one code point and passes).
_SURROGATE_HINT = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_MAX_UNICODE_ERRORS = 20


def parse_json(raw: bytes | str) -> object:
    """JSON with NaN/Infinity refused, lone surrogates (invalid Unicode, in keys or strings)
    refused and duplicate keys remembered; RequestError(422) otherwise."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        doc = json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant)
    except UnicodeDecodeError:
        raise RequestError(422, "the body is not UTF-8 text", [{"path": "$", "message": "not UTF-8"}]) from None
    except RecursionError:
        raise RequestError(422, "JSON nested too deeply", [{"path": "$", "message": "nested too deeply"}]) from None
    except ValueError as exc:
        raise RequestError(422, "the body is not valid JSON", [{"path": "$", "message": str(exc)}]) from None
    if _SURROGATE_HINT.search(text):
        errors = _invalid_unicode(doc)
        if errors:
            raise RequestError(422, "the body holds invalid Unicode (a lone surrogate)", errors)
    return doc


def _invalid_unicode(doc: object) -> list[dict]:
    """Errors for the keys and strings of ``doc`` holding a lone surrogate (iterative: no recursion
    limit; a bad key is shown JSON-escaped in its path so the error body itself encodes)."""
    errors: list[dict] = []
    stack: list[tuple[str, object]] = [("$", doc)]
    while stack and len(errors) < _MAX_UNICODE_ERRORS:
        path, obj = stack.pop()
        if isinstance(obj, str):
            bad = _SURROGATE.search(obj)
            if bad:
                errors.append({"path": path, "message": f"invalid Unicode: lone surrogate \\u{ord(bad.group()):04x} in a string"})
        elif isinstance(obj, dict):
            items = []
            for key, value in obj.items():
                bad = _SURROGATE.search(key)
                if bad:
                    errors.append({"path": f"{path}[{json.dumps(key)}]", "message": f"invalid Unicode: lone surrogate \\u{ord(bad.group()):04x} in a key"})
                else:
                    items.append((f"{path}.{key}", value))
            stack.extend(reversed(items))
        elif isinstance(obj, list):
            stack.extend(reversed([(f"{path}[{i}]", v) for i, v in enumerate(obj)]))
    return errors[:_MAX_UNICODE_ERRORS]


def _duplicates(obj: object, path: str) -> list[dict]:
    return [{"path": f"{path}.{k}", "message": "duplicate key"} for k in getattr(obj, "duplicates", ())]


def body_rows(doc: object) -> list:
    """``{"rows": [...]}`` or a single row object -> the list of rows (413 above MAX_ROWS)."""
    if not isinstance(doc, dict):
        raise RequestError(422, "the body must be a JSON object", [{"path": "$", "message": 'expected {"rows": [...]} or one row object'}])
    if "rows" not in doc:
        return [doc]
    errors = _duplicates(doc, "$") + [{"path": f"$.{k}", "message": "unknown field next to rows"} for k in doc if k != "rows"]
    rows = doc["rows"]
    if not isinstance(rows, list):
        errors.append({"path": "$.rows", "message": "must be an array of row objects"})
    elif not rows:
        errors.append({"path": "$.rows", "message": "must hold at least one row"})
    if errors:
        raise RequestError(422, "invalid request", errors)
    if len(rows) > MAX_ROWS:
        raise RequestError(413, f"too many rows: {len(rows)} > {MAX_ROWS} per request", [{"path": "$.rows", "message": f"max {MAX_ROWS} rows"}])
    return rows


def jsonable(value: object) -> object:
    """A feature value as JSON: NaN/NA -> null, timestamps -> ISO strings, numpy scalars -> Python."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return jsonable(value.item())
    if type(value).__name__ == "Decimal":  # a number stays a JSON number (the online store reads decimals as floats already)
        return jsonable(float(value))
    return str(value)


# --- models from a snapshot ----------------------------------------------------------------------


def snapshot_versions(models_index: dict, name: str) -> list[ModelVersion]:
    """The versions of ``name`` a snapshot lists, oldest first. Each ``manifest`` is the snapshot's
    index entry (path, hashes, artifact, feature view, metrics), not ``manifest.json`` itself,
    which :func:`load_snapshot_model` reads and verifies."""
    entry = models_index.get(name) or {"versions": [], "aliases": {}}
    aliases = entry["aliases"]
    return [
        ModelVersion(name, int(v["version"]), v.get("fingerprint") or "", v, v.get("created_at") or "",
                     tuple(sorted(a for a, n in aliases.items() if n == v["version"])))
        for v in entry["versions"]
    ]


def resolve_entry(models_index: dict, ref: ModelRef) -> dict:
    """The snapshot's index entry for ``name@selector`` (latest, N, best:metric, alias), by the
    registry's one resolver; RequestError(404) with its message if there is none."""
    try:
        return resolve(snapshot_versions(models_index, ref.name), ref, known_models=sorted(models_index)).manifest
    except UsageError as exc:
        raise RequestError(404, exc.message) from None


def load_snapshot_model(workspace_root: Path, name: str, entry: dict, aliases: dict) -> LoadedModel:
    """Load one model version named by a snapshot, verifying manifest and artifact hashes (G5, H7)."""
    version = int(entry["version"])
    ref = f"model:{name}@{version}"
    if not NAME.match(name) or entry["path"] != f"models/{name}/{version}":
        raise ExecutionError(f"{ref}: snapshot names an unexpected artifact path {entry['path']!r}")
    directory = Path(workspace_root) / entry["path"]
    data = read_verified(directory / "manifest.json", entry["manifest_sha256"], int(entry["manifest_size"]), what=f"manifest.json of {ref}")
    manifest = json.loads(data)
    artifact = Artifact.from_dict(manifest["artifact"])
    if artifact.sha256 != entry["artifact"]["sha256"]:
        raise ExecutionError(f"{ref}: manifest artifact hash differs from the registry index")
    estimator = load_estimator(directory, artifact, owner=ref)
    if artifact.format == "xgboost-ubj":
        # One row per request: XGBoost's OpenMP pool only adds contention (measured in
        # benchmarks/http_predict.py: p50 10 s -> 4 ms at 200 req/s on 2 cores). Same numbers.
        estimator.set_params(n_jobs=1)
    transforms = FittedTransforms.from_dict(manifest["transformers"])
    mine = tuple(sorted(a for a, v in aliases.items() if v == version))
    mv = ModelVersion(name, version, manifest.get("fingerprint", ""), manifest, manifest.get("created_at", ""), mine)
    return LoadedModel(mv, estimator, transforms)


@dataclass
class Endpoint:
    """What answers a predict route: a model version, its feature view's vector service, its inputs."""

    name: str
    model: LoadedModel
    service: FeatureVectorService | None
    fields: dict[str, InputField]
    conflict: str | None = None  # M2: set when the served view is not the one the model was trained on
    on_missing: str = "null"  # the job's rule for a row whose entity has no stored features

    @property
    def feature_view(self) -> str:
        man = self.model.manifest
        return f"feature_view:{man['feature_view']}@{man['feature_view_version']}"


# --- the state ----------------------------------------------------------------------------------


@dataclass
class OnlineState:
    """One snapshot, loaded and verified: what a request sees from start to end."""

    project: m.Project
    workspace_root: Path
    store: OnlineSnapshot
    jobs: dict[str, Endpoint]
    views: dict[str, FeatureVectorService]
    loaded_at: float = field(default_factory=time.time)
    _models: dict[tuple[str, int], Endpoint] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)  # model() builds its view under it

    @property
    def snapshot_id(self) -> str:
        return self.store.snapshot_id

    @property
    def models_index(self) -> dict:
        return self.store.manifest.get("models", {})

    def job(self, name: str) -> Endpoint:
        if not NAME.match(name) or name not in self.jobs:
            raise RequestError(404, f"unknown online job '{name}'; known: {', '.join(sorted(self.jobs)) or 'none'}")
        return self.jobs[name]

    def view(self, name: str) -> FeatureVectorService:
        if not NAME.match(name) or name not in self.project.feature_views:
            raise RequestError(404, f"unknown feature view '{name}'")
        if name not in self.views:
            with self._lock:
                if name not in self.views:
                    try:
                        self.views[name] = FeatureVectorService(self.project, self.project.feature_views[name], self.store)
                    except EngineError as exc:
                        raise RequestError(409, exc.message) from None
        return self.views[name]

    def archived_view(self, name: str, version: int) -> FeatureVectorService | None:
        """The vectors of view version ``name@version`` as a model version was trained on it, from
        the definition the snapshot keeps (None when it keeps none; SpecError when it cannot be
        served, e.g. a group version it read is gone)."""
        key = f"{name}@{version}"
        if key not in self.views:
            recorded = self.store.view_definition(name, version)
            if recorded is None:
                return None
            from engine.compiler.fingerprint import from_canonical

            with self._lock:
                if key not in self.views:
                    try:
                        fv = from_canonical(recorded["definition"])
                        functions = {n: from_canonical(f) for n, f in recorded["functions"].items()}
                        if not isinstance(fv, m.FeatureView) or not all(isinstance(f, m.Function) for f in functions.values()):
                            raise ValueError("not a feature view definition")
                        self.views[key] = FeatureVectorService(self.project, fv, self.store, joined=recorded["joined"], functions=functions)
                    except (TypeError, ValueError, KeyError) as exc:
                        raise SpecError(f"feature_view:{key}: its recorded definition is unreadable ({exc})") from None
        return self.views[key]

    def model(self, name: str, selector: str | None = None) -> Endpoint:
        """The endpoint of ``name@selector`` (loaded, verified, cached per state); 404 if unknown."""
        if not NAME.match(name) or (selector is not None and not SELECTOR.fullmatch(selector)):
            raise RequestError(404, f"unknown model '{name}'")
        entry = resolve_entry(self.models_index, ModelRef(name, selector))
        key = (name, int(entry["version"]))
        if key not in self._models:
            with self._lock:
                if key not in self._models:
                    try:
                        self._models[key] = self._endpoint(name, entry, None)
                    except EngineError as exc:
                        raise RequestError(503, f"model:{name}@{key[1]} cannot be served: {exc.message}") from None
        return self._models[key]

    def _endpoint(self, name: str, entry: dict, job: m.InferenceJob | None) -> Endpoint:
        model = load_snapshot_model(self.workspace_root, name, entry, self.models_index[name]["aliases"])
        man = model.manifest
        fv = self.project.feature_views.get(man["feature_view"])
        pinned = f"feature_view:{man['feature_view']}@{man['feature_view_version']}"
        label = f"job '{job.name}'" if job else model.ref
        if fv is None or fv.version != man["feature_view_version"]:
            # An older view version: served from the definition recorded when it was built and
            # the group versions it read, kept in the snapshot while a model version uses them.
            service = self.archived_view(man["feature_view"], int(man["feature_view_version"]))
            if service is None:
                declared = f"@{fv.version}" if fv else " (absent)"
                return Endpoint(job.name if job else name, model, None, {}, f"{model.ref} was trained on {pinned}, whose definition this workspace did not record; the spec declares feature_view:{man['feature_view']}{declared}")
        else:
            service = self.view(fv.name)
        absent = [c for c in man["feature_columns"] if c not in service.layout.features]
        if absent:  # a model may take a subset of the view's features (features / exclude), never more
            return Endpoint(label, model, None, {}, f"{model.ref} expects features {absent} that {pinned} online does not give (it gives {list(service.layout.features)})")
        fields = dict(service.fields)
        if job is not None:
            fields = _job_fields(job, service)
        return Endpoint(job.name if job else name, model, service, fields, on_missing=job.on_missing if job else "null")

    def predict(self, ep: Endpoint, rows: list, *, from_text: bool = False) -> dict:
        """Validate, build vectors, transform and predict; the response body (without headers)."""
        if ep.conflict:
            raise RequestError(409, ep.conflict)
        vectors = self._vectors(ep.service, ep.fields, rows, from_text)
        matrix, errors = [], []
        for i, vr in enumerate(vectors):
            try:
                matrix.append(ep.model.transforms.transform_row(vr.values))
            except ValueError as exc:
                errors.append({"path": f"$.rows[{i}]", "message": str(exc)})
        if errors:
            raise RequestError(422, "invalid request", errors)
        preds = _predict_rows(ep.model, matrix)
        out = []
        for vr, pred in zip(vectors, preds):
            if vr.missing and ep.on_missing != "predict":
                # No stored features for the entity: no prediction (on_missing: null), or an error.
                pred = {"prediction": None}
                if ep.on_missing == "error":
                    pred["error"] = f"no stored features for this row's keys in {', '.join(vr.missing)} (on_missing: error)"
            status = "error" if "error" in pred else ("missing" if vr.missing else "ok")
            item = {"status": status, **pred}
            if vr.missing:
                item["missing"] = vr.missing
            if vr.expired:
                item["expired"] = vr.expired
            out.append(item)
        man = ep.model.manifest
        return {"model": ep.model.ref, "model_version": man["version"], "feature_view": ep.feature_view, "snapshot": self.snapshot_id, "predictions": out}

    def vector(self, name: str, rows: list, *, from_text: bool = False) -> dict:
        """Feature vectors of a view (raw values, no model transforms)."""
        service = self.view(name)
        fv = service.feature_view
        vectors = self._vectors(service, service.fields, rows, from_text)
        out = []
        for vr in vectors:
            item: dict = {"status": "missing" if vr.missing else "ok", "values": {k: jsonable(v) for k, v in vr.values.items()}}
            if vr.helpers:
                item["helpers"] = {k: jsonable(v) for k, v in vr.helpers.items()}
            if vr.missing:
                item["missing"] = vr.missing
            if vr.expired:
                item["expired"] = vr.expired
            out.append(item)
        return {"feature_view": str(fv.id), "snapshot": self.snapshot_id, "vectors": out}

    def _vectors(self, service, fields, rows, from_text):
        typed, errors = [], []
        for i, row in enumerate(rows):
            path = f"$.rows[{i}]"
            values, errs = coerce_row(row, fields, path, from_text=from_text)
            errors += _duplicates(row, path) + errs
            typed.append(values)
        if errors:
            raise RequestError(422, "invalid request", errors)
        vectors = []
        for i, values in enumerate(typed):
            try:
                vectors.append(service.vector(values, {}))
            except OnDemandError as exc:
                errors.append({"path": f"$.rows[{i}]", "message": str(exc)})
        if errors:
            raise RequestError(422, "invalid request", errors)
        return vectors

    def describe(self) -> dict:
        """The /metadata body: jobs, models and versions, feature views, snapshot."""
        jobs = {
            name: {"model": ep.model.ref, "feature_view": ep.feature_view, "conflict": ep.conflict,
                   "inputs": {f.name: {"type": f.kind, "required": f.required} for f in ep.fields.values()}}
            for name, ep in self.jobs.items()
        }
        models = {
            name: {"versions": [v["version"] for v in entry["versions"]], "aliases": entry["aliases"],
                   "latest": entry["versions"][-1]["version"] if entry["versions"] else None}
            for name, entry in self.models_index.items()
        }
        return {"project": self.project.name, "snapshot": self.snapshot_id, "jobs": jobs, "models": models,
                "feature_views": sorted(self.project.feature_views)}


def _job_fields(job: m.InferenceJob, service: FeatureVectorService) -> dict[str, InputField]:
    declared = [*job.keys, *job.request]
    absent = [f.name for f in service.fields.values() if f.required and f.name not in declared]
    if absent:
        raise SpecError(f"{job.id}: the feature view needs request values {absent}; add them to keys or request")
    fields = {k: InputField(k, input_kind(service.spine_types.get(k, "")), True, True) for k in job.keys}
    for r in job.request:
        fields.setdefault(r, InputField(r, input_kind(service.spine_types.get(r, "")), True))
    for f in service.fields.values():
        fields.setdefault(f.name, InputField(f.name, f.kind, False))
    return fields


def _predict_rows(model, matrix: list[list[float]]) -> list[dict]:
    """Predictions for all rows; a row the estimator refuses (NaN for some sklearn models) gets an error."""
    try:
        return model.predict_vectors(matrix)
    except ValueError:
        out = []
        for vec in matrix:
            try:
                out.append(model.predict_vectors([vec])[0])
            except ValueError as exc:
                out.append({"prediction": None, "error": f"{model.ref} cannot score this row: {str(exc).splitlines()[0]}"})
        return out


def load_state(project: m.Project, workspace_root: Path, snapshot_dir: Path, *, allow_code_drift: bool = False) -> OnlineState:
    """Load a snapshot and every online job's model (hash-verified); raise on any failure, and
    PlanError when a job's model was trained with other on-demand function code than is on disk
    (``allow_code_drift``: log it and serve)."""
    from engine.serving.scoring import check_code

    store = OnlineSnapshot.load(snapshot_dir)
    state = OnlineState(project, Path(workspace_root), store, {}, {})
    for job in sorted(project.inference.values(), key=lambda j: j.name):
        if job.mode != m.InferenceMode.ONLINE:
            continue
        ref = ModelRef.parse(job.model)
        try:
            entry = resolve_entry(state.models_index, ref)
        except RequestError as exc:
            raise SpecError(f"{job.id}: {exc.message}") from None
        endpoint = state._endpoint(ref.name, entry, job)
        if endpoint.conflict is None:
            for drift in check_code(endpoint.model, project.root, allow=allow_code_drift, where=f"{job.id}: "):
                log.warning("%s: %s serves with the code on disk (--allow-code-drift): %s differs from its training", job.id, endpoint.model.ref, drift)
        state.jobs[job.name] = endpoint
    return state


class StateHolder:
    """The current :class:`OnlineState`, swapped atomically when ``online/CURRENT`` changes (C2, H7).

    A request reads ``holder.current`` once and finishes on that object. A snapshot that fails to
    load (hash mismatch, missing file) is logged and skipped; the previous one keeps serving.
    """

    def __init__(self, project: m.Project, workspace_root: Path, *, poll_s: float = 0.5, allow_code_drift: bool = False):
        self.project, self.workspace_root, self.poll_s = project, Path(workspace_root), poll_s
        self.allow_code_drift = allow_code_drift
        self.online_root = online_dir(Workspace(self.workspace_root))
        self._seen = self._current_file()
        _, directory = read_current(self.online_root)
        self.current: OnlineState = load_state(project, self.workspace_root, directory, allow_code_drift=allow_code_drift)
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _current_file(self) -> bytes | None:
        try:
            return (self.online_root / CURRENT).read_bytes()
        except OSError:
            return None

    def poll_once(self) -> bool:
        """Load and swap in a new snapshot if CURRENT changed; True if swapped."""
        seen = self._current_file()
        if seen is None or seen == self._seen:
            return False
        self._seen = seen
        try:
            snapshot_id, directory = read_current(self.online_root)
            state = load_state(self.project, self.workspace_root, directory, allow_code_drift=self.allow_code_drift)
        except Exception as exc:  # noqa: BLE001 — any failure keeps the old state serving
            self.last_error = f"snapshot from {seen.decode(errors='replace').strip()} not loaded: {exc}"
            log.error("%s; still serving %s", self.last_error, self.current.snapshot_id)
            return False
        self.current = state  # one reference assignment: atomic for readers
        self.last_error = None
        log.info("serving snapshot %s", snapshot_id)
        return True

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="engine-snapshot-poller", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.poll_once()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


