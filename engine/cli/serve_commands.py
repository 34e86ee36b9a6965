"""`engine serve` and `engine predict`: argument parsing and output only; the online service is
``engine.serving.online``'s and the HTTP endpoint ``engine.serving.http``'s. ``engine.cli.main``
registers both commands; this module must not import it.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import click

from engine.cli.completion import complete_object
from engine.cli.options import PATH, PROJECT, WORKSPACE, guard, locate, split_project
from engine.errors import ExitCode, RequestError, UsageError


def _read_rows(text: str) -> tuple[list, bool]:
    """(rows, from_text) from a JSON list, a JSON object, JSON lines or CSV with a header."""
    from engine.serving.online import parse_json

    stripped = text.lstrip()
    try:
        if stripped.startswith("["):
            doc = parse_json(stripped)
            return list(doc), False  # type: ignore[arg-type]
        if stripped.startswith("{"):
            try:
                doc = parse_json(stripped)
            except RequestError:
                return [parse_json(line) for line in stripped.splitlines() if line.strip()], False
            rows = doc.get("rows", [doc]) if isinstance(doc, dict) else [doc]
            return (rows if isinstance(rows, list) else [rows]), False
    except RequestError as exc:
        raise UsageError(f"input: {exc.message}: " + "; ".join(f"{e['path']}: {e['message']}" for e in exc.errors)) from None
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise UsageError("input has no rows (JSON list, JSON lines or CSV with a header expected)")
    return rows, True


def _csv_text(rows: list, results: list[dict], classes: list[str]) -> str:
    out = io.StringIO()
    inputs = list(dict.fromkeys(k for r in rows for k in r))
    header = [*inputs, "status", "prediction", *(f"proba_{c}" for c in classes), "missing", "expired", "error"]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row, res in zip(rows, results):
        probs = res.get("probabilities") or {}
        writer.writerow([
            *(row.get(k, "") for k in inputs), res["status"], "" if res.get("prediction") is None else res["prediction"],
            *(repr(probs[c]) if c in probs else "" for c in classes),
            ";".join(res.get("missing", [])), ";".join(res.get("expired", [])), res.get("error", ""),
        ])
    return out.getvalue()


@click.command()
@PATH
@PROJECT
@WORKSPACE
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address (loopback unless --allow-remote).")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--allow-remote", is_flag=True, help="Allow a non-loopback --host (the endpoint has no authentication).")
@click.option("--log-format", "log_format", type=click.Choice(["text", "json"]), default="text", help="json: server logs as one JSON object per line on stderr (the access log is JSON either way).")
@click.option("--allow-code-drift", is_flag=True, help="Run a model even if its on-demand functions' code on disk differs from the code it was trained with.")
def serve(path: Path | None, project: Path | None, workspace: Path | None, host: str, port: int, allow_remote: bool, log_format: str, allow_code_drift: bool) -> None:
    """Serve online predictions over HTTP (docs at /docs); follows each new apply.

    Jobs with `monitoring:` log a sample of their requests for `engine monitor`."""

    @guard("text")
    def body(fmt: str) -> None:
        from engine.project import validate, workspace_of
        from engine.serving.http import check_host, serve as run

        check_host(host, allow_remote)  # before the spec is read, as a usage error
        where = locate(path, project, workspace)
        checked = validate(where.path)
        if log_format == "json":
            from engine.cli.logs import json_logging

            json_logging()
        from engine.monitor.spool import for_project

        root = workspace_of(checked, where.workspace).root
        try:
            run(checked, root, host=host, port=port, allow_remote=allow_remote, prediction_log=for_project(checked, root), own_logging=log_format == "text", allow_code_drift=allow_code_drift)
        except KeyboardInterrupt:
            if log_format != "json":
                raise
            from engine.cli.logs import log_event

            log_event("json", "serve.stopped", reason="interrupted")
            sys.exit(int(ExitCode.INTERRUPTED))

    body(fmt="text")


@click.command()
@click.argument("args", nargs=-1, metavar="[PATH] JOB", shell_complete=complete_object("inference", online_only=True))
@PROJECT
@WORKSPACE
@click.option("--input", "input_file", default="-", show_default=True, help="Rows: JSON list, JSON lines or CSV; - for stdin.")
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True, help="Output format.")
@click.option("--output", "output", type=click.Path(path_type=Path), default=None, help="Write here instead of stdout.")
@click.option("--allow-code-drift", is_flag=True, help="Run a model even if its on-demand functions' code on disk differs from the code it was trained with.")
def predict(args: tuple[str, ...], project: Path | None, workspace: Path | None, input_file: str, fmt: str, output: Path | None, allow_code_drift: bool) -> None:
    """Score rows with an online inference job, without HTTP (same path as `engine serve`).

    With two arguments the first is the project (PATH); with one, it is JOB.
    """

    @guard("text")
    def body(fmt: str) -> None:
        from engine import api

        path, (job,) = split_project(args, project, names="[PATH] JOB", at_least=1, at_most=1)
        where = locate(path, project, workspace)
        text = sys.stdin.read() if input_file == "-" else Path(input_file).read_text(encoding="utf-8")
        rows, from_text = _read_rows(text)
        state = api.online_state(where.path, workspace=where.workspace, allow_code_drift=allow_code_drift)
        result = api.predict_online(where.path, job, rows, state=state, from_text=from_text)
        if fmt == "json":
            rendered = json.dumps(result, indent=2) + "\n"
        else:
            classes = [str(c) for c in (state.job(job).model.classes or [])]
            rendered = _csv_text(rows, result["predictions"], classes)
        if output is None:
            click.echo(rendered, nl=False)
        else:
            output.write_text(rendered, encoding="utf-8")

    body(fmt=fmt)
