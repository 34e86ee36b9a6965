"""The workspace's file-digest cache (``digests.json``): lets ``plan``/``apply`` skip re-hashing
source files whose ``stat()`` is unchanged. A missing, damaged or foreign cache is simply empty:
it only ever saves work, never decides anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from engine.compiler.fingerprint import DigestCache, cached
from engine.state.workspace import Workspace

_VERSION = 2  # 2: signatures without ctime


def load(workspace: Workspace) -> DigestCache:
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
    except StorageIOError:
        pass


@contextmanager
def digests(workspace: Workspace) -> Iterator[DigestCache]:
    """File digests in the block come from (and go to) the workspace's cache."""
    cache = load(workspace)
    with cached(cache):
        yield cache
    save(workspace, cache)
