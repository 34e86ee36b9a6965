"""Rendering for the CLI: errors, plans, run summaries, feature-group stats. Only the CLI prints."""

from __future__ import annotations

import json
import re
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


_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:/@+-]*$")
_YAML_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"})


def flow(value: object) -> str:
    """A value as YAML flow text — how a spec writes it — never a Python repr.

    >>> flow({"by": "time", "test_from": "2013-10-01", "seed": 0, "shuffle": True, "note": None})
    "{by: time, test_from: '2013-10-01', seed: 0, shuffle: true, note: null}"
    >>> flow(["a b", 1.5, ["x"]])
    "['a b', 1.5, [x]]"
    """
    if isinstance(value, dict):
        return "{" + ", ".join(f"{flow(k)}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return "[" + ", ".join(flow(v) for v in items) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _YAML_WORDS:
        return text
    return "'" + text.replace("'", "''") + "'"


def emit(text: str, *, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(text if text.endswith("\n") else text + "\n")
