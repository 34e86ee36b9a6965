"""``inference.<job>.monitoring`` as typed settings: the sampling rate, the spool cap and the drift
thresholds. The JSON Schema has already checked types and ranges (positioned errors, exit 3); this
builds the frozen objects from the schema-valid document, and checks what the schema cannot (a
monitored job must be online; names its position).

The other spec objects are built by ``engine.model.builder``; ``monitoring`` is built here so that
the serving and monitoring code can read it without the typed model growing a field the rest of
the engine ignores. (Moving it into ``engine.model`` is a mechanical change; see docs/monitoring.md.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import SpecError

if TYPE_CHECKING:
    from engine.compiler.semantics import CheckedProject


@dataclass(frozen=True)
class Thresholds:
    psi: float = 0.2
    ks: float = 0.3
    missing_rate: float = 0.1
    prediction_psi: float = 0.2
    min_rows: int = 30


@dataclass(frozen=True)
class Monitoring:
    """One online job's monitoring: log ``sample`` of its requests into a spool capped at
    ``max_spool_bytes``; ``engine monitor`` compares them with training against ``thresholds``."""

    job: str
    model: str  # the job's model reference as written
    sample: float = 1.0
    max_spool_bytes: int = 64 << 20
    thresholds: Thresholds = field(default_factory=Thresholds)
    declared: bool = True  # False: defaults for a job whose spec says nothing


def monitoring_settings(checked: "CheckedProject") -> dict[str, Monitoring]:
    """The monitoring of every online job that declares it, by job name."""
    from engine.model.objects import InferenceMode
    from engine.spec.project_files import load_spec

    project = checked.project
    if not project.inference:
        return {}
    spec = load_spec(_spec_path(checked))
    jobs = spec.data.get("inference") or {}
    out: dict[str, Monitoring] = {}
    problems = []
    for name, raw in jobs.items():
        declared = raw.get("monitoring") if isinstance(raw, dict) else None
        if declared is None:
            continue
        job = project.inference.get(name)
        if job is None:
            continue
        if job.mode is not InferenceMode.ONLINE:  # the schema refuses it too; kept for a spec built in code
            problems.append(spec.source_map.problem(("inference", name, "monitoring"), f"inference:{name} is a {job.mode.value} job: only online jobs are monitored"))
            continue
        t = declared.get("thresholds") or {}
        out[name] = Monitoring(
            job=name,
            model=job.model,
            sample=float(declared.get("sample", 1.0)),
            max_spool_bytes=int(declared.get("max_spool_mb", 64)) << 20,
            thresholds=Thresholds(**{k: (int(v) if k == "min_rows" else float(v)) for k, v in t.items()}),
        )
    if problems:
        raise SpecError(problems=problems)
    return out


def for_job(checked: "CheckedProject", job: str) -> Monitoring:
    """The monitoring of ``job`` (defaults when it declares none)."""
    settings = monitoring_settings(checked)
    if job in settings:
        return settings[job]
    return Monitoring(job=job, model=checked.project.inference[job].model, declared=False)


def _spec_path(checked: "CheckedProject") -> Path:
    """What ``load_spec`` takes to read the same files again: the one spec file, or the project root."""
    files = checked.project.files
    return files[0] if len(files) == 1 else checked.project.root
