"""The online store: snapshots of the online tables and the registry index as files, read back into
memory for point look-ups. Owns ``<workspace>/online/``; must not touch HTTP or training.

Why files: a point look-up must take microseconds and never depend on the lake or the catalog
while an apply writes them (RELIABILITY V7): the serving process reads only snapshots. Each apply that changed anything publishes a new, complete snapshot directory
(one Arrow IPC file per online feature-group version plus ``manifest.json``), fsyncs it, then
atomically replaces ``online/CURRENT`` (temp file + ``os.replace`` + directory fsync). A reader sees
the old snapshot or the new one, never a mix (C2). The last :data:`KEEP_SNAPSHOTS` are kept.

Snapshot ``manifest.json``::

    {"format": 1, "snapshot_id": "...", "run_id": "...", "project": "...", "created_at": "...",
     "feature_groups": {name: {"version", "primary_key", "event_time", "columns": {col: type},
                               "online": bool, "file": "weather__v1.arrow" | null, "rows"}},
     "archived_feature_groups": {"weather@1": {...as above}},  # older versions a trained view reads
     "feature_views": {"trips@1": {"definition", "functions", "joined": {group: version}}},
     "models": {name: {"aliases": {alias: version},
                       "versions": [{"version", "path": "models/<name>/<version>",
                                     "manifest_sha256", "manifest_size", "artifact": {...},
                                     "feature_view", "feature_view_version", "metrics",
                                     "created_at", "fingerprint"}]}}}
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from engine.state.atomic import fsync_directory, write_atomic
from engine.errors import StorageIOError, UsageError
from engine.faults import fault_point

FORMAT = 1
KEEP_SNAPSHOTS = 3
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
_SNAPSHOT_DIR = re.compile(r"^(\d{6})-[A-Za-z0-9_.-]+$")
_TMP = ".tmp-"


def online_dir(workspace) -> Path:
    """``<workspace>/online``."""
    return Path(workspace.root) / "online"


# --- publishing ----------------------------------------------------------------------------------


def _write_arrow(path: Path, table) -> tuple[str, int]:
    """Write ``table`` as an Arrow IPC file, fsynced; return its (sha256, size)."""
    import pyarrow as pa

    with open(path, "wb") as fh:
        with pa.ipc.new_file(fh, table.schema) as writer:
            writer.write_table(table)
        fh.flush()
        os.fsync(fh.fileno())
    return _file_sha256(path), path.stat().st_size


def _file_sha256(path: Path) -> str:
    from engine.compiler.fingerprint import file_sha256

    return file_sha256(path)


def _feature_groups(stores, directory: Path, kept: set[tuple[str, int]] = frozenset()) -> tuple[dict[str, dict], dict[str, dict]]:
    """Write one Arrow file per online feature-group version served: the newest version of each
    name, and the older versions in ``kept`` (read by a view version a model was trained on).
    Returns their manifest entries: (name -> newest, ``name@version`` -> older kept)."""
    from engine.sql.ops import Relation

    versions = stores.offline.all_versions()  # in order: the newest version of a name comes last
    newest = {fgv.name: fgv.version for fgv in versions}
    latest: dict[str, dict] = {}
    older: dict[str, dict] = {}
    for fgv in versions:
        is_newest = newest[fgv.name] == fgv.version
        if not is_newest and (fgv.name, fgv.version) not in kept:
            continue
        entry: dict[str, Any] = {
            "version": fgv.version,
            "primary_key": list(fgv.primary_key),
            "event_time": fgv.event_time,
            "columns": dict(fgv.columns),
            "online": fgv.online_table is not None,
            "fitted": fgv.fitted or {},  # bin edges, PCA fit: built-in on-demand functions apply them online
            "file": None,
            "rows": 0,
        }
        relation = Relation.parse(fgv.online_table) if fgv.online_table is not None else None
        if relation is not None and stores.backend.exists(relation):
            entry["columns"] = stores.backend.columns(relation)
            table = stores.backend.fetch(relation)
            file = f"{relation.name}.arrow"
            entry["sha256"], entry["size"] = _write_arrow(directory / file, table)
            entry["file"], entry["rows"] = file, table.num_rows
        if is_newest:
            latest[fgv.name] = entry
        else:
            older[f"{fgv.name}@{fgv.version}"] = entry
    return latest, older


def _views_in_use(stores) -> dict[str, dict]:
    """``view@version`` -> the definition a model version was trained on (its definition, its
    on-demand functions, the group versions it read), as recorded when the view was built: what
    serving an older model version needs once the spec declares a newer view (DESIGN §3,
    Versions). Views built before the engine recorded ``joined`` are left out (served: 409)."""
    from engine.state.metadata import stored_definitions
    from engine.state.usage import view_users

    catalog = stores.backend.catalog
    users = view_users(catalog)
    if not users:
        return {}
    definitions = stored_definitions(catalog)
    out = {}
    for view, version in sorted(users):
        doc = definitions.get(f"feature_view:{view}@{version}") or {}
        if doc.get("joined") is not None and doc.get("definition") is not None:
            out[f"{view}@{version}"] = {"definition": doc["definition"], "functions": doc.get("functions") or {}, "joined": doc["joined"]}
    return out


def _existing_snapshots(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _SNAPSHOT_DIR.match(p.name)]
    return sorted(found, key=lambda p: int(p.name[:6]))


def published_state(stores) -> dict:
    """What an online snapshot must reflect: the newest published version of every feature group
    and the registry index (versions and aliases). Its digest identifies a publication (I2)."""
    groups = {
        fgv.name: {"version": fgv.version, "fingerprint": fgv.fingerprint, "run_id": fgv.run_id, "rows": fgv.row_count}
        for fgv in stores.offline.all_versions()  # ordered by version: the newest wins
    }
    return {"feature_groups": groups, "models": stores.registry.index()}


def state_digest(state: dict) -> str:
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()


def publish_online_snapshot(stores, project, workspace, run_id: str) -> Path:
    """Write a complete snapshot of the online tables and registry index; flip ``CURRENT`` to it.

    ``stores`` are the run's (a sandboxed backend is fine: data leaves through Arrow, not COPY).
    Returns the snapshot directory. Raises :class:`StorageIOError` on a write failure, leaving
    ``CURRENT`` (and so every reader) on the previous snapshot.
    """
    root = online_dir(workspace)
    existing = _existing_snapshots(root)
    seq = int(existing[-1].name[:6]) + 1 if existing else 1
    safe_run = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)[:80] or "run"
    snapshot_id = f"{seq:06d}-{safe_run}"
    tmp = root / f"{_TMP}{uuid.uuid4().hex}"
    final = root / snapshot_id
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        views = _views_in_use(stores)
        kept = {(group, int(version)) for view in views.values() for group, version in view["joined"].items()}
        latest, archived = _feature_groups(stores, tmp, kept)
        manifest = {
            "format": FORMAT,
            "snapshot_id": snapshot_id,
            "run_id": run_id,
            "project": getattr(project, "name", None),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "feature_groups": latest,
            "archived_feature_groups": archived,
            "feature_views": views,
            "models": stores.registry.index(),
            "state_digest": state_digest(published_state(stores)),
        }
        manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
        write_atomic(tmp / MANIFEST, manifest_bytes)
        fsync_directory(tmp)
        os.rename(tmp, final)
        fsync_directory(root)
        fault_point("mid_snapshot_publish")  # G1: the new snapshot exists, CURRENT still names the old
        write_current(root, snapshot_id, hashlib.sha256(manifest_bytes).hexdigest())
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StorageIOError(f"could not publish the online snapshot under {root}: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(root, keep=snapshot_id)
    return final


def write_current(root: Path, snapshot_id: str, manifest_sha256: str | None = None) -> None:
    """Point ``online/CURRENT`` at ``snapshot_id`` (and the sha256 of its manifest) atomically
    (temp + fsync + replace + dir fsync)."""
    record = {"snapshot_id": snapshot_id, **({"manifest_sha256": manifest_sha256} if manifest_sha256 else {})}
    write_atomic(root / CURRENT, (json.dumps(record) + "\n").encode())


def _prune(root: Path, *, keep: str) -> None:
    """Remove snapshots beyond the newest :data:`KEEP_SNAPSHOTS` (never the current one) and temp dirs."""
    snapshots = _existing_snapshots(root)
    for old in snapshots[:-KEEP_SNAPSHOTS]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)
    for leftover in root.glob(f"{_TMP}*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)


def read_current(root: Path) -> tuple[str, Path]:
    """(snapshot id, directory) named by ``online/CURRENT``; :class:`UsageError` if there is none."""
    try:
        data = json.loads((root / CURRENT).read_text(encoding="utf-8"))
        snapshot_id = data["snapshot_id"]
    except FileNotFoundError:
        raise UsageError(f"no online snapshot in {root}: run `engine apply` first") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"unreadable {root / CURRENT}: {exc}") from None
    if not isinstance(snapshot_id, str) or not _SNAPSHOT_DIR.match(snapshot_id):
        raise UsageError(f"{root / CURRENT} names an invalid snapshot {snapshot_id!r}")
    expected = data.get("manifest_sha256")
    if expected is not None:
        _verify(root / snapshot_id / MANIFEST, expected, f"manifest of online snapshot {snapshot_id}")
    return snapshot_id, root / snapshot_id


def _verify(path: Path, expected: str, what: str) -> None:
    """StorageIOError (exit 74) unless ``path`` exists with sha256 ``expected`` (H7: never serve an edited file)."""
    try:
        actual = _file_sha256(path)
    except OSError as exc:
        raise StorageIOError(f"{what} is unreadable ({exc.strerror or exc}); `engine apply` republishes the snapshot") from None
    if actual != expected:
        raise StorageIOError(
            f"{what} was modified after publication (sha256 {actual[:12]}…, expected {expected[:12]}…); "
            "refusing to serve it — `engine apply` republishes the snapshot"
        )


def problems(stores, workspace) -> list[str]:
    """Why the current snapshot does not equal the published state (I2), or is damaged; [] when it does."""
    return [f"{reason}; `engine apply` republishes it" for reason in _reasons(stores, workspace)]


def ensure_current(stores, project, workspace, run_id: str) -> str | None:
    """Republish the snapshot when it is missing, damaged or stale (I2); what was wrong, or None."""
    reasons = _reasons(stores, workspace)
    if not reasons:
        return None
    publish_online_snapshot(stores, project, workspace, run_id)
    return f"{reasons[0]}; republished"


def _reasons(stores, workspace) -> list[str]:
    root = online_dir(workspace)
    if not (root / CURRENT).exists():
        has_data = bool(stores.offline.all_versions()) or bool(stores.registry.index())
        return ["no online snapshot has been published"] if has_data else []
    try:
        snapshot_id, directory = read_current(root)
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        for entry in manifest.get("feature_groups", {}).values():
            if entry.get("file") and entry.get("sha256"):
                _verify(directory / entry["file"], entry["sha256"], f"online table {entry['file']} of snapshot {snapshot_id}")
    except (UsageError, StorageIOError) as exc:
        return [exc.message.split("; `engine apply`")[0]]
    except (OSError, ValueError) as exc:
        return [f"online snapshot unreadable ({exc})"]
    if manifest.get("state_digest") != state_digest(published_state(stores)):
        return [f"online snapshot {snapshot_id} is stale: it does not reflect the published feature groups and model aliases"]
    return []


# --- reading -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnlineTable:
    """One online feature-group version in memory: ``rows[key] -> row tuple`` in ``columns`` order.

    ``times[key]`` is the row's event time in microseconds since the epoch (UTC), when the group
    has an event time. Keys are tuples of the primary-key values as stored (int, str, ...).
    """

    name: str
    version: int
    primary_key: tuple[str, ...]
    event_time: str | None
    columns: tuple[str, ...]
    types: dict[str, str]
    rows: dict[tuple, tuple]
    times: dict[tuple, int]

    def index(self, column: str) -> int:
        return self.columns.index(column)


def _is_timestamp(arrow_type) -> bool:
    import pyarrow as pa

    return pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type)


def _load_table(path: Path, name: str, entry: dict) -> OnlineTable:
    import pyarrow as pa
    import pyarrow.compute as pc

    with pa.memory_map(str(path), "r") as source:
        table = pa.ipc.open_file(source).read_all()
    columns = tuple(table.column_names)
    values: list[list] = []
    for column, field in zip(table.columns, table.schema):
        if _is_timestamp(field.type):
            import pandas as pd

            if pa.types.is_date(field.type):
                # Offline, pandas reads a DATE as a datetime64 (a Timestamp at midnight): the same
                # here, so an on-demand function gets the same kind of value on both paths.
                column = pc.cast(column, pa.timestamp("us"))
            values.append([None if v is pd.NaT or v is None else v for v in column.to_pandas().tolist()])
        elif pa.types.is_decimal(field.type):
            # Offline a DECIMAL reaches pandas (and so the model and on-demand functions) as a
            # float64; online too, never as decimal.Decimal (which JSON would send as a string).
            values.append(pc.cast(column, pa.float64()).to_pylist())
        else:
            values.append(column.to_pylist())
    pk = tuple(entry["primary_key"])
    key_idx = [columns.index(k) for k in pk]
    key_cols = [values[i] for i in key_idx]
    rows = dict(zip(zip(*key_cols), zip(*values))) if values else {}
    times: dict[tuple, int] = {}
    event_time = entry.get("event_time")
    if event_time:
        ts = table.column(event_time)
        micros = pc.cast(pc.cast(ts, pa.timestamp("us", tz="UTC")), pa.int64()).to_pylist()
        times = dict(zip(zip(*key_cols), micros))
    return OnlineTable(name, int(entry["version"]), pk, event_time, columns, dict(entry["columns"]), rows, times)


class OnlineSnapshot:
    """A loaded snapshot: its manifest and every online feature group as an in-memory dict."""

    def __init__(self, snapshot_id: str, directory: Path, manifest: dict, tables: dict[str, OnlineTable]):
        self.snapshot_id = snapshot_id
        self.directory = directory
        self.manifest = manifest
        self.tables = tables

    @classmethod
    def load(cls, snapshot_dir: str | Path) -> "OnlineSnapshot":
        """Read ``manifest.json`` and every Arrow file of a snapshot directory into memory."""
        directory = Path(snapshot_dir)
        try:
            manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"unreadable online snapshot {directory}: {exc}") from None
        if manifest.get("format") != FORMAT:
            raise UsageError(f"online snapshot {directory} has format {manifest.get('format')!r}, expected {FORMAT}")
        tables = {}
        for section in ("feature_groups", "archived_feature_groups"):
            for key, entry in manifest.get(section, {}).items():
                if entry.get("file"):
                    if entry.get("sha256"):
                        _verify(directory / entry["file"], entry["sha256"], f"online table {entry['file']} of snapshot {manifest.get('snapshot_id')}")
                    tables[key] = _load_table(directory / entry["file"], key.split("@")[0], entry)
        return cls(manifest["snapshot_id"], directory, manifest, tables)

    def feature_group(self, name: str, version: int | None = None) -> dict | None:
        """The manifest entry of a feature group (online or not): its newest version, or
        ``version`` (kept while a model version's view reads it); None if the snapshot has neither."""
        entry = self.manifest.get("feature_groups", {}).get(name)
        if version is None or (entry is not None and int(entry["version"]) == version):
            return entry
        return self.manifest.get("archived_feature_groups", {}).get(f"{name}@{version}")

    def table(self, name: str, version: int | None = None) -> "OnlineTable | None":
        """The online table of ``name`` (its newest version, or ``version``), or None."""
        entry = self.feature_group(name, version)
        if entry is None:
            return None
        return self.tables.get(name if entry is self.manifest.get("feature_groups", {}).get(name) else f"{name}@{version}")

    def view_definition(self, name: str, version: int) -> dict | None:
        """The recorded definition of view version ``name@version`` a model version was trained
        on (``definition``, ``functions``, ``joined``), or None."""
        return self.manifest.get("feature_views", {}).get(f"{name}@{version}")

    def lookup(self, fg_name: str, key: tuple) -> dict | None:
        """The latest row of ``fg_name`` for ``key`` as a dict, or None (unknown key or group)."""
        table = self.tables.get(fg_name)
        if table is None:
            return None
        row = table.rows.get(tuple(key))
        return None if row is None else dict(zip(table.columns, row))


@runtime_checkable
class OnlineStore(Protocol):
    """The latest row per key, for serving. One contract suite (tests/contract) runs on every implementation."""

    def publish(self, stores, project, run_id: str) -> str: ...
    def current(self) -> str | None: ...
    def open(self) -> OnlineSnapshot: ...


class SnapshotOnlineStore:
    """Snapshots under ``<workspace>/online`` (see the module docstring)."""

    def __init__(self, workspace) -> None:
        self.workspace = workspace
        self.root = online_dir(workspace)

    def publish(self, stores, project, run_id: str) -> str:
        """Publish a complete snapshot of ``stores`` and make it current; returns its id."""
        return publish_online_snapshot(stores, project, self.workspace, run_id).name

    def current(self) -> str | None:
        """The current snapshot's id, or None before the first publication."""
        try:
            return read_current(self.root)[0]
        except UsageError:
            return None

    def open(self) -> OnlineSnapshot:
        """The current snapshot, loaded into memory; UsageError when there is none."""
        _, directory = read_current(self.root)
        return OnlineSnapshot.load(directory)
