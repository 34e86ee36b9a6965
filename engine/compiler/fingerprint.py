"""Content fingerprints: definitions (formatting, key order and descriptions excluded) and data.

Owns hashing only; must not open connections.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from engine.model import objects as m

if TYPE_CHECKING:
    from concurrent.futures import Future

_EXCLUDED_FIELDS = {"description", "tags", "origin", "resolved_paths", "sql_file", "on_late"}  # on_late: a policy, not a meaning


def _canonical(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Fields at their default are left out, so a new optional setting in a later engine
        # version does not change the fingerprint of specs that do not use it (no needless rebuild).
        return {
            "__type__": type(value).__name__,
            **{
                f.name: _canonical(getattr(value, f.name))
                for f in dataclasses.fields(value)
                if f.name not in _EXCLUDED_FIELDS and not _is_default(f, getattr(value, f.name))
            },
        }
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


canonical = _canonical  # the structured form fingerprints hash (change reports diff it)


def from_canonical(value: object) -> object:
    """The spec object a ``canonical`` form describes (fields it left out take their defaults;
    lists come back as tuples): how a version no longer in the spec is read back from the
    definition recorded when it was built (serving an older model version's feature view).
    Only ``engine.model.objects`` classes; a form that names another type is a ValueError."""
    if isinstance(value, dict):
        if "__type__" not in value:
            return {k: from_canonical(v) for k, v in value.items()}
        cls = getattr(m, str(value["__type__"]), None)
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise ValueError(f"not a spec object type: {value['__type__']!r}")
        return cls(**{k: from_canonical(v) for k, v in value.items() if k != "__type__"})
    if isinstance(value, list):
        return tuple(from_canonical(v) for v in value)
    return value


def _is_default(f: dataclasses.Field, value: object) -> bool:
    if f.default is not dataclasses.MISSING:
        return value == f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return value == f.default_factory()  # type: ignore[misc]
    return False


def digest(*parts: object) -> str:
    """A short stable hash of JSON-able parts.

    >>> digest({"b": 1, "a": 2}) == digest({"a": 2, "b": 1})
    True
    """
    text = json.dumps([_canonical(p) for p in parts], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=1024)
def normalise_sql(sql: str) -> str:
    """SQL with formatting and comments removed, so re-indenting a query changes nothing.

    >>> normalise_sql("select  a\\n  from t -- note") == normalise_sql("SELECT a FROM t")
    True

    Cached per process (a pure function of the text): a long-lived caller that compiles the plan's
    fingerprints again and again (the API's batch scoring, a server) parses each query once, not
    ~4 ms per query per call.
    """
    import sqlglot

    try:
        return sqlglot.parse_one(sql, dialect="duckdb").sql(dialect="duckdb", comments=False)
    except Exception:  # the gate has reported unparsable SQL already
        return " ".join(sql.split())


def definition_fingerprint(obj: object) -> str:
    if isinstance(obj, m.FeatureGroup) and isinstance(obj.transform, m.SqlTransform):
        obj = dataclasses.replace(obj, transform=dataclasses.replace(obj.transform, sql=normalise_sql(obj.transform.sql)))
    return digest(obj)


_CHUNK = 16 << 20  # bytes read and hashed per step, the GIL released for each
#: The algorithm of file content digests, as their prefix: a digest recorded without one (before
#: BLAKE3) is a SHA-256, still compared as one (``content_matches``).
CONTENT_ALGORITHM = "blake3"
_PARALLEL_MIN = 8 << 20  # from this size a file's BLAKE3 runs on every core (its tree hash splits)


def _content_digest(path: Path) -> str:
    """``blake3:`` and the BLAKE3 of a file's bytes.

    BLAKE3 rather than SHA-256: a tree hash, so one large file is hashed on every core, and about
    2x faster per core besides (a 1.2 GB source: 0.31 s on 2 cores against 0.94 s, this machine
    having the SHA extensions)."""
    from blake3 import blake3

    size = os.path.getsize(path)
    h = blake3(max_threads=blake3.AUTO) if size >= _PARALLEL_MIN else blake3()
    return f"{CONTENT_ALGORITHM}:{_read_into(path, h, size).hexdigest()}"


def _sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes (the content digest recorded before BLAKE3)."""
    return _read_into(path, hashlib.sha256(), os.path.getsize(path)).hexdigest()


def _read_into(path: Path, h, size: int):
    """``h`` updated with the file's bytes, read into one reused buffer. Large steps: the GIL is
    given up and taken back twice per step, and a thread hashing beside busy Python code waits for
    it each time (``_hash_in_background``)."""
    buffer = bytearray(min(_CHUNK, max(size, 1)))
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buffer):
            h.update(view[:n])
    return h


_BACKGROUND_SWITCH_S = 0.0005  # the interpreter's thread switch interval while hashing in the background
_BACKGROUND: dict = {"threads": 0, "interval": 0.005}  # background hashing threads running; the interval they replaced
_BACKGROUND_LOCK = threading.Lock()


def _hash_in_background(paths: "list[Path]", workers: int) -> "list[Future[str]]":
    """The content digest of each of ``paths``, computed by ``workers`` daemon threads: a process
    that exits before it needs them (a spec error found meanwhile) does not wait for them, as it would
    for a ``ThreadPoolExecutor``'s.

    Hashing (BLAKE3, ``hashlib``) and file reads release the GIL, but a thread that gave it up
    waits for the busy main thread to hand it back, up to the interpreter's switch interval (5 ms):
    twice per chunk, which made a 250 MB file take 0.41 s beside validation instead of 0.23 s
    alone (measured with SHA-256). While these threads run the interval is 0.5 ms (0.24 s); the
    last one to finish restores it."""
    import sys
    from concurrent.futures import Future

    jobs = [(path, Future()) for path in paths]
    todo = list(reversed(jobs))
    lock = threading.Lock()
    with _BACKGROUND_LOCK:  # overlapping background prefetches: the first saves, the last restores
        if _BACKGROUND["threads"] == 0:
            _BACKGROUND["interval"] = sys.getswitchinterval()
            sys.setswitchinterval(min(_BACKGROUND["interval"], _BACKGROUND_SWITCH_S))
        _BACKGROUND["threads"] += workers

    def work() -> None:
        try:
            while True:
                with lock:
                    if not todo:
                        return
                    path, future = todo.pop()
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(_content_digest(path))
                    except BaseException as exc:  # noqa: BLE001 (handed to the waiting thread)
                        future.set_exception(exc)
        finally:
            with _BACKGROUND_LOCK:
                _BACKGROUND["threads"] -= 1
                if _BACKGROUND["threads"] == 0:
                    sys.setswitchinterval(_BACKGROUND["interval"])

    for i in range(workers):
        threading.Thread(target=work, name=f"engine-digest-bg_{i}", daemon=True).start()
    return [future for _, future in jobs]


class DigestCache:
    """Content digests of files (``_content_digest``), reused while ``stat()`` says a file is
    unchanged (size, mtime, inode): git's index trick, so an unchanged project does not re-read
    gigabytes of source data on every plan. A file modified within ``RACY_NS`` of being hashed is
    never cached (git's "racily clean" rule: a later write in the same clock tick would keep the
    same stat).

    The change time is left out, as Mercurial and DVC do (git's ``core.trustctime=false``): the
    engine itself hard-links Parquet sources into the lake, which changes their ctime, so with it
    every apply re-read every source it had just committed."""

    RACY_NS = 2_000_000_000

    def __init__(self, entries: dict[str, list] | None = None) -> None:
        self.entries: dict[str, list] = dict(entries or {})
        self.changed = False
        # Racily new files, remembered for this process only: the plan and the ingest of one run
        # see one digest per file (and read it once), but nothing unsafe is saved.
        self._racy: dict[str, list] = {}
        # Digests being computed in the background (``prefetch(wait=False)``): cache key -> (the
        # file's stat when it was submitted, the future). Taken by the first ``digest`` of the file
        # whose stat still matches; a file changed since is hashed again.
        self._pending: dict[str, tuple[list[int], Future[str]]] = {}

    def forget_racy(self) -> None:
        """Drop the racily new files' values: they hold for one run (one ``cached`` block of the
        caller's), never for the next one in the same process."""
        self._racy.clear()

    def digest(self, path: Path, compute: "Callable[[Path], str] | None" = None, kind: str = "") -> str:
        """``compute(path)`` (default: the content digest), cached per ``kind`` of digest."""
        key, st, hit = self._lookup(path, kind)
        if hit is not None:
            return hit
        value = self._take_pending(key, st) if compute is None else None
        if value is None:
            value = (compute or _content_digest)(path)
        self._store(key, st, value)
        return value

    def prefetch(self, paths: "Iterable[Path]", *, wait: bool = True) -> None:
        """Hash the files the cache does not hold yet, several at a time: hashing releases the
        GIL, so on a first plan N sources take about the time of the largest one, not the sum
        (and one large file is hashed on every core). Later ``digest`` calls find them.

        ``wait=False`` returns at once and leaves the hashing running in the background: ``apply``
        starts it once validation has resolved the source files, so the digests are
        computed while the rest of the spec is checked (single-threaded Python) instead of after
        it; the ``prefetch`` of the plan then waits only for what is left. A file being hashed is
        not submitted twice."""
        from concurrent.futures import ThreadPoolExecutor

        paths = list(paths)
        missing: dict[str, tuple[Path, os.stat_result]] = {}
        for path in paths:
            key, st, hit = self._lookup(path, "")
            pending = self._pending.get(key)
            if hit is None and not (pending is not None and pending[0] == self._signature(st)):
                missing.setdefault(key, (path, st))
        workers = min(len(missing), os.cpu_count() or 1)
        if wait and workers >= 2:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="engine-digest") as pool:
                values = list(pool.map(_content_digest, [path for path, _ in missing.values()]))
            for (key, (_, st)), value in zip(missing.items(), values, strict=True):
                self._store(key, st, value)
        elif not wait and missing:
            largest_first = sorted(missing.items(), key=lambda item: -item[1][1].st_size)
            futures = _hash_in_background([path for _, (path, _) in largest_first], workers)
            for (key, (_, st)), future in zip(largest_first, futures, strict=True):
                self._pending[key] = (self._signature(st), future)
        if wait and self._pending:  # what the background started: wait for it here
            for path in paths:
                key, st, hit = self._lookup(path, "")
                if hit is None:
                    value = self._take_pending(key, st)
                    if value is not None:
                        self._store(key, st, value)

    def _take_pending(self, key: str, st: os.stat_result) -> str | None:
        """The background digest of the file at ``key`` if it was submitted with this very stat
        (waiting for it to finish); None otherwise, or when hashing failed (the caller hashes
        again and meets the error itself)."""
        pending = self._pending.pop(key, None)
        if pending is None or pending[0] != self._signature(st):
            return None
        try:
            return pending[1].result()
        except OSError:
            return None

    def _lookup(self, path: Path, kind: str) -> tuple[str, os.stat_result, str | None]:
        """(cache key, the file's stat, the cached digest if the stat still matches)."""
        st = path.stat()
        key = f"{kind}{Path(path).resolve()}"
        hit = self.entries.get(key) or self._racy.get(key)
        return key, st, hit[1] if hit is not None and hit[0] == self._signature(st) else None

    @staticmethod
    def _signature(st: os.stat_result) -> list[int]:
        return [st.st_size, st.st_mtime_ns, st.st_ino]

    def _store(self, key: str, st: os.stat_result, value: str) -> None:
        """Remember ``value`` for the file as ``st`` (taken before it was read) describes it."""
        if time.time_ns() - st.st_mtime_ns > self.RACY_NS:
            self.entries[key] = [self._signature(st), value]
            self.changed = True
        else:
            self._racy[key] = [self._signature(st), value]


