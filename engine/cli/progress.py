"""The `apply` progress display (rich) and its summary table, fed by runtime events."""

from __future__ import annotations

import json
import sys

from engine.runtime.events import Event, RunNotice, RunResult, StepFinished, StepStarted, StepStatus

_STYLE = {StepStatus.RAN: "green", StepStatus.SKIPPED: "yellow", StepStatus.FAILED: "bold red"}


class ApplyDisplay:
    """Shows a spinner per running step on stderr (when it is a terminal) and a summary table."""

    def __init__(self, enabled: bool):
        from rich.console import Console

        self.enabled = enabled
        self.console = Console(stderr=True, highlight=False)
        self.out = Console(highlight=False, soft_wrap=True)
        self._status = None

    def __enter__(self) -> "ApplyDisplay":
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def on_event(self, event: Event) -> None:
        if not self.enabled:
            return
        match event:
            case StepStarted(step_id=step_id, reason=reason):
                self._stop()
                if self.console.is_terminal:
                    self._status = self.console.status(f"{step_id} ({reason}) …")
                    self._status.start()
            case StepFinished() as done:
                self._stop()
                rows = f", {done.rows:,} rows" if done.rows is not None else ""
                mark = {StepStatus.RAN: "✓", StepStatus.SKIPPED: "-", StepStatus.FAILED: "✗"}[done.status]
                self.console.print(f"[{_STYLE[done.status]}]{mark}[/] {done.step_id} {done.status.value} ({done.reason}{rows}, {done.seconds:.2f}s)")
            case RunNotice(message=message):
                self.console.print(f"[yellow]note:[/] {message}")

    def summary(self, run: RunResult) -> None:
        if not self.enabled:
            return
        from rich.table import Table

        table = Table(title=f"run {run.run_id}", title_justify="left")
        for col in ("step", "status", "reason", "rows", "seconds"):
            table.add_column(col, justify="right" if col in ("rows", "seconds") else "left")
        unchanged = [s for s in run.steps if s.status is StepStatus.SKIPPED and s.reason == "unchanged"]
        for s in run.steps:
            if s in unchanged:
                continue
            table.add_row(s.step_id, f"[{_STYLE[s.status]}]{s.status.value}[/]", s.reason, f"{s.rows:,}" if s.rows is not None else "", f"{s.seconds:.2f}" if s.status is not StepStatus.SKIPPED else "")
        self.console.print(table)
        if unchanged:
            self.console.print(f"{len(unchanged)} unchanged step{'s' if len(unchanged) != 1 else ''} skipped.")

    def finish(self, result, fmt: str) -> None:
        """Print the outcome of a successful apply (text or JSON)."""
        if fmt == "json":
            if result.run is None:
                steps = [{"id": s.step.key, "status": "skipped", "reason": s.reason.value} for s in result.plan.steps]
                sys.stdout.write(json.dumps({"run_id": None, "status": "unchanged", "steps": steps}, indent=2) + "\n")
            else:
                sys.stdout.write(json.dumps({**result.run.as_dict(), "status": "succeeded"}, indent=2) + "\n")
            return
        if result.run is None:
            self.out.print("No changes.")
            return
        self.summary(result.run)
        self.out.print(f"Applied: {result.run.ran} step{'s' if result.run.ran != 1 else ''} ran, run {result.run.run_id}.")
