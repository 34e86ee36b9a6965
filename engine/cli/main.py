"""The `engine` command line: argument parsing, rendering and exit codes. No logic lives here.
The shared options, project discovery and the exit-code guard are ``engine.cli.options``'s;
``serve`` and ``predict`` live in ``engine.cli.serve_commands`` and ``show`` in
``engine.cli.show``, registered below with ``cli.add_command``.

Heavy libraries are imported by the verbs that need them, so `engine --help` and
`engine validate` stay fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from engine.cli.completion import complete_object
from engine.cli.observe_commands import docs, monitor
from engine.cli.options import BACKEND, EXCLUDE, FORMATS, PATH, PROJECT, SELECT, WORKSPACE, Context, guard, locate, split_project
from engine.cli.serve_commands import predict, serve
from engine.cli.show import show
from engine.errors import EngineError, ExitCode, UsageError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for internal errors.")
@click.version_option(package_name="engine", prog_name="engine")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Declare and run ML systems on a feature store from YAML specs.

    Every verb takes the project as an optional PATH (a spec file or a project folder) or
    --project PATH; without it, the nearest engine.yaml in this folder or above.

    \b
    Exit codes: 0 ok, 1 internal error, 2 usage, 3 spec invalid, 4 data check failed,
    5 execution error in a transform, 74 I/O error, 75 project locked, 130 interrupted.
    """
    ctx.obj = Context(debug)




ENV = click.option("--env", default=None, metavar="NAME", help="An environment beside the default one (prod): built from it, sharing its unchanged tables; `engine promote NAME` makes it prod's.")
BACKFILL_START = click.option("--start", default=None, metavar="TIME", help="Backfill: the selected batch jobs score [--start, --end) once, instead of their range (recorded nowhere else).")
BACKFILL_END = click.option("--end", default=None, metavar="TIME", help="Backfill: the end (exclusive) of the range; with --start.")


def _window(start: str | None, end: str | None) -> tuple[str, str] | None:
    if (start is None) != (end is None):
        raise UsageError("--start and --end go together: the backfill range is [--start, --end)")
    return (start, end) if start is not None else None


def _memory_limit(value: str | None) -> str | None:
    """``--memory-limit``: a size such as 4GB, 512MiB or 80%; a usage error (exit 2) otherwise."""
    import re

    if value is None or re.fullmatch(r"\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB|%)\s*", value, re.IGNORECASE):
        return value
    raise click.BadParameter(f"{value!r} is not a size: use e.g. 4GB, 512MiB or 80%")

@cli.command()
@PATH
@PROJECT
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github"]), default="text", help="Output format; github prints workflow annotations.")
@BACKEND
def validate(path: Path | None, project: Path | None, fmt: str, backend: str | None) -> None:
    """Check a spec (file or folder): YAML, schema, references, SQL, columns. Pure and fast."""

    @guard(fmt)
    def body(fmt: str) -> None:
        from engine import api
        from engine.cli.render import emit

        checked = api.validate(locate(path, project).path, backend=backend)
        p = checked.project
        counts = {"sources": len(p.sources), "feature_groups": len(p.feature_groups), "functions": len(p.functions), "feature_views": len(p.feature_views), "models": len(p.models), "inference": len(p.inference)}
        if fmt == "json":
            emit(json.dumps({"valid": True, "project": p.name, "objects": counts, "errors": []}, indent=2))
        else:
            summary = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items() if n)
            emit(f"{len(p.files)} spec file{'s' if len(p.files) != 1 else ''} valid: project '{p.name}' ({summary or 'empty'}).")

    body(fmt=fmt)


