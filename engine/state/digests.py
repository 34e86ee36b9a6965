"""The workspace's file-digest cache (``digests.json``): lets ``plan``/``apply`` skip re-hashing
source files whose ``stat()`` is unchanged (and ``validate`` re-reading Parquet schemas). A
missing, damaged or foreign cache is simply empty: it only ever saves work, never decides anything.

A process reads each workspace's file once: validation and the apply that follows share one cache,
and what validation learnt is saved with the apply's. Entries are checked against ``stat()`` on
every use, so a cache another process has since rewritten is at worst less complete.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from engine.compiler.fingerprint import DigestCache, cached
from engine.state.workspace import Workspace

_VERSION = 3  # 2: signatures without ctime; 3: BLAKE3 content digests


_LOADED: dict[str, DigestCache] = {}  # digests.json path -> this process's cache of it


def load(workspace: Workspace) -> DigestCache:
    key = str(workspace.digests)
    cache = _LOADED.get(key)
    if cache is None:
        cache = _LOADED[key] = _read(workspace)
    return cache


def _read(workspace: Workspace) -> DigestCache:
    try:
        doc = json.loads(workspace.digests.read_text(encoding="utf-8"))
        if doc.get("version") == _VERSION and isinstance(doc.get("files"), dict):
            return DigestCache(doc["files"])
    except (OSError, ValueError, AttributeError):
        pass
    return DigestCache()


def save(workspace: Workspace, cache: DigestCache) -> None:
    """Write the cache atomically when it learnt something (best effort: a failure costs a re-hash)."""
    from engine.errors import StorageIOError
    from engine.state.atomic import write_atomic

    if not cache.changed or not workspace.root.is_dir():
        return
    try:
        write_atomic(workspace.digests, json.dumps({"version": _VERSION, "files": cache.entries}).encode())
        cache.changed = False
    except StorageIOError:
        pass


@contextmanager
def digests(workspace: Workspace, *, save_after: bool = True) -> Iterator[DigestCache]:
    """File digests in the block come from the workspace's cache, and go to it unless
    ``save_after`` is false (``validate`` writes nothing; the apply after it saves what it learnt)."""
    cache = load(workspace)
    cache.forget_racy()  # a file written within the racy window is read again by every block
    with cached(cache):
        yield cache
    if save_after:
        save(workspace, cache)
