"""What every `engine` verb shares: the common arguments and options, how a verb finds its project
(:func:`locate`, :func:`split_project`), and :func:`guard`, which maps a failure to its documented
exit code. Imports only click and ``engine.errors`` at module level, so `engine --help` stays fast;
must not import the verbs (``engine.cli.main`` imports this).

Every verb takes the project the same way: an optional PATH first (a spec file or a project
folder), or ``--project PATH``; without either, the nearest ``engine.yaml`` in the current folder
or above it (as git finds ``.git``).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from engine.errors import EngineError, ExitCode, InternalError, UsageError

FORMATS = click.Choice(["text", "json"])
PATH = click.argument("path", type=click.Path(path_type=Path), required=False, default=None)
PROJECT = click.option("--project", "project", type=click.Path(path_type=Path), default=None, help="The project (spec file or folder); the same as PATH. Default: the nearest engine.yaml.")
WORKSPACE = click.option("--workspace", type=click.Path(path_type=Path), default=None, help="Workspace folder (default: engine.yaml's workspace, else .engine/ in the project root).")


def _backend(ctx, param, value: str | None) -> str | None:
    """``--backend``: also exported as ENGINE_BACKEND, so every stage of this process uses it."""
    if value is not None:
        os.environ["ENGINE_BACKEND"] = value
    return value


BACKEND = click.option(
    "--backend",
    type=click.Choice(["duckdb", "spark"]),
    default=None,
    callback=_backend,
    expose_value=True,
    help="Compute backend (default: $ENGINE_BACKEND, else the spec's backend.kind, else duckdb). spark needs `pip install 'engine[spark]'` and Java 17+.",
)
SELECT = click.option(
    "--select", "-s", multiple=True,
    help="Only this object and what it needs (repeatable): NAME, kind:NAME, NAME+ (and everything downstream), tag:TAG.",
)
EXCLUDE = click.option(
    "--exclude", "-x", multiple=True,
    help="Do not run this object (repeatable; NAME+: nor anything downstream). What reads an excluded object with changes does not run either.",
)

_OBJECT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_MARKER = "engine.yaml"  # engine.spec.project_files.MARKER, without importing the spec layer here


@dataclass(frozen=True)
class Located:
    """Where a verb's project is: what the API takes as ``path``, and the workspace to use."""

    path: Path
    workspace: Path | None


def locate(path: Path | None, project: Path | None = None, workspace: Path | None = None) -> Located:
    """The project of ``PATH`` / ``--project``, else of the nearest ``engine.yaml`` above the current
    folder; UsageError (exit 2) when there is none. ``workspace``: ``--workspace``, which wins over
    the marker's ``workspace:``."""
    from engine.spec.project_files import find_marker, read_marker

    if path is not None and project is not None and Path(path).resolve() != Path(project).resolve():
        raise UsageError(f"PATH '{path}' and --project '{project}' name different projects; pass one of them")
    given = path if path is not None else project
    if given is None:
        marker = find_marker(Path.cwd())
        if marker is None:
            raise UsageError(
                f"no {_MARKER} in {Path.cwd()} or any folder above it: pass the project (a spec file or folder) as PATH "
                f"or --project PATH, or mark the project's root with {_MARKER} (`engine init NEW_FOLDER` creates a project, "
                f"`engine init --marker-only` marks an existing one)"
            )
        given = marker.parent
    given = Path(given)
    if workspace is None:
        folder = given.parent if given.name == _MARKER else given
        if folder.is_dir() and (folder / _MARKER).is_file():
            workspace = read_marker(folder / _MARKER).workspace_path
    return Located(given, workspace)


def is_project_path(arg: str) -> bool:
    """Whether a positional names a project on disk rather than an object.

    Object names are identifiers, so anything with a path separator, a YAML suffix, ``.`` or ``..``
    is a path; an identifier is a path only when it is a spec file or a folder holding a project
    (``engine.yaml``, a ``specs/`` folder or YAML files).
    """
    if arg in (".", "..") or "/" in arg or os.sep in arg or arg.endswith((".yaml", ".yml")):
        return True
    p = Path(arg)
    if not _OBJECT_NAME.match(arg):
        return p.exists()
    if p.is_dir():
        return (p / _MARKER).is_file() or (p / "specs").is_dir() or any(p.glob("*.yaml")) or any(p.glob("*.yml"))
    return False


def split_project(args: tuple[str, ...], project: Path | None, *, names: str, at_least: int = 0, at_most: int | None = None) -> tuple[Path | None, tuple[str, ...]]:
    """Split ``[PATH] NAME...`` positionals into the project path and the names.

    The first positional is PATH when there are more than ``at_most`` of them, or when it names a
    project on disk (:func:`is_project_path`) and enough names follow it; never with ``--project``.
    """
    path: Path | None = None
    if project is None and args:
        too_many = at_most is not None and len(args) > at_most
        if too_many or (len(args) > at_least and is_project_path(args[0])):
            path, args = Path(args[0]), args[1:]
        elif not _OBJECT_NAME.match(args[0]) and is_project_path(args[0]):
            raise UsageError(f"expected {names}: '{args[0]}' is a project, and no name follows it")
    if len(args) < at_least or (at_most is not None and len(args) > at_most):
        raise UsageError(f"expected {names}, got {len(args)} argument{'s' if len(args) != 1 else ''}" + (f": {' '.join(args)}" if args else ""))
    return path, tuple(args)


def deprecated(old: str, new: str) -> None:
    """One line on stderr for a spelling kept so that scripts do not break."""
    click.echo(f"note: {old} is deprecated; use {new}", err=True)


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