_ACTIVE: list[DigestCache] = []  # the cache of the innermost ``cached`` block


@contextmanager
def cached(cache: DigestCache) -> Iterator[DigestCache]:
    """Within the block, ``file_digest`` consults ``cache`` (the caller loads and saves it)."""
    _ACTIVE.append(cache)
    try:
        yield cache
    finally:
        _ACTIVE.remove(cache)


def prefetch_digests(paths: "Iterable[Path]") -> None:
    """Warm the active ``DigestCache`` with the files' digests, hashed in parallel (no cache: nothing)."""
    if _ACTIVE:
        _ACTIVE[-1].prefetch(paths)


def file_digest(path: Path) -> str:
    """The content digest of a file, ``blake3:…`` (through the active ``DigestCache``, if any)."""
    return _ACTIVE[-1].digest(path) if _ACTIVE else _content_digest(path)


def content_matches(path: Path, recorded: str) -> bool:
    """Whether the file's content is the one ``recorded`` (a ``file_digest`` of an earlier run)
    describes: a digest recorded before BLAKE3 (``recorded_before_blake3``) is a SHA-256, and the
    file is hashed that way to compare (once per file and stat: the cache keeps it), so an upgrade
    does not see every consumed file as changed (an error for an append-only group)."""
    if recorded_before_blake3(recorded):
        return file_sha256(path) == recorded
    return file_digest(path) == recorded


