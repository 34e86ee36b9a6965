"""Durable, atomic file writes in the workspace (RELIABILITY G4): temp file, fsync, rename, fsync dir.

Shared by the registry (artifacts, manifests), online snapshots, inference outputs and run logs.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from engine.errors import StorageIOError


def fsync_directory(directory: Path) -> None:
    """Make a rename inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a fsynced temp file in the same directory and ``os.replace``.

    On any ``OSError`` (disk full, EIO) the temp file is removed, nothing stays under the final
    name, and :class:`StorageIOError` is raised.
    """
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    fd: int | None = None
    replaced = False
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
        os.close(fd)
        fd = None
        os.replace(tmp, path)
        replaced = True
        fsync_directory(path.parent)
    except OSError as exc:
        if fd is not None:
            quietly(os.close, fd)
        quietly(os.unlink, tmp)
        if replaced:
            quietly(os.unlink, path)
        raise StorageIOError(f"could not write {path}: {exc.strerror or exc}") from exc


def quietly(func, *args) -> None:
    try:
        func(*args)
    except OSError:
        pass
