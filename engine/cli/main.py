"""The `engine` command line: argument parsing, rendering and exit codes. No logic lives here.
The shared options and the exit-code guard are ``engine.cli.options``'s; ``serve`` and ``predict``
live in ``engine.cli.serve_commands`` and are registered below with ``cli.add_command``.

Heavy libraries are imported by the verbs that need them, so `engine --help` and
`engine validate` stay fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from engine.cli.options import FORMATS, PATH, SELECT, WORKSPACE, Context, guard
from engine.cli.serve_commands import predict, serve
from engine.errors import EngineError, ExitCode


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for internal errors.")
@click.version_option(package_name="engine", prog_name="engine")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Declare and run ML systems on a feature store from YAML specs.

    \b
    Exit codes: 0 ok, 1 internal error, 2 usage, 3 spec invalid, 4 data check failed,
    5 execution error in a transform, 74 I/O error, 75 project locked, 130 interrupted.
    """
    ctx.obj = Context(debug)


@cli.command()
@PATH
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github"]), default="text", help="Output format; github prints workflow annotations.")
def validate(path: Path, fmt: str) -> None:
    """Check a spec (file or folder): YAML, schema, references, SQL, columns. Pure and fast."""

    @guard(fmt)
    def body(fmt: str) -> None:
        from engine import api
        from engine.cli.render import emit

        checked = api.validate(path)
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
@WORKSPACE
@SELECT
@click.option("--force", is_flag=True, help="Plan every selected step to run.")
@click.option("--format", "fmt", type=FORMATS, default="text")
def plan(path: Path, workspace: Path | None, select: tuple[str, ...], force: bool, fmt: str) -> None:
    """Show what `apply` would run, and why."""

    @guard(fmt)
    def body(fmt: str) -> None:
        from engine import api
        from engine.cli.render import emit
        from engine.compiler.printer import render_plan

        the_plan = api.plan(path, workspace=workspace, select=select, force=force)
        emit(json.dumps(the_plan.as_dict(), indent=2) if fmt == "json" else render_plan(the_plan))

    body(fmt=fmt)


@cli.command()
@PATH
@WORKSPACE
@SELECT
@click.option("--force", is_flag=True, help="Run every selected step even if unchanged.")
@click.option("--sql-timeout", type=float, default=600.0, show_default=True, help="Seconds a SQL transform may run.")
@click.option("--memory-limit", default=None, help="DuckDB memory limit, e.g. 4GB.")
@click.option("--threads", type=int, default=None, help="DuckDB threads.")
@click.option("--lock-timeout", type=float, default=0.0, show_default=True, help="Seconds to wait for another apply.")
@click.option("--format", "fmt", type=FORMATS, default="text")
def apply(path: Path, workspace: Path | None, select: tuple[str, ...], force: bool, sql_timeout: float, memory_limit: str | None, threads: int | None, lock_timeout: float, fmt: str) -> None:
    """Run the plan: build features, train models, score batch and stream jobs."""

    @guard(fmt)
    def body(fmt: str) -> None:
        from engine import api
        from engine.cli.progress import ApplyDisplay
        from engine.runtime.executor import RunOptions

        display = ApplyDisplay(enabled=fmt == "text")
        options = RunOptions(sql_timeout_s=sql_timeout, memory_limit=memory_limit, threads=threads)
        try:
            with display:
                result = api.apply(path, workspace=workspace, select=select, force=force, options=options, lock_timeout_s=lock_timeout, listener=display.on_event)
        except EngineError as exc:
            run = getattr(exc, "run_result", None)
            if fmt == "json" and run is not None:
                from engine.cli.render import emit

                emit(json.dumps({**run.as_dict(), "status": "failed", "exit_code": int(exc.exit_code), "error": str(exc)}, indent=2))
                sys.exit(int(exc.exit_code))
            if run is not None:
                display.summary(run)
            raise
        display.finish(result, fmt)

    body(fmt=fmt)