@cli.command()
@PATH
@PROJECT
@WORKSPACE
@SELECT
@EXCLUDE
@BACKFILL_START
@BACKFILL_END
@click.option("--force", is_flag=True, help="Plan every selected step to run.")
@click.option("--full-refresh", is_flag=True, help="Plan the selected sources and feature groups to be rebuilt from scratch.")
@click.option("--format", "fmt", type=FORMATS, default="text")
@ENV
@BACKEND
def plan(path: Path | None, project: Path | None, workspace: Path | None, select: tuple[str, ...], exclude: tuple[str, ...], start: str | None, end: str | None, force: bool, full_refresh: bool, fmt: str, env: str | None, backend: str | None) -> None:
    """Show what `apply` would run, and why."""

    @guard(fmt)
    def body(fmt: str) -> None:
        from engine import api
        from engine.cli.render import emit
        from engine.compiler.printer import render_plan

        where = locate(path, project, workspace)
        the_plan = api.plan(where.path, workspace=where.workspace, select=select, exclude=exclude, force=force, full_refresh=full_refresh, backfill=_window(start, end), env=env)
        emit(json.dumps(the_plan.as_dict(), indent=2) if fmt == "json" else render_plan(the_plan))

    body(fmt=fmt)


@cli.command()
@PATH
@PROJECT
@WORKSPACE
@SELECT
@EXCLUDE
@BACKFILL_START
@BACKFILL_END
@click.option("--force", is_flag=True, help="Run every selected step even if unchanged.")
@click.option("--full-refresh", is_flag=True, help="Re-ingest the selected sources and rebuild the selected feature groups from scratch (incremental ones too).")
@click.option("--sql-timeout", type=float, default=600.0, show_default=True, help="Seconds a SQL transform may run.")
@click.option("--memory-limit", default=None, callback=lambda ctx, param, value: _memory_limit(value), help="DuckDB memory limit, e.g. 4GB or 512MiB.")
@click.option("--threads", type=click.IntRange(1, 1024), default=None, help="DuckDB threads (1-1024).")
@click.option("--lock-timeout", type=float, default=0.0, show_default=True, help="Seconds to wait for another apply.")
@click.option("--format", "fmt", type=FORMATS, default="text")
@click.option("--log-format", "log_format", type=click.Choice(["text", "json"]), default="text", help="json: progress as one JSON object per line on stderr (no live display).")
@click.option("--allow-code-drift", is_flag=True, help="Score with a pinned model version even if its on-demand functions' code on disk differs from the code it was trained with.")
@ENV
@BACKEND
def apply(path: Path | None, project: Path | None, workspace: Path | None, select: tuple[str, ...], exclude: tuple[str, ...], start: str | None, end: str | None, force: bool, full_refresh: bool, sql_timeout: float, memory_limit: str | None, threads: int | None, lock_timeout: float, fmt: str, log_format: str, allow_code_drift: bool, env: str | None, backend: str | None) -> None:
    """Run the plan: build features, train models, score batch and stream jobs.

    Shows each step as it finishes (rows, seconds) and the running one live; after Ctrl-C or a
    failure, says exactly which steps were published (those that finished ✓) and which were not.
    """

    @guard(fmt)
    def body(fmt: str) -> None:
        from engine import api
        from engine.cli.progress import ApplyDisplay
        from engine.runtime.executor import RunOptions

        where = locate(path, project, workspace)
        display = ApplyDisplay(enabled=fmt == "text" and log_format == "text")
        listener = display.on_event
        if log_format == "json":
            from engine.cli.logs import apply_listener

            def listener(event, _display=display.on_event):
                apply_listener(event)
                _display(event)

        options = RunOptions(sql_timeout_s=sql_timeout, memory_limit=memory_limit, threads=threads, allow_code_drift=allow_code_drift)
        try:
            with display:  # the plan arrives as a PlanMade event, made under the project lock
                result = api.apply(where.path, workspace=where.workspace, select=select, exclude=exclude, backfill=_window(start, end), force=force, full_refresh=full_refresh, options=options, lock_timeout_s=lock_timeout, listener=listener, env=env)
        except KeyboardInterrupt:
            display.interrupted(fmt)
            raise
        except EngineError as exc:
            run = getattr(exc, "run_result", None)
            if fmt == "json" and run is not None:
                from engine.cli.render import emit

                emit(json.dumps({**run.as_dict(), "status": "failed", "exit_code": int(exc.exit_code), "error": str(exc)}, indent=2))
                sys.exit(int(exc.exit_code))
            if log_format == "json":  # stderr stays JSON lines: the failed steps were logged as events
                from engine.cli.logs import fail_json

                fail_json(exc)
            if run is not None:
                display.failed(run)
            raise
        display.finish(result, fmt)

    body(fmt=fmt)


