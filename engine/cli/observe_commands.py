"""`engine docs` and `engine monitor`: argument parsing and output only; the site is
``engine.docs_site``'s and the drift report ``engine.monitor``'s. ``engine.cli.main`` registers
both commands; this module must not import it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from engine.cli.options import FORMATS, PROJECT, WORKSPACE, guard, locate, split_project
from engine.cli.completion import complete_object
from engine.errors import EngineError, ExitCode


@click.command()
@click.argument("path", type=click.Path(path_type=Path), required=False, default=None)
@PROJECT
@WORKSPACE
@click.option("--out", "out", type=click.Path(path_type=Path), default=None, help="Folder to write the site into (default: <workspace>/site).")
def docs(path: Path | None, project: Path | None, workspace: Path | None, out: Path | None) -> None:
    """Write a static documentation site of the project: DAG, feature groups, views, models, lineage, monitoring.

    The site works offline (no CDN, no JavaScript): open index.html in a browser.
    """

    @guard("text")
    def body(fmt: str = "text") -> None:
        from engine.cli.render import emit
        from engine.docs_site.site import write_site

        where = locate(path, project, workspace)
        site = write_site(where.path, out, workspace=where.workspace)
        emit(f"Wrote {len(site.pages)} pages: {site.root / 'index.html'}")

    body()


@click.command()
@click.argument("args", nargs=-1, metavar="[PATH] MODEL", shell_complete=complete_object("models", "inference"))
@PROJECT
@WORKSPACE
@click.option("--since", default=None, metavar="TIME", help="Only requests logged at or after this time (ISO 8601).")
@click.option("--docs", "site", type=click.Path(path_type=Path), default=None, help="Also write the report's page into this docs site folder.")
@click.option("--lock-timeout", type=float, default=10.0, show_default=True, help="Seconds to wait for an apply to ingest the request log.")
@click.option("--format", "fmt", type=FORMATS, default="text")
@click.option("--log-format", "log_format", type=click.Choice(["text", "json"]), default="text", help="json: progress as one JSON object per line on stderr.")
def monitor(args: tuple[str, ...], project: Path | None, workspace: Path | None, since: str | None, site: Path | None, lock_timeout: float, fmt: str, log_format: str) -> None:
    """Compare what an online model served with its training data: PSI, KS, missing rates, prediction drift.

    \b
    MODEL: a model served by online jobs, or an online job. Ingests the request log of its
    monitored jobs (inference.<job>.monitoring) into serving_log__<job> first. Exit 0 and no
    output when no threshold is crossed; exit 4 naming the features that crossed one.
    """

    @guard(fmt)
    def body(fmt: str) -> None:
        from engine.cli.logs import log_event
        from engine.cli.render import emit
        from engine.monitor.report import run

        path, (name,) = split_project(args, project, names="[PATH] MODEL", at_least=1, at_most=1)
        where = locate(path, project, workspace)
        log_event(log_format, "monitor.started", model=name)
        try:
            report = run(where.path, name, since=since, workspace=where.workspace, lock_timeout_s=lock_timeout)
        except EngineError as exc:
            if log_format != "json":
                raise
            from engine.cli.logs import fail_json

            fail_json(exc)
        log_event(log_format, "monitor.compared", model=report.model, rows=report.rows, ingested=report.ingested, alerts=len(report.alerts))
        if site is not None:  # the whole site again: its index and monitoring pages list the new report
            from engine.docs_site.site import write_site

            write_site(where.path, site, workspace=where.workspace)
        if fmt == "json":
            emit(json.dumps({**report.as_dict(), "drift": report.drifted}, indent=2))
        elif log_format == "text":
            for note in report.notes:
                emit(f"note: {note}", err=True)
        for note in report.notes:
            log_event(log_format, "monitor.note", message=note)
        for alert in report.alerts:
            log_event(log_format, "monitor.drift", level="warning", feature=alert.feature, statistic=alert.statistic, value=alert.value, threshold=alert.threshold)
        if report.drifted:
            if fmt == "text" and log_format == "text":
                emit(f"drift: {report.model} served {report.rows} rows unlike its training data:", err=True)
                for alert in report.alerts:
                    emit(f"  {alert.describe()}", err=True)
            sys.exit(int(ExitCode.DATA_CHECK_FAILED))

    body(fmt=fmt)