@cli.command()
@click.argument("kind", type=click.Choice(["feature_group", "feature_groups", "model", "models"]))
@click.argument("name", required=False)
@click.option("--path", "path", type=click.Path(path_type=Path), default=Path("."), help="Project (spec file or folder).")
@click.option("--version", "version", default=None, help="Version: a number; for models also latest, best:<metric> or an alias.")
@WORKSPACE
@click.option("--format", "fmt", type=FORMATS, default="text")
def show(kind: str, name: str | None, path: Path, version: str | None, workspace: Path | None, fmt: str) -> None:
    """Show a published feature group or a registered model; the plural lists them all."""

    @guard(fmt)
    def body(fmt: str) -> None:
        from engine import api
        from engine.cli.render import emit
        from engine.cli.tables import feature_group_listing, feature_group_table, model_listing, model_table
        from engine.errors import UsageError

        if kind in ("feature_groups", "models") or name is None:
            if kind.startswith("feature_group"):
                rows = api.list_feature_groups(path, workspace=workspace)
                emit(json.dumps(rows, indent=2) if fmt == "json" else feature_group_listing(rows))
            else:
                rows = api.list_models(path, workspace=workspace)
                emit(json.dumps(rows, indent=2) if fmt == "json" else model_listing(rows))
            return
        if kind == "feature_group":
            if version is not None and not version.isdigit():
                raise UsageError(f"--version for a feature group is a number, not '{version}'")
            info = api.show_feature_group(path, name, version=int(version) if version else None, workspace=workspace)
            emit(json.dumps(info, indent=2, default=str) if fmt == "json" else feature_group_table(info))
        else:
            info = api.show_model(path, name, version=version, workspace=workspace)
            emit(json.dumps(info, indent=2, default=str) if fmt == "json" else model_table(info))

    body(fmt=fmt)


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.argument("names", nargs=-1, required=True)
@WORKSPACE
@click.option("--every", default=None, help="Repeat every interval (e.g. 30s, 5m) until Ctrl-C; without it, run once.")
@click.option("--max-runs", type=int, default=None, help="Stop after this many runs (with --every).")
@click.option("--lock-timeout", type=float, default=10.0, show_default=True, help="Seconds to wait for another apply.")
@click.option("--format", "fmt", type=FORMATS, default="text")
def run(path: Path, names: tuple[str, ...], workspace: Path | None, every: str | None, max_runs: int | None, lock_timeout: float, fmt: str) -> None:
    """Run objects and what they need, once or as micro-batches (--every); e.g. a stream job.

    \b
    engine run examples/flights live --every 30s
    picks up files dropped into a source folder at each tick and scores only new rows. Ctrl-C
    stops cleanly between micro-batches (a batch in progress publishes all or nothing).
    """

    @guard(fmt)
    def body(fmt: str) -> None:
        import time

        from engine import api
        from engine.cli.render import emit
        from engine.errors import UsageError
        from engine.model.builder import duration_seconds

        try:
            interval = duration_seconds(every) if every else None
        except ValueError:
            raise UsageError(f"--every: '{every}' is not a duration such as 30s, 5m or 1h") from None
        count = 0
        try:
            while True:
                started = time.monotonic()
                result = api.apply(path, workspace=workspace, select=names, lock_timeout_s=lock_timeout)
                count += 1
                stamp = time.strftime("%H:%M:%S")
                if fmt == "json":
                    emit(json.dumps({"tick": count, "at": stamp, **(result.run.as_dict() if result.run else {"status": "unchanged"})}))
                elif result.run is None:
                    emit(f"[{stamp}] no changes")
                else:
                    parts = [f"{s.step_id} {s.status.value}" + (f" ({s.rows:,} rows)" if s.rows is not None else "") for s in result.run.steps if s.status.value == "ran"]
                    emit(f"[{stamp}] " + "; ".join(parts))
                if interval is None or (max_runs is not None and count >= max_runs):
                    return
                time.sleep(max(0.0, interval - (time.monotonic() - started)))
        except KeyboardInterrupt:
            emit(f"stopped after {count} run{'s' if count != 1 else ''}", err=True)

    body(fmt=fmt)


@cli.command()
@PATH
@click.argument("name", required=False)
@click.option("--format", "fmt", type=FORMATS, default="text")
def lineage(path: Path, name: str | None, fmt: str) -> None:
    """What an object is built from and what is built from it (the whole DAG without NAME)."""

    @guard(fmt)
    def body(fmt: str) -> None:
        from engine import api
        from engine.cli.render import emit
        from engine.compiler.lineage import render

        lin = api.lineage(path, name)
        emit(json.dumps(lin.as_dict(), indent=2) if fmt == "json" else render(lin))

    body(fmt=fmt)


@cli.command()
@PATH
@WORKSPACE
@click.option("--discard-wal", is_flag=True, help="Set a damaged write-ahead log aside (kept, renamed) and return to the last checkpoint.")
def recover(path: Path, workspace: Path | None, discard_wal: bool) -> None:
    """Check that the workspace database opens; with --discard-wal, recover from a damaged log."""

    @guard("text")
    def body(fmt: str = "text") -> None:
        from engine import api
        from engine.cli.render import emit

        emit(api.recover(path, discard_wal=discard_wal, workspace=workspace).capitalize() + ".")

    body()


@cli.command("check")
@PATH
@WORKSPACE
@click.option("--format", "fmt", type=FORMATS, default="text")
def check_command(path: Path, workspace: Path | None, fmt: str) -> None:
    """Check the workspace's integrity: orphan or tampered model artifacts (exit 0, warnings listed)."""

    @guard(fmt)
    def body(fmt: str) -> None:
        from engine import api
        from engine.cli.render import emit

        problems = api.check(path, workspace=workspace)
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
@PATH
@WORKSPACE
def gc(path: Path, workspace: Path | None) -> None:
    """Remove what an interrupted run left behind (orphan model directories)."""

    @guard("text")
    def body(fmt: str = "text") -> None:
        from engine import api
        from engine.cli.render import emit

        removed = api.gc(path, workspace=workspace)
        for p in removed:
            emit(f"removed {p}")
        emit(f"{len(removed)} item{'s' if len(removed) != 1 else ''} removed.")

    body()


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--name", default=None, help="Project name (default: the folder's name).")
def init(directory: Path, name: str | None) -> None:
    """Create a new, working project (specs, sample data, a feature package, tests)."""

    @guard("text")
    def body(fmt: str = "text") -> None:
        from engine.cli.render import emit
        from engine.scaffold import init_project

        files = init_project(directory, name)
        emit(f"Created {len(files)} files in {directory}. Next: engine apply {directory}")

    body()


@cli.command()
def schema() -> None:
    """Print the JSON Schema of the spec language (for editors and CI)."""
    from engine.spec.schema import load_schema

    click.echo(json.dumps(load_schema(), indent=2))


cli.add_command(serve)
cli.add_command(predict)


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
        sys.exit(ExitCode.INTERRUPTED)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.USAGE)
    except SystemExit:
        raise
    sys.exit(0)


if __name__ == "__main__":
    main()
