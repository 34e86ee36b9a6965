"""The file-digest cache (``DigestCache``): when a file is read again and when its recorded digest
is trusted. Counting the reads of a counting ``compute`` is the oracle."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from blake3 import blake3

from engine.compiler.fingerprint import DigestCache

OLD_NS = time.time_ns() - 3_600 * 1_000_000_000  # an hour ago: well outside the racy window


def content(data: bytes) -> str:
    """The content digest of ``data``, computed independently (the oracle)."""
    return "blake3:" + blake3(data).hexdigest()


class Counting:
    def __init__(self) -> None:
        self.reads: list[Path] = []

    def __call__(self, path: Path) -> str:
        self.reads.append(path)
        return content(path.read_bytes())


def _old_file(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    os.utime(path, ns=(OLD_NS, OLD_NS))
    return path


def test_an_unchanged_file_is_read_once_even_after_the_engine_hard_links_it(tmp_path: Path) -> None:
    data = _old_file(tmp_path / "a.parquet", b"rows")
    cache, compute = DigestCache(), Counting()
    first = cache.digest(data, compute)
    os.link(data, tmp_path / "lake-copy.parquet")  # what committing a Parquet source in place does: ctime changes
    again = DigestCache(cache.entries)  # the next run, from the saved entries
    assert again.digest(data, compute) == first
    assert compute.reads == [data] and cache.changed


def test_a_changed_size_mtime_or_inode_is_read_again(tmp_path: Path) -> None:
    data = _old_file(tmp_path / "a.csv", b"id\n1\n")
    cache, compute = DigestCache(), Counting()
    before = cache.digest(data, compute)
    data.write_bytes(b"id\n2\n")  # same size, new mtime
    os.utime(data, ns=(OLD_NS + 10, OLD_NS + 10))
    changed = cache.digest(data, compute)
    replacement = _old_file(tmp_path / "b.csv", b"id\n3\n")
    os.utime(replacement, ns=(OLD_NS + 10, OLD_NS + 10))
    os.replace(replacement, data)  # same size and mtime, another inode (a tool that writes and renames)
    replaced = cache.digest(data, compute)
    assert len({before, changed, replaced}) == 3
    assert compute.reads == [data, data, data]


def test_a_racily_new_file_is_reused_within_the_run_but_never_saved(tmp_path: Path) -> None:
    data = tmp_path / "fresh.parquet"
    data.write_bytes(b"just written")
    cache, compute = DigestCache(), Counting()
    assert cache.digest(data, compute) == cache.digest(data, compute)  # the plan and the ingest of one run
    assert compute.reads == [data]
    assert cache.entries == {} and not cache.changed  # a later write in the same clock tick could keep the stat
    DigestCache(cache.entries).digest(data, compute)
    assert compute.reads == [data, data]


def test_a_process_keeps_one_cache_per_workspace_but_rereads_racily_new_files_in_each_block(tmp_path: Path) -> None:
    """``engine.state.digests``: validation and the apply after it share the cache loaded once per
    process; a file hashed within the racy window is not trusted by the next block (a rewrite of
    the same size in the same clock tick would keep its stat)."""
    from engine.compiler.fingerprint import file_digest
    from engine.state.digests import digests
    from engine.state.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    ws.root.mkdir()
    old = _old_file(tmp_path / "old.parquet", b"rows")
    fresh = tmp_path / "fresh.parquet"
    fresh.write_bytes(b"aaaa")
    with digests(ws, save_after=False) as first:
        file_digest(old), file_digest(fresh)
    before = fresh.stat()
    fresh.write_bytes(b"bbbb")  # same size, same inode...
    os.utime(fresh, ns=(before.st_atime_ns, before.st_mtime_ns))  # ...and the same mtime: one clock tick
    assert [fresh.stat().st_size, fresh.stat().st_mtime_ns, fresh.stat().st_ino] == [before.st_size, before.st_mtime_ns, before.st_ino]
    with digests(ws) as second:
        assert second is first  # one cache per workspace in this process
        assert file_digest(fresh) == content(b"bbbb")
        assert file_digest(old) == content(b"rows")
    assert str(old.resolve()) in ws.digests.read_text()  # saved by the block that may save
    assert str(fresh.resolve()) not in ws.digests.read_text()  # racily new: never saved


def test_prefetch_hashes_the_missing_files_once_in_parallel_and_digest_reuses_them(tmp_path: Path, monkeypatch) -> None:
    """A first plan warms the cache with every source file at once (threads); ``digest`` then reads
    nothing, the values are each file's SHA-256, and a cached file is not read again."""
    import threading

    from engine.compiler import fingerprint

    files = [_old_file(tmp_path / f"part-{i}.parquet", f"rows {i}".encode() * 1000) for i in range(4)]
    cache = DigestCache()
    cache.digest(files[0])  # already known: the prefetch must not read it again
    reads: list[tuple[Path, str]] = []
    real = fingerprint._content_digest

    def counting(path: Path) -> str:
        reads.append((path, threading.current_thread().name))
        return real(path)

    monkeypatch.setattr(fingerprint, "_content_digest", counting)
    cache.prefetch([*files, files[1]])  # a path named twice is read once
    assert sorted(p for p, _ in reads) == files[1:]
    assert all(name.startswith("engine-digest") for _, name in reads)
    compute = Counting()
    assert [cache.digest(f, compute) for f in files] == [content(f.read_bytes()) for f in files]
    assert compute.reads == [] and len(reads) == 3