@cli.command()
@click.argument("args", nargs=-1, metavar="[PATH] NAME...", shell_complete=complete_object())
@PROJECT
@WORKSPACE
@click.option("--every", default=None, help="Repeat every interval (e.g. 30s, 5m) until Ctrl-C; without it, run once.")
@click.option("--max-runs", type=int, default=None, help="Stop after this many runs (with --every).")
@click.option("--lock-timeout", type=float, default=10.0, show_default=True, help="Seconds to wait for another apply.")
@click.option("--format", "fmt", type=FORMATS, default="text")
def run(args: tuple[str, ...], project: Path | None, workspace: Path | None, every: str | None, max_runs: int | None, lock_timeout: float, fmt: str) -> None:
    """Run objects and what they need, once or as micro-batches (--every); e.g. a stream job.

    \b
    engine run live --every 30s            (inside the project)
    engine run examples/flights live --every 30s
    picks up files dropped into a source folder at each tick and scores only new rows. Each tick
    shows its steps; Ctrl-C stops cleanly between micro-batches (a batch in progress publishes all
    or nothing, and the last tick says what it published).
    """

    @guard(fmt)
    def body(fmt: str) -> None:
        import time

        from engine import api
        from engine.cli.progress import ApplyDisplay, tick_line
        from engine.cli.render import emit
        from engine.errors import UsageError
        from engine.model.builder import duration_seconds

        path, names = split_project(args, project, names="[PATH] NAME... (at least one object to run)", at_least=1)
        where = locate(path, project, workspace)
        try:
            interval = duration_seconds(every) if every else None
        except ValueError:
            raise UsageError(f"--every: '{every}' is not a duration such as 30s, 5m or 1h") from None
        count = 0
        running = None  # the display of the tick in progress; None while waiting for the next
        try:
            while True:
                started = time.monotonic()
                display = running = ApplyDisplay(enabled=fmt == "text")
                with display:  # the plan arrives as a PlanMade event
                    result = api.apply(where.path, workspace=where.workspace, select=names, lock_timeout_s=lock_timeout, listener=display.on_event)
                running = None
                count += 1
                stamp = time.strftime("%H:%M:%S")
                if fmt == "json":
                    emit(json.dumps({"tick": count, "at": stamp, **(result.run.as_dict() if result.run else {"status": "unchanged"})}))
                else:
                    emit(tick_line(count, stamp, result.run))
                if interval is None or (max_runs is not None and count >= max_runs):
                    return
                display.wait(max(0.0, interval - (time.monotonic() - started)), count + 1)
        except KeyboardInterrupt:
            if running is not None:  # stopped inside a tick: say what it published
                running.interrupted(fmt)
            emit(f"stopped after {count} run{'s' if count != 1 else ''}", err=True)

    body(fmt=fmt)


@cli.command()
@click.argument("args", nargs=-1, metavar="[PATH] [NAME]", shell_complete=complete_object())
@PROJECT
@click.option("--format", "fmt", type=FORMATS, default="text")
def lineage(args: tuple[str, ...], project: Path | None, fmt: str) -> None:
    """What an object is built from and what is built from it (the whole DAG without NAME).

    A single argument is the project when it is a spec file or a project folder, else NAME.
    """

    @guard(fmt)
    def body(fmt: str) -> None:
        from engine import api
        from engine.cli.render import emit
        from engine.compiler.lineage import render

        path, names = split_project(args, project, names="[PATH] [NAME]", at_most=1)
        lin = api.lineage(locate(path, project).path, names[0] if names else None)
        emit(json.dumps(lin.as_dict(), indent=2) if fmt == "json" else render(lin))

    body(fmt=fmt)


