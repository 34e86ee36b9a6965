"""Ingest a job's spool into the feature group ``serving_log__<job>`` through the locked writer
path: under the project lock, the complete spool files are read, their rows are added to the
group's rows (deduplicated on (request_id, row), so a crash between the commit and the deletion
of the files ingests nothing twice), committed as one new version of the offline table by the
offline store's ``publish``, and only then are the files deleted.

The group is the engine's own (not declared in the spec): one row per logged prediction, with the
feature vector and the probabilities as JSON text, so a change of the model's features never
breaks its schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas

    from engine.compiler.semantics import CheckedProject

PREFIX = "serving_log__"
KEY = ("request_id", "row")


def log_group(job: str) -> str:
    return f"{PREFIX}{job}"


@dataclass(frozen=True)
class Ingested:
    job: str
    rows: int  # new rows this ingestion added
    files: int


def _frame(rows: list[dict]) -> "pandas.DataFrame":
    import pandas as pd

    frame = pd.DataFrame({
        "request_id": [r["request_id"] for r in rows],
        "row": pd.Series([int(r["row"]) for r in rows], dtype="int64"),
        "logged_at": pd.to_datetime([r["logged_at"] for r in rows], utc=True),
        "job": [r.get("job") for r in rows],
        "model": [r.get("model") for r in rows],
        "snapshot": [r.get("snapshot") for r in rows],
        "status": [r.get("status") for r in rows],
        "prediction": [None if r.get("prediction") is None else json.dumps(r["prediction"]) for r in rows],
        "probabilities": [json.dumps(r.get("probabilities") or {}, sort_keys=True) for r in rows],
        "features": [json.dumps(r.get("features") or {}, sort_keys=True) for r in rows],
    })
    return frame


def ingest(checked: "CheckedProject", ws, job: str, *, lock_timeout_s: float = 10.0, run_id: str | None = None) -> Ingested:
    """Move ``job``'s complete spool files into ``serving_log__<job>`` (nothing to do: rows=0)."""
    import pandas as pd

    from engine.model import objects as m
    from engine.monitor.spool import read_spool
    from engine.session import writing
    from engine.sql.ops import Relation
    from engine.state.workspace import ProjectLock

    files, rows = read_spool(ws.root, job)
    if not files:
        return Ingested(job, 0, 0)
    name = log_group(job)
    fg = m.FeatureGroup(name=name, version=1, primary_key=KEY, transform=m.SqlTransform(sql="-- the serving log of inference:" + job), event_time="logged_at", online=False)
    run_id = run_id or _run_id()
    with ProjectLock(ws, timeout_s=lock_timeout_s), writing(ws, run_id=run_id, spill=False, project=checked.project) as stores:
        new = _frame(rows) if rows else None
        old = stores.offline.read(name, 1) if stores.offline.version(name, 1) is not None else None
        parts = [f for f in (old, new) if f is not None and len(f)]
        if not parts:
            combined = None
        else:
            combined = pd.concat(parts, ignore_index=True).drop_duplicates(list(KEY), keep="first").sort_values(["logged_at", *KEY]).reset_index(drop=True)
        added = 0 if combined is None else len(combined) - (0 if old is None else len(old))
        if combined is not None and added:
            staging = Relation("staging", f"{name}__v1")
            stores.backend.write(staging, combined, mode="replace")
            try:
                with stores.backend.transaction():
                    stores.offline.publish(fg, staging, run_id=run_id, fingerprint="serving-log", fitted={})
            finally:
                stores.backend.drop(staging)
    for f in files:  # after the commit: a crash before this line re-reads them, and the key dedupes
        f.unlink(missing_ok=True)
    return Ingested(job, added, len(files))


def read_log(checked: "CheckedProject", ws, job: str, since=None) -> "pandas.DataFrame | None":
    """The ingested serving log of ``job`` (rows logged at or after ``since``); None if never ingested."""
    from engine.session import reading

    name = log_group(job)
    with reading(ws, project=checked.project) as stores:
        if stores.offline.version(name, 1) is None:
            return None
        frame = stores.offline.read(name, 1)
    if since is not None:
        frame = frame[frame["logged_at"] >= since].reset_index(drop=True)
    return frame


def _run_id() -> str:
    import uuid
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-monitor-" + uuid.uuid4().hex[:6]