def test_prefetch_of_one_missing_file_leaves_it_to_digest_and_a_racy_file_is_not_saved(tmp_path: Path) -> None:
    old = _old_file(tmp_path / "old.parquet", b"old")
    fresh = tmp_path / "fresh.parquet"
    fresh.write_bytes(b"fresh")
    cache = DigestCache()
    cache.prefetch([old])
    assert cache.entries == {}  # one file: nothing gained by a thread
    cache.prefetch([old, fresh])
    assert list(cache.entries) == [str(old.resolve())]  # the fresh one holds for this run only
    compute = Counting()
    assert cache.digest(fresh, compute) == content(b"fresh") and compute.reads == []


def test_background_prefetch_hashes_each_file_once_and_the_plans_prefetch_waits_for_it(tmp_path: Path, monkeypatch) -> None:
    """``prefetch(wait=False)`` (apply, during validation) returns at once and hashes in daemon
    threads; the plan's ``prefetch`` then submits nothing again and stores what they computed, and
    ``digest`` reads nothing."""
    import threading

    from engine.compiler import fingerprint

    files = [_old_file(tmp_path / f"part-{i}.parquet", f"rows {i}".encode() * 1000) for i in range(3)]
    reads: list[tuple[Path, str]] = []
    real = fingerprint._content_digest
    release = threading.Event()

    def slow(path: Path) -> str:
        reads.append((path, threading.current_thread().name))
        release.wait(10)
        return real(path)

    monkeypatch.setattr(fingerprint, "_content_digest", slow)
    cache = DigestCache()
    interval = sys.getswitchinterval()
    cache.prefetch(files, wait=False)
    assert cache.entries == {}  # returned before any hash finished
    assert sys.getswitchinterval() < interval  # the hashing threads get the GIL back sooner meanwhile
    release.set()
    cache.prefetch(files)  # the plan's: waits for the background instead of hashing again
    assert sorted(p for p, _ in reads) == files
    assert all(name.startswith("engine-digest-bg") for _, name in reads)
    assert [cache.digest(f) for f in files] == [content(f.read_bytes()) for f in files]
    assert len(reads) == 3 and sorted(cache.entries) == sorted(str(f.resolve()) for f in files)
    for thread in threading.enumerate():
        if thread.name.startswith("engine-digest-bg"):
            thread.join(10)
    assert sys.getswitchinterval() == interval  # restored by the last thread to finish


def test_a_file_changed_or_unreadable_after_a_background_prefetch_is_hashed_again(tmp_path: Path, monkeypatch) -> None:
    from engine.compiler import fingerprint

    changed = _old_file(tmp_path / "changed.parquet", b"before")
    failed = _old_file(tmp_path / "failed.parquet", b"content")
    real = fingerprint._content_digest
    calls: list[Path] = []

    def flaky(path: Path) -> str:
        calls.append(path)
        if path == failed and calls.count(failed) == 1:
            raise PermissionError(13, "denied for now")
        return real(path)

    monkeypatch.setattr(fingerprint, "_content_digest", flaky)
    cache = DigestCache()
    cache.prefetch([changed, failed], wait=False)
    changed.write_bytes(b"after, longer")  # a new size: the pending value describes the old file
    assert cache.digest(changed) == content(b"after, longer")
    assert cache.digest(failed) == content(b"content")
    assert calls.count(changed) == 2 and calls.count(failed) == 2


def test_a_process_does_not_wait_for_its_background_hashing_to_exit(tmp_path: Path) -> None:
    """A spec error found while the sources are hashed ends ``engine apply`` at once."""
    import subprocess
    import sys

    data = _old_file(tmp_path / "big.parquet", b"x")
    script = (
        "import time, sys\n"
        "from engine.compiler import fingerprint\n"
        "fingerprint._content_digest = lambda path: time.sleep(60)\n"
        "fingerprint.DigestCache().prefetch([fingerprint.Path(sys.argv[1])], wait=False)\n"
    )
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", script, str(data)], check=True, timeout=30)
    assert time.monotonic() - started < 20


def test_overlapping_background_prefetches_restore_the_switch_interval_once_all_are_done(tmp_path: Path, monkeypatch) -> None:
    import threading

    from engine.compiler import fingerprint

    first, second = (_old_file(tmp_path / f"{n}.parquet", n.encode()) for n in ("first", "second"))
    gates = {first: threading.Event(), second: threading.Event()}
    real = fingerprint._content_digest
    monkeypatch.setattr(fingerprint, "_content_digest", lambda path: (gates[path].wait(10), real(path))[1])
    interval = sys.getswitchinterval()
    one, two = DigestCache(), DigestCache()
    one.prefetch([first], wait=False)
    two.prefetch([second], wait=False)  # starts while the first still runs
    gates[first].set()
    assert one.digest(first) == content(b"first")
    assert sys.getswitchinterval() < interval  # the second is still hashing
    gates[second].set()
    assert two.digest(second) == content(b"second")
    for thread in threading.enumerate():
        if thread.name.startswith("engine-digest-bg"):
            thread.join(10)
    assert sys.getswitchinterval() == interval