@cli.command()
@PATH
@PROJECT
@WORKSPACE
def recover(path: Path | None, project: Path | None, workspace: Path | None) -> None:
    """Check the workspace and restore tables a crashed run left past their recorded commit."""

    @guard("text")
    def body(fmt: str = "text") -> None:
        from engine import api
        from engine.cli.render import emit

        where = locate(path, project, workspace)
        emit(api.recover(where.path, workspace=where.workspace).capitalize() + ".")

    body()


@cli.command("check")
@PATH
@PROJECT
@WORKSPACE
@click.option("--format", "fmt", type=FORMATS, default="text")
def check_command(path: Path | None, project: Path | None, workspace: Path | None, fmt: str) -> None:
    """Check the workspace's integrity: unreadable tables, orphan or tampered model artifacts, a stale online snapshot (exit 0, warnings listed)."""

    @guard(fmt)
    def body(fmt: str) -> None:
        from engine import api
        from engine.cli.render import emit

        where = locate(path, project, workspace)
        problems = api.check(where.path, workspace=where.workspace)
        if fmt == "json":
            emit(json.dumps({"problems": problems}, indent=2))
        elif problems:
            for line in problems:
                emit(f"warning: {line}", err=True)
            emit(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found.")
        else:
            emit("Workspace ok.")

    body(fmt=fmt)


@cli.command()
@click.argument("args", nargs=-1, metavar="[PATH] MODEL@A MODEL@B")
@PROJECT
@WORKSPACE
@click.option("--format", "fmt", type=FORMATS, default="text")
def compare(args: tuple[str, ...], project: Path | None, workspace: Path | None, fmt: str) -> None:
    """Two model versions side by side: params, metrics per split (b - a, and which is better) and features.

    \b
    A and B: name@version, name@alias, name@latest or name@best:<metric>; B may be just @selector.
    engine compare examples/flights delay_xgb@production delay_xgb@latest
    engine compare delay_xgb@1 @2        (the project found from the current folder)
    """

    @guard(fmt)
    def body(fmt: str) -> None:
        import json

        from engine import api
        from engine.cli.render import emit
        from engine.cli.tables import model_comparison

        path, (a, b) = split_project(args, project, names="[PATH] MODEL@A MODEL@B", at_least=2, at_most=2)
        where = locate(path, project, workspace)
        doc = api.compare_models(where.path, a, b, workspace=where.workspace)
        emit(json.dumps(doc, indent=2) if fmt == "json" else model_comparison(doc))

    body(fmt=fmt)


@cli.command()
@click.argument("args", nargs=-1, metavar="[PATH] ENV")
@PROJECT
@WORKSPACE
@click.option("--lock-timeout", type=float, default=0.0, show_default=True, help="Seconds to wait for a running apply.")
@click.option("--format", "fmt", type=FORMATS, default="text")
def promote(args: tuple[str, ...], project: Path | None, workspace: Path | None, lock_timeout: float, fmt: str) -> None:
    """Make environment ENV the default one's (prod), atomically and without recomputing anything.

    \b
    Refused (exit 3, nothing switched) when prod published since ENV was created or rebased, or
    when ENV does not reflect the project on disk (`engine apply --env ENV` first).
    engine apply --env dev && engine diff dev && engine promote dev
    """

    @guard(fmt)
    def body(fmt: str) -> None:
        from engine import api
        from engine.cli.render import emit

        path, (name,) = split_project(args, project, names="[PATH] ENV", at_least=1, at_most=1)
        where = locate(path, project, workspace)
        result = api.promote(where.path, name, workspace=where.workspace, lock_timeout_s=lock_timeout)
        if fmt == "json":
            emit(json.dumps(result.as_dict(), indent=2))
            return
        emit(f"Promoted environment '{name}' to prod: {len(result.tables)} table{'s' if len(result.tables) != 1 else ''} switched, "
             f"{len(result.models)} model version{'s' if len(result.models) != 1 else ''} added, nothing recomputed.")
        for line in [*(f"  ~ {t}" for t in result.tables), *(f"  - {t}" for t in result.dropped), *(f"  + {m}" for m in result.models), *(f"  > {f}" for f in result.files)]:
            emit(line)
        emit(f"Online snapshot: {result.snapshot}")

    body(fmt=fmt)


@cli.command("diff")
@click.argument("args", nargs=-1, metavar="[PATH] ENV [OTHER]")
@PROJECT
@WORKSPACE
@click.option("--format", "fmt", type=FORMATS, default="text")
def diff_command(args: tuple[str, ...], project: Path | None, workspace: Path | None, fmt: str) -> None:
    """Compare two environments object by object: rows, columns and statistics (OTHER: prod).

    \b
    engine diff dev            (dev against prod)
    engine diff dev staging
    """

    @guard(fmt)
    def body(fmt: str) -> None:
        from engine import api
        from engine.cli.render import emit
        from engine.cli.tables import environment_diff

        path, names = split_project(args, project, names="[PATH] ENV [OTHER]", at_least=1, at_most=2)
        where = locate(path, project, workspace)
        doc = api.diff(where.path, names[0], names[1] if len(names) > 1 else "prod", workspace=where.workspace)
        emit(json.dumps(doc, indent=2) if fmt == "json" else environment_diff(doc))

    body(fmt=fmt)


@cli.command()
@PATH
@PROJECT
@WORKSPACE
def gc(path: Path | None, project: Path | None, workspace: Path | None) -> None:
    """Remove what an interrupted run left behind (orphan model directories) and table commits older than storage.retention."""

    @guard("text")
    def body(fmt: str = "text") -> None:
        from engine import api
        from engine.cli.render import emit

        where = locate(path, project, workspace)
        removed = api.gc(where.path, workspace=where.workspace)
        for p in removed:
            emit(f"removed {p}")
        emit(f"{len(removed)} item{'s' if len(removed) != 1 else ''} removed.")

    body()


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path), required=False, default=Path("."))
@click.option(
    "--name",
    default=None,
    help="Project name (default: the folder's name; with --marker-only, the specs' project). With --layout library, "
    "the distribution name, e.g. shared-features (default: the folder's name, _ read as -).",
)
@click.option("--marker-only", is_flag=True, help="Mark an existing project: write only engine.yaml at its root.")
@click.option(
    "--layout",
    type=click.Choice(["monorepo", "library"]),
    default="monorepo",
    show_default=True,
    help="monorepo: a project with its own feature package; library: a pip-installable feature library "
    "(src layout, versioned) that projects declare under requires:.",
)
@click.option(
    "--uses",
    metavar="DIST",
    default=None,
    help="A project whose feature functions come from the installed feature library DIST: its specs declare "
    "requires: with a range around the installed version, and call the library's functions.",
)
def init(directory: Path, name: str | None, marker_only: bool, layout: str, uses: str | None) -> None:
    """Create a new, working project (engine.yaml, specs, sample data, a feature package, tests),
    or a feature library that projects share.

    DIRECTORY (default: the current folder) must be new or empty; with --marker-only it is an
    existing project, and only its engine.yaml is written.
    """

    @guard("text")
    def body(fmt: str = "text") -> None:
        from engine.cli.render import emit
        from engine.errors import UsageError

        if uses is not None and (marker_only or layout == "library"):
            raise UsageError(f"--uses makes a new pipeline project; it can't be combined with {'--marker-only' if marker_only else '--layout library'}")
        if marker_only and layout == "library":
            raise UsageError("--marker-only marks an existing engine project; it can't be combined with --layout library")
        where = "" if directory.resolve() == Path.cwd().resolve() else f"cd {directory} && "
        if layout == "library":
            from engine.scaffold.library import init_library

            library = init_library(directory, name)
            emit(f"Created {len(library.files)} files in {directory}: feature library {library.dist} (import {library.package}). "
                 f"Next: {where}pip install -e '.[test]' && python -m pytest")
            return
        if uses is not None:
            from engine.scaffold.library import init_using

            project = init_using(directory, uses, name)
            source = f"calls {project.package}.time:hour_of_day" if project.wired else "lists its functions in specs/library_functions.yaml"
            emit(f"Created {len(project.files)} files in {directory}, using feature library {project.dist} {project.version} "
                 f"(requires {project.requirement}; the sample spec {source}). Next: {where}engine apply")
            return
        from engine.scaffold import init_project, mark_project

        if marker_only:
            marker = mark_project(directory, name)
            emit(f"Wrote {marker}. engine verbs run anywhere below {directory} now find the project.")
            return
        files = init_project(directory, name)
        emit(f"Created {len(files)} files in {directory}. Next: {where}engine apply")

    body()


