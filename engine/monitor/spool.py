"""The request log of the online endpoint: a sample of requests, their feature vectors and
predictions, appended as JSON lines to an append-only spool under the workspace
(``monitoring/spool/<job>/``), which ``engine monitor`` ingests into a feature group.

Never blocks or fails a request: :meth:`PredictionSpool.record` puts the rows on a bounded queue
(rows are dropped and counted when it is full) and a background thread writes them. Files are
written as ``*.jsonl.part`` and renamed to ``*.jsonl`` when rotated (by size, by age, on
:meth:`~PredictionSpool.flush` and on shutdown), so a reader only ever sees complete files. The
spool is bounded: past ``max_bytes`` the oldest complete files are deleted (their rows counted as
dropped).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger("engine.monitor")

QUEUE_ROWS = 10_000
ROTATE_BYTES = 4 << 20
ROTATE_S = 10.0


def spool_dir(workspace_root: Path, job: str | None = None) -> Path:
    base = Path(workspace_root) / "monitoring" / "spool"
    return base / job if job else base


@dataclass(frozen=True)
class JobLog:
    """What the spool needs to know about one monitored job."""

    sample: float
    max_bytes: int


class _File:
    def __init__(self, directory: Path, clock: Callable[[], float]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.fromtimestamp(clock(), timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        self.final = directory / f"{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self.part = self.final.with_name(self.final.name + ".part")
        self.handle = open(self.part, "a", encoding="utf-8")
        self.opened = clock()
        self.size = 0

    def finish(self) -> None:
        self.handle.close()
        if self.size:
            os.replace(self.part, self.final)
        else:
            self.part.unlink(missing_ok=True)


class PredictionSpool:
    """The endpoint's request log (``wants``/``record`` from request handlers, ``close`` at shutdown)."""

    def __init__(self, workspace_root: Path, jobs: Mapping[str, JobLog], *, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.time, rotate_bytes: int = ROTATE_BYTES, rotate_s: float = ROTATE_S) -> None:
        self.root = Path(workspace_root)
        self.jobs = dict(jobs)
        self.rng = rng or random.Random()
        self.clock = clock
        self.rotate_bytes, self.rotate_s = rotate_bytes, rotate_s
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUE_ROWS)
        self.dropped = 0  # rows
        self.written = 0  # rows
        self._files: dict[str, _File] = {}
        self._stop = threading.Event()
        self._flush_requested = threading.Event()
        self._flushed = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    # --- the request side (never raises, never waits) ---------------------------------------------

    def wants(self, job: str) -> bool:
        """Whether this request of ``job`` is in the sample."""
        settings = self.jobs.get(job)
        return settings is not None and (settings.sample >= 1.0 or self.rng.random() < settings.sample)

    def record(self, job: str, model: str, snapshot: str | None, features: list[dict], predictions: list[dict]) -> None:
        """Queue one request's rows: ``features`` (the vector each row was scored on) and the
        answered ``predictions`` (same order)."""
        try:
            self._start()
            at = datetime.fromtimestamp(self.clock(), timezone.utc).isoformat(timespec="microseconds")
            request_id = uuid.uuid4().hex
            for i, (values, pred) in enumerate(zip(features, predictions)):
                line = {"request_id": request_id, "row": i, "logged_at": at, "job": job, "model": model, "snapshot": snapshot,
                        "status": pred.get("status"), "prediction": pred.get("prediction"), "probabilities": pred.get("probabilities") or {},
                        "features": values}
                try:
                    self.queue.put_nowait((job, line))
                except queue.Full:
                    self.dropped += 1
        except Exception:  # noqa: BLE001 — the log must never fail a request
            self.dropped += 1
            log.exception("request log: could not queue a request of job %s", job)

    # --- the writer thread ------------------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="engine-request-log", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() or not self.queue.empty():
            try:
                job, line = self.queue.get(timeout=0.1)
            except queue.Empty:
                if self._flush_requested.is_set():
                    self._finish_all()
                    self._flush_requested.clear()
                    self._flushed.set()
                self._rotate_old()
                continue
            try:
                self._write(job, line)
            except Exception:  # noqa: BLE001 — a full disk drops rows, it does not stop the endpoint
                self.dropped += 1
                log.exception("request log: could not write a row of job %s", job)
        self._finish_all()

    def _write(self, job: str, line: dict) -> None:
        f = self._files.get(job)
        if f is None:
            f = self._files[job] = _File(spool_dir(self.root, job), self.clock)
        text = json.dumps(line, default=str, allow_nan=False) + "\n"
        f.handle.write(text)
        f.handle.flush()
        f.size += len(text)
        self.written += 1
        if f.size >= self.rotate_bytes:
            self._finish(job)

    def _rotate_old(self) -> None:
        now = self.clock()
        for job, f in list(self._files.items()):
            if now - f.opened >= self.rotate_s:
                self._finish(job)

    def _finish_all(self) -> None:
        for job in list(self._files):
            try:
                self._finish(job)
            except OSError:
                log.exception("request log: could not close the spool file of job %s", job)

    def _finish(self, job: str) -> None:
        self._files.pop(job).finish()
        self._enforce_cap(job)

    def _enforce_cap(self, job: str) -> None:
        cap = self.jobs[job].max_bytes
        files = sorted(spool_dir(self.root, job).glob("*.jsonl"))
        total = sum(p.stat().st_size for p in files)
        while files and total > cap:
            oldest = files.pop(0)
            total -= oldest.stat().st_size
            with open(oldest, encoding="utf-8") as fh:
                self.dropped += sum(1 for _ in fh)
            oldest.unlink(missing_ok=True)

    def flush(self, timeout: float = 5.0) -> bool:
        """Write everything queued and close the open files (they become readable); False on timeout."""
        if self._thread is None:
            return True
        self._flushed.clear()
        self._flush_requested.set()
        return self._flushed.wait(timeout)

    def close(self) -> None:
        """Write what is queued, close the files and stop the writer thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._stop.clear()


def for_project(checked, workspace_root: Path) -> PredictionSpool | None:
    """The spool of a project's monitored online jobs; None when no job declares ``monitoring``."""
    from engine.monitor.settings import monitoring_settings

    settings = monitoring_settings(checked)
    if not settings:
        return None
    return PredictionSpool(workspace_root, {name: JobLog(s.sample, s.max_spool_bytes) for name, s in settings.items()})


def read_spool(workspace_root: Path, job: str) -> tuple[list[Path], list[dict]]:
    """The complete spool files of ``job`` and their rows (a line that does not parse is skipped)."""
    files = sorted(spool_dir(workspace_root, job).glob("*.jsonl"))
    rows = []
    for path in files:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return files, rows