def recorded_before_blake3(recorded: str) -> bool:
    """Whether a recorded content digest is a SHA-256 from an engine before BLAKE3 (no prefix)."""
    return not recorded.startswith(f"{CONTENT_ALGORITHM}:")


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes (through the active ``DigestCache``, if any): for digests
    that are SHA-256 by contract (the online snapshot's manifest and tables, verified on every
    load), and those recorded before BLAKE3."""
    return memo(path, _sha256, kind="sha256:")


def memo(path: Path, compute: "Callable[[Path], str]", kind: str) -> str:
    """``compute(path)``, remembered per ``kind`` in the active ``DigestCache`` while the file's
    ``stat()`` is unchanged (the value is derived from the file's content alone)."""
    return _ACTIVE[-1].digest(path, compute, kind=kind) if _ACTIVE else compute(path)


def code_digest(path: Path) -> str:
    """The digest of a Python file's code: its syntax tree without comments, formatting,
    docstrings or line numbers, so only a change of what the code does changes it. A file that
    does not parse is hashed byte for byte (importing it will report the error)."""
    return _ACTIVE[-1].digest(path, _code_sha256, kind="code:") if _ACTIVE else _code_sha256(path)


def _code_sha256(path: Path) -> str:
    import ast

    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError):
        return _sha256(path)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree, annotate_fields=False, include_attributes=False).encode()).hexdigest()


