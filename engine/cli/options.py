"""What every `engine` verb shares: the common arguments and options, and :func:`guard`, which maps
a failure to its documented exit code. Imports only click and ``engine.errors`` at module level,
so `engine --help` stays fast; must not import the verbs (``engine.cli.main`` imports this).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from engine.errors import EngineError, ExitCode, InternalError

FORMATS = click.Choice(["text", "json"])
PATH = click.argument("path", type=click.Path(path_type=Path), required=False, default=Path("."))
WORKSPACE = click.option("--workspace", type=click.Path(path_type=Path), default=None, help="Workspace folder (default: .engine/ in the project root).")
SELECT = click.option("--select", "-s", multiple=True, help="Only this object and what it needs (repeatable).")


class Context:
    """The ``engine`` group's options, as ``ctx.obj`` for every verb."""

    def __init__(self, debug: bool):
        self.debug = debug


def _fail(exc: BaseException, fmt: str, debug: bool) -> None:
    from engine.cli.render import emit, error_json, error_lines, github_annotations

    if isinstance(exc, KeyboardInterrupt):
        emit("interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    if not isinstance(exc, EngineError):
        if debug:
            raise exc
        wrapped = InternalError(f"internal error ({type(exc).__name__}: {exc}); this is a bug — rerun with --debug for the traceback")
        exc = wrapped
    if fmt == "json":
        emit(error_json(exc))
    elif fmt == "github":
        for line in github_annotations(exc):
            emit(line)
        for line in error_lines(exc):
            emit(line, err=True)
    else:
        for line in error_lines(exc):
            emit(line, err=True)
    sys.exit(int(exc.exit_code))


def guard(fmt: str):
    """Run a verb body, mapping every failure to its documented exit code."""

    def wrap(fn):
        def run(*args, **kwargs):
            debug = click.get_current_context().find_object(Context).debug
            try:
                return fn(*args, **kwargs)
            except SystemExit:
                raise
            except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 — mapped to exit codes
                _fail(exc, kwargs.get("fmt", fmt), debug)

        return run

    return wrap
