"""The workspace folder (``.engine/`` beside the spec): its paths and the project lock.

Owns file layout and the cross-process lock; must not touch user tables.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import LockedError, StorageIOError


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def for_project(cls, project_root: Path, override: str | Path | None = None) -> "Workspace":
        return cls(Path(override).resolve() if override else (project_root / ".engine").resolve())

    @property
    def catalog(self) -> Path:
        """The metadata store: SQLite in WAL mode (one writer, many readers across processes)."""
        return self.root / "catalog.sqlite"

    @property
    def tables_dir(self) -> Path:
        """The lake: one Delta table per stored relation (``tables/<schema>/<name>``)."""
        return self.root / "tables"

    @property
    def digests(self) -> Path:
        """The file-digest cache (``engine.state.digests``)."""
        return self.root / "digests.json"

    @property
    def legacy_database(self) -> Path:
        """Where engine 0.1 kept data and metadata in one DuckDB file."""
        return self.root / "engine.duckdb"

    @property
    def lock_file(self) -> Path:
        return self.root / "lock"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    def exists(self) -> bool:
        return self.catalog.exists()

    def check_format(self) -> None:
        """StorageIOError (exit 74) for a workspace an older engine wrote (one DuckDB file)."""
        if self.legacy_database.exists() and not self.catalog.exists():
            raise StorageIOError(
                f"{self.root} was written by an older engine (data in {self.legacy_database.name}); "
                "this engine keeps tables in Delta Lake under tables/: move the folder aside and run `engine apply` to rebuild it"
            )

    def create(self) -> None:
        """Create the workspace folders; StorageIOError (exit 74) naming the folder if it cannot."""
        try:
            for d in (self.root, self.runs_dir, self.tmp_dir, self.tables_dir):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageIOError(
                f"cannot create the workspace {self.root}: {exc.strerror or exc}; "
                "choose a writable folder with --workspace (or workspace: in engine.yaml)"
            ) from None

    @property
    def libraries_file(self) -> Path:
        """The feature libraries' versions at the last successful apply (``requires``)."""
        return self.root / "libraries.json"

    def read_libraries(self) -> dict[str, str]:
        """``{distribution: version}`` recorded by the last successful apply; {} when none."""
        try:
            data = json.loads(self.libraries_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def write_libraries(self, versions: dict[str, str]) -> None:
        from engine.state.atomic import write_atomic

        if versions != self.read_libraries():
            write_atomic(self.libraries_file, json.dumps(versions, indent=2, sort_keys=True).encode())

    def write_run_log(self, run_id: str, record: dict) -> Path:
        """Write ``runs/<run_id>.json`` atomically (temp file, fsync, rename)."""
        from engine.state.atomic import write_atomic

        self.runs_dir.mkdir(parents=True, exist_ok=True)
        final = self.runs_dir / f"{run_id}.json"
        write_atomic(final, json.dumps(record, indent=2, sort_keys=True, default=str).encode())
        return final


class ProjectLock:
    """An exclusive ``flock`` on ``.engine/lock`` (C1, C4).

    A separate lock file, because the catalog (SQLite) and the lake (Delta) serialise single
    commits, not a whole apply, and because closing any descriptor of a database file can drop
    the database's own POSIX lock (V8). The kernel releases a flock when its holder dies, so a killed run never
    leaves a stale lock; the pid and start time written inside are only for the message.
    """

    def __init__(self, workspace: Workspace, timeout_s: float = 0.0):
        self.workspace = workspace
        self.timeout_s = timeout_s
        self._fd: int | None = None

    def __enter__(self) -> "ProjectLock":
        import fcntl

        self.workspace.create()
        fd = os.open(self.workspace.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    os.close(fd)
                    who = f"pid {holder.get('pid', '?')} (started {holder.get('started', '?')})" if holder else "another process"
                    raise LockedError(f"project locked by {who}; wait for it to finish or use --lock-timeout")
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        import fcntl

        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read_holder(fd: int) -> dict | None:
    try:
        data = os.pread(fd, 4096, 0)
        return json.loads(data) if data.strip() else None
    except (OSError, ValueError):
        return None
