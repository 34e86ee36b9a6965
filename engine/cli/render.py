"""Rendering for the CLI: errors, plans, run summaries, feature-group stats. Only the CLI prints."""

from __future__ import annotations

import json
import sys

from engine.errors import EngineError, Problem

MAX_SHOWN = 20


def error_lines(exc: EngineError) -> list[str]:
    """Every problem as ``file:line:col key.path: message (hint)``; the first 20, then a count."""
    if not exc.problems:
        return [f"error: {exc.message}"]
    lines = [p.render() for p in exc.problems[:MAX_SHOWN]]
    if len(exc.problems) > MAX_SHOWN:
        lines.append(f"... and {len(exc.problems) - MAX_SHOWN} more problems")
    lines.append(f"{len(exc.problems)} problem{'s' if len(exc.problems) != 1 else ''} found.")
    return lines


def error_json(exc: EngineError) -> str:
    problems = exc.problems or [Problem(message=exc.message)]
    return json.dumps(
        {"valid": False, "exit_code": int(exc.exit_code), "errors": [p.as_dict() for p in problems]},
        indent=2,
    )


def _github_escape(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github_annotations(exc: EngineError) -> list[str]:
    """GitHub workflow commands, one ``::error`` per problem."""
    out = []
    for p in exc.problems or [Problem(message=exc.message)]:
        props = f"file={p.file},line={p.line},col={p.column}," if p.file else ""
        text = f"{p.render().split(': ', 1)[-1]}"
        out.append(f"::error {props}title=engine validate::{_github_escape(text)}")
    return out


def emit(text: str, *, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(text if text.endswith("\n") else text + "\n")