@cli.command()
def schema() -> None:
    """Print the JSON Schema of the spec language (for editors and CI)."""
    from engine.model.formats import format_names
    from engine.spec.schema import load_schema

    click.echo(json.dumps(load_schema(format_names()), indent=2))


cli.add_command(show)
cli.add_command(serve)
cli.add_command(predict)
cli.add_command(docs)
cli.add_command(monitor)


def _terminate_as_interrupt(signum, frame) -> None:
    """SIGTERM (a scheduler stopping the job) and Ctrl-C unwind alike: open transactions roll
    back, the lock is released, and the exit code is 130 (G7)."""
    from engine import interrupts

    interrupts.request()
    raise KeyboardInterrupt


def _watch_stop_signals() -> None:
    """Interrupt a running DuckDB statement as soon as SIGTERM or Ctrl-C arrives.

    Python runs signal handlers only between bytecodes of the main thread, which may sit inside a
    long DuckDB query; the wake-up fd delivers the signal to this thread at once, which interrupts
    the query so that the main thread can unwind (and roll back) promptly.
    """
    import os
    import signal
    import threading

    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

    def watch() -> None:
        while True:
            data = os.read(read_fd, 16)
            if any(b in (signal.SIGTERM, signal.SIGINT) for b in data):
                from engine import interrupts

                interrupts.request()
                backend = sys.modules.get("engine.backends.duckdb.connection")
                if backend is not None:
                    backend.interrupt_running()

    threading.Thread(target=watch, name="engine-stop-watcher", daemon=True).start()


def main() -> None:
    import signal

    # Ctrl-C keeps Python's own handler (KeyboardInterrupt); SIGTERM is made to behave alike.
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    _watch_stop_signals()
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        _finish(ExitCode.INTERRUPTED)
    except click.exceptions.ClickException as exc:
        exc.show()
        _finish(ExitCode.USAGE)
    except SystemExit as exc:
        _finish(exc.code)
    _finish(0)


def _finish(code: object) -> None:
    """End the process once the command is done, without the interpreter's teardown.

    The exit handlers still run: logging's flush, temporary files' removal, DuckDB's own. Then
    ``os._exit`` skips tearing down every imported module and C extension one by one (DuckDB,
    delta-rs, pyarrow, sqlglot: 0.07-0.14 s of every apply, a quarter of a no-op's). While a
    non-daemon thread still runs, the process exits the normal way and waits for it."""
    import atexit
    import os
    import threading

    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if others or run_exit_handlers is None:
        sys.exit(code)
    if code is not None and not isinstance(code, int):  # sys.exit("message"): printed, exit code 1
        sys.stderr.write(f"{code}\n")
        code = 1
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: S112 (closed or broken pipe: nothing more to say)
            continue
    os._exit(int(code or 0))


if __name__ == "__main__":
    main()
