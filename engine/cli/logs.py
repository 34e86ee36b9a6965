"""``--log-format json`` of the long-running verbs (apply, serve, monitor): one JSON object per
line on stderr, each with ``time`` (UTC, ISO 8601), ``level`` and ``event``; apply's progress
events and Python log records alike. Imports only the standard library at module level.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import fields, is_dataclass
from datetime import datetime, timezone
from enum import Enum


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _plain(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def write(record: dict) -> None:
    sys.stderr.write(json.dumps(record, default=str) + "\n")
    sys.stderr.flush()


def log_event(log_format: str, event: str, level: str = "info", **data: object) -> None:
    """One line on stderr with ``--log-format json``; nothing otherwise."""
    if log_format == "json":
        write({"time": _now(), "level": level, "event": event, **{k: _plain(v) for k, v in data.items()}})


def apply_listener(event) -> None:
    """An apply's progress events as JSON lines (``apply.plan``, ``step.started``, ``step.finished``, ``notice``)."""
    name = type(event).__name__
    if name == "PlanMade":
        plan = event.plan
        doc = plan.as_dict() if hasattr(plan, "as_dict") else {}
        steps = doc.get("steps", [])
        write({"time": _now(), "level": "info", "event": "apply.plan", "steps": len(steps), "changes": bool(getattr(plan, "has_changes", steps))})
        return
    kind = {"StepStarted": "step.started", "StepFinished": "step.finished", "RunNotice": "notice"}.get(name, name)
    data = {f.name: _plain(getattr(event, f.name)) for f in fields(event)} if is_dataclass(event) else {}
    level = "error" if data.get("status") == "failed" else "info"
    write({"time": _now(), "level": level, "event": kind, **data})


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object (a message that is already a JSON object is merged in)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
               "level": record.levelname.lower(), "logger": record.name}
        message = record.getMessage()
        try:
            parsed = json.loads(message) if message.startswith("{") else None
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            doc.update({"event": "http.request", **parsed})
        else:
            doc.update({"event": "log", "message": message})
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(doc, default=str)


def json_logging() -> None:
    """Route the engine's and uvicorn's loggers to stderr as JSON lines (for ``serve``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("engine", "uvicorn"):  # their children (uvicorn.error, engine.serving) propagate here
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)
    for name in ("uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def fail_json(exc) -> None:
    """End a verb run with ``--log-format json`` on an engine error: the error as one JSON line on
    stderr (each problem of a spec error as its own object in ``problems``), then its exit code."""
    problems = [p.render() for p in getattr(exc, "problems", ()) or ()]
    write({"time": _now(), "level": "error", "event": "error", "exit_code": int(exc.exit_code), "message": str(exc), **({"problems": problems} if problems else {})})
    sys.exit(int(exc.exit_code))