def files_fingerprint(root: Path, files: tuple[Path, ...], content: "Callable[[Path], str] | None" = None) -> str:
    """Content hash of data files, keyed by their path relative to the project root. ``content``:
    each file's digest (default: ``file_digest``)."""
    content = content or file_digest
    return digest([(str(p.relative_to(root.resolve())), content(p)) for p in sorted(files)])


def python_package_fingerprint(root: Path, module: str, function: str | None = None) -> str:
    """Hash of the code (``code_digest``) of every ``.py`` file of the top-level package a Python
    reference lives in. Editing what a feature function does re-runs the feature groups and views
    that use it; a comment, a docstring or reformatting does not.

    A module of an installed feature library (``requires``) hashes the library's distribution
    name, its version, its package's code and the normalised syntax tree of ``function``: an
    upgrade of the library changes what uses it.
    """
    from engine.compiler.libraries import project_has_module

    top = module.split(".")[0]
    if not project_has_module(root, top):
        lib = library_code(top)
        if lib is not None:
            return digest(lib["code"], library_function_digest(module, function) if function else "")
    parts: list[tuple[str, str]] = []
    for base in (root, root / "src"):
        pkg, single = base / top, base / f"{top}.py"
        if pkg.is_dir():
            parts += [(str(p.relative_to(base)), code_digest(p)) for p in sorted(pkg.rglob("*.py")) if "__pycache__" not in p.parts]
        elif single.is_file():
            parts.append((single.name, code_digest(single)))
    return digest(parts)


def library_function_digest(module: str, function: str) -> str:
    """``function_digest`` of ``module:function`` where the module is found, remembered in the active
    ``DigestCache`` while the module's file is unchanged: its syntax tree is not parsed again on every
    plan or scoring call ("" when the module cannot be located)."""
    from engine.compiler.libraries import function_digest, locate

    file = locate(module)
    if file is None:
        return ""
    return memo(file, lambda path: function_digest(path, function), kind=f"function:{function}:")


def library_code(top: str) -> dict[str, str] | None:
    """What identity records of the installed feature library providing import name ``top``: its
    distribution name, version and the digest of its package's code; None when not installed."""
    from engine.compiler.libraries import library_of, package_files

    files = package_files(top)
    if not files:
        return None
    lib = library_of(top)
    name, version = (lib.name, lib.version) if lib else ("", "")
    return {"package": name, "version": version, "code": digest(["library", name, version, [(rel, code_digest(p)) for rel, p in files]])}
