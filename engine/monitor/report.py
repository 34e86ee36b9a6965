"""`engine monitor MODEL`: ingest the spool of the online jobs serving MODEL, then compare what
they served (feature vectors and predictions, from ``serving_log__<job>``) with the training split
of the model version that answered: PSI, KS, missing rates per feature, and prediction drift (the
predicted classes against the training labels; for regressors the predicted values against them).
The report is saved in the workspace (``monitoring/reports/<model>.json``) for ``engine docs``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import UsageError
from engine.monitor.drift import Comparison, compare
from engine.monitor.settings import Thresholds

if TYPE_CHECKING:
    from engine.compiler.semantics import CheckedProject

PREDICTION = "<prediction>"


@dataclass(frozen=True)
class Alert:
    feature: str
    statistic: str  # psi | ks | missing_rate | prediction_psi
    value: float
    threshold: float

    def describe(self) -> str:
        return f"{self.feature}: {self.statistic} {self.value:.3f} > {self.threshold:g}"


@dataclass(frozen=True)
class Report:
    model: str  # the model version compared: model:name@v
    jobs: tuple[str, ...]
    rows: int
    since: str | None
    thresholds: Thresholds
    comparisons: tuple[Comparison, ...] = ()
    alerts: tuple[Alert, ...] = ()
    ingested: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def drifted(self) -> bool:
        return bool(self.alerts)

    def as_dict(self) -> dict:
        return {
            "model": self.model, "jobs": list(self.jobs), "rows": self.rows, "since": self.since, "ingested": self.ingested,
            "thresholds": asdict(self.thresholds), "notes": list(self.notes),
            "alerts": [asdict(a) for a in self.alerts],
            "features": [asdict(c) for c in self.comparisons],
        }


def reports_dir(workspace_root: Path) -> Path:
    return Path(workspace_root) / "monitoring" / "reports"


def saved_reports(workspace_root: Path) -> dict[str, dict]:
    """The last saved report of each model (for the docs site)."""
    out = {}
    for path in sorted(reports_dir(workspace_root).glob("*.json")):
        try:
            out[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
    return out


def jobs_of(checked: "CheckedProject", name: str) -> list[str]:
    """The online jobs serving model ``name`` (or the job ``name`` itself)."""
    from engine.errors import did_you_mean
    from engine.model.objects import InferenceMode

    online = {j.name: j for j in checked.project.inference.values() if j.mode is InferenceMode.ONLINE}
    if name in online:
        return [name]
    jobs = sorted(j.name for j in online.values() if j.model.split("@", 1)[0] == name)
    if not jobs:
        known = sorted(checked.project.models) + sorted(online)
        hint = did_you_mean(name, known)
        raise UsageError(f"no online inference job serves '{name}'" + (f" ({hint})" if hint else "") + f"; online jobs: {', '.join(sorted(online)) or 'none'}")
    return jobs


def monitor(checked: "CheckedProject", ws, name: str, *, since=None, lock_timeout_s: float = 10.0, ingest_spool: bool = True) -> Report:
    """Ingest, compare, save the report; the caller decides what a drift means (exit 4)."""
    import pandas as pd

    from engine.monitor.ingest import ingest, read_log
    from engine.monitor.settings import for_job

    if not ws.exists():
        raise UsageError(f"no workspace at {ws.root}: run `engine apply` first")
    jobs = jobs_of(checked, name)
    settings = [for_job(checked, j) for j in jobs]
    thresholds = next((s.thresholds for s in settings if s.declared), Thresholds())
    notes = [f"inference:{s.job} declares no monitoring: its requests are not logged (add `monitoring:` to the job)" for s in settings if not s.declared]
    ingested = sum(ingest(checked, ws, j, lock_timeout_s=lock_timeout_s).rows for j in jobs) if ingest_spool else 0
    frames = [f for f in (read_log(checked, ws, j, since) for j in jobs) if f is not None and len(f)]
    log = pd.concat(frames, ignore_index=True) if frames else None
    since_text = None if since is None else pd.Timestamp(since).isoformat()
    model_name = checked.project.inference[jobs[0]].model.split("@", 1)[0]
    if log is None:
        report = Report(f"model:{model_name}", tuple(jobs), 0, since_text, thresholds, ingested=ingested, notes=tuple(notes + ["no logged requests yet"]))
        return _save(ws, model_name, report)
    served = log["model"].iloc[-1]  # the version that answered last: compare with what it was trained on
    log = log[log["model"] == served]
    comparisons, alerts = _compare(checked, ws, served, log, thresholds)
    if len(log) < thresholds.min_rows:
        notes.append(f"{len(log)} logged rows: fewer than min_rows ({thresholds.min_rows}), no verdict")
        alerts = []
    report = Report(served, tuple(jobs), len(log), since_text, thresholds, tuple(comparisons), tuple(alerts), ingested, tuple(notes))
    return _save(ws, model_name, report)


def _compare(checked: "CheckedProject", ws, served: str, log, t: Thresholds) -> tuple[list[Comparison], list[Alert]]:
    import numpy as np
    import pandas as pd

    from engine.ids import ModelRef
    from engine.session import reading
    from engine.sql.ops import Relation

    ref = ModelRef.parse(served.split(":", 1)[1])
    with reading(ws, project=checked.project) as stores:
        mv = stores.registry.get(ref.name, ref.selector)
        train = stores.backend.frame(Relation.parse(mv.info.training_data.table))
    train = train[train["_split"] == "train"]
    features = pd.DataFrame([json.loads(v) for v in log["features"]])
    comparisons, alerts = [], []
    for col in mv.info.feature_columns:
        serving = features[col].to_numpy(dtype=object) if col in features else np.full(len(features), None, dtype=object)
        c = compare(col, train[col].to_numpy(), serving) if pd.api.types.is_numeric_dtype(train[col]) else compare(col, train[col].to_numpy(dtype=object), serving)
        comparisons.append(c)
        if c.psi > t.psi:
            alerts.append(Alert(col, "psi", c.psi, t.psi))
        if c.ks is not None and c.ks > t.ks:
            alerts.append(Alert(col, "ks", c.ks, t.ks))
        if c.missing_serving - c.missing_train > t.missing_rate:
            alerts.append(Alert(col, "missing_rate", c.missing_serving - c.missing_train, t.missing_rate))
    label = mv.manifest["label"]
    predictions = np.asarray([None if v is None else json.loads(v) for v in log["prediction"]], dtype=object)
    if mv.info.task == "classifier":
        c = compare(PREDICTION, train[label].astype(str).to_numpy(dtype=object), np.asarray([None if v is None else str(v) for v in predictions], dtype=object))
    else:
        c = compare(PREDICTION, train[label].to_numpy(), predictions)
    comparisons.append(c)
    if c.psi > t.prediction_psi:
        alerts.append(Alert(PREDICTION, "prediction_psi", c.psi, t.prediction_psi))
    return comparisons, alerts


def _save(ws, model: str, report: Report) -> Report:
    folder = reports_dir(ws.root)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{model}.json.tmp"
    tmp.write_text(json.dumps(report.as_dict(), indent=2, default=str), encoding="utf-8")
    tmp.replace(folder / f"{model}.json")
    return report


def run(path: str | Path, name: str, *, since: str | None = None, workspace: str | Path | None = None, lock_timeout_s: float = 10.0) -> Report:
    """The `engine monitor` verb: validate -> ingest the spool -> compare -> save the report."""
    import pandas as pd

    from engine.project import validate, workspace_of

    checked = validate(path)
    when = None
    if since is not None:
        try:
            when = pd.Timestamp(since)
        except (ValueError, TypeError):
            raise UsageError(f"--since: '{since}' is not a time (ISO 8601, e.g. 2026-12-01 or 2026-12-01T08:00Z)") from None
        when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
    return monitor(checked, workspace_of(checked, workspace), name, since=when, lock_timeout_s=lock_timeout_s)
