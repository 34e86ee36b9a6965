"""The `apply` and `run` progress display (rich), fed by runtime events; and what a stopped or
failed run published. Reads events and plans; owns no engine logic.

On a terminal: one line per finished step (``✓ 3/12 feature_group:weather@1  new  8,703 rows
0.41s``) above a live line for the running step (spinner, N/M, the step's and the run's elapsed
time). Elsewhere (CI logs, pipes): the same finished-step lines, no live line.
"""

from __future__ import annotations

import json
import sys
import time

from rich.progress import ProgressColumn
from rich.text import Text

from engine.runtime.events import Event, PlanMade, RunNotice, RunResult, StepFinished, StepStarted, StepStatus

_MARK = {StepStatus.RAN: "[green]✓[/]", StepStatus.SKIPPED: "[yellow]-[/]", StepStatus.FAILED: "[bold red]✗[/]"}
_ID_WIDTH = 44  # step ids longer than this are not padded


def _seconds(s: float) -> str:
    """``0.41s``, ``12.3s``, ``2m05s``."""
    if s < 10:
        return f"{s:.2f}s"
    if s < 60:
        return f"{s:.1f}s"
    return f"{int(s // 60)}m{int(s % 60):02d}s"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _details(done: StepFinished) -> str:
    """What a finished step produced, beyond rows and seconds, when the event carries it.

    ``output`` (a table or file a step wrote) and ``metrics`` (a trained model's test metrics) are
    the fields proposed for StepFinished; older events without them show nothing more.
    """
    parts = []
    output = getattr(done, "output", None)
    if output:
        parts.append(f"→ {output}")
    metrics = getattr(done, "metrics", None) or ()
    items = metrics.items() if isinstance(metrics, dict) else metrics
    shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, (int, float)) else f"{k} {v}" for k, v in items)
    if shown:
        parts.append(shown)
    return "  ".join(parts)


class _StepElapsed(ProgressColumn):
    """How long the running step has been running (the run's own elapsed time is rich's column)."""

    def render(self, task) -> Text:
        started = task.fields.get("step_started")
        return Text(_seconds(time.monotonic() - started) if started else "", style="cyan")


class ApplyDisplay:
    """Records every event of a run; when ``enabled``, shows them on stderr as they arrive.

    :meth:`expect` takes the plan, so lines read ``N/M``. The record is kept even when disabled
    (``--format json``) so that a stopped run can still say what it published.
    """

    def __init__(self, enabled: bool, *, console=None):
        from rich.console import Console

        self.enabled = enabled
        self.console = console or Console(stderr=True, highlight=False)
        self.out = Console(highlight=False, soft_wrap=True)
        self.expected: list[str] = []  # step ids the plan runs, in order
        self.known = False  # whether expected came from the plan (else M is shown as ?)
        self._reason_width = 0
        self.finished: list[StepFinished] = []
        self.running: str | None = None
        self.started = time.monotonic()
        self._progress = None
        self._task = None

    # --- lifecycle ------------------------------------------------------------------------------

    def expect(self, plan) -> None:
        """The steps ``plan`` will run (an ``engine.compiler.steps.Plan``), for ``N/M``; None: unknown."""
        self.known = plan is not None
        self.expected = [ps.step.key for ps in plan.to_run] if plan is not None else []
        self._reason_width = max((len(ps.reason.value) for ps in plan.to_run), default=0) if plan is not None else 0

    def __enter__(self) -> "ApplyDisplay":
        self.started = time.monotonic()
        if self.enabled and self.console.is_terminal and (self.expected or not self.known):
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                _StepElapsed(),
                BarColumn(bar_width=20),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._task = self._progress.add_task("preparing …", total=len(self.expected) if self.known else None, step_started=None)
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    # --- events -------------------------------------------------------------------------------------

    @property
    def total(self) -> int:
        return max(len(self.expected), self._done_count())

    def _of(self, n: int) -> str:
        """``N/M``, or ``N/?`` when the plan was not known up front."""
        total = str(self.total) if self.known else "?"
        return f"{n}/{total}"

    def _print(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, highlight=False, soft_wrap=True)

    def _say(self, text: str) -> None:
        """Prose: wrapped at word boundaries on a terminal, one line per paragraph elsewhere."""
        if not self.enabled:
            return
        if self.console.is_terminal:
            import textwrap

            text = "\n".join(textwrap.wrap(text, self.console.width, break_long_words=False, break_on_hyphens=False))
        self.console.print(text, highlight=False, soft_wrap=True)

    def on_event(self, event: Event) -> None:
        match event:
            case PlanMade(plan=plan):
                self.expect(plan)
                if self._progress is not None and self._task is not None:
                    self._progress.update(self._task, total=len(self.expected))
            case StepStarted(step_id=step_id, reason=reason):
                if step_id not in self.expected:
                    self.expected.append(step_id)
                self.running = step_id
                if self._progress is not None:
                    from rich.markup import escape

                    n = self._done_count() + 1
                    self._progress.update(self._task, description=f"{self._of(n)} {escape(step_id)} ({escape(reason)})", step_started=time.monotonic(), total=self.total if self.known else None, completed=n - 1)
            case StepFinished() as done:
                self.finished.append(done)
                if done.step_id == self.running:
                    self.running = None
                if done.status is not StepStatus.SKIPPED:  # "upstream failed": the outcome lists them
                    self._print(self.line(done))
                    from rich.markup import escape

                    for note in getattr(done, "notes", ()):
                        self._print(f"   [yellow]note:[/] {escape(note)}")
                if self._progress is not None:
                    self._progress.update(self._task, completed=self._done_count(), description="…", step_started=None)
            case RunNotice(message=message):
                from rich.markup import escape

                self._print(f"[yellow]note:[/] {escape(message)}")

    def _done_count(self) -> int:
        return sum(1 for s in self.finished if s.status is not StepStatus.SKIPPED)

    def line(self, done: StepFinished) -> str:
        """One finished step: mark, N/M, id, reason, rows, seconds (and output / metrics)."""
        from rich.markup import escape

        width = min(_ID_WIDTH, max((len(k) for k in self.expected), default=0))
        step = escape(done.step_id.ljust(width))
        n = self._of(self._done_count()).rjust(2 * len(str(self.total)) + 1)
        rows = f"{done.rows:,} rows" if done.rows is not None else ""
        reason = escape(done.reason.ljust(self._reason_width))
        if done.status is StepStatus.FAILED:
            return f" {_MARK[done.status]} {n} {step}  {reason}  [bold red]failed[/] after {_seconds(done.seconds)}"
        extra = _details(done)
        return f" {_MARK[done.status]} {n} {step}  {reason}  {rows:>12}  {_seconds(done.seconds):>6}" + (f"  {escape(extra)}" if extra else "")

    # --- outcomes -----------------------------------------------------------------------------------

    def published(self) -> tuple[list[str], list[str], list[str]]:
        """(published, stopped while running or failed, not started): published are the steps that
        finished ✓ — each step publishes all or nothing as it ends."""
        done = [s.step_id for s in self.finished if s.status is StepStatus.RAN]
        broken = [s.step_id for s in self.finished if s.status is StepStatus.FAILED]
        if self.running is not None and self.running not in done + broken:
            broken.append(self.running)
        return done, broken, [k for k in self.expected if k not in done and k not in broken]

    def interrupted(self, fmt: str) -> None:
        """After Ctrl-C: exactly what was published and what was not (text on stderr, or JSON)."""
        self._stop()
        done, stopped, not_started = self.published()
        if fmt == "json":
            doc = {"status": "interrupted", "published": done, "not_published": stopped + not_started}
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
            return
        if not self.enabled:
            return
        for line in self.outcome_lines(done, stopped, not_started, "stopped while running", "interrupted", "`engine apply` again finishes the rest"):
            self._say(line)

    def failed(self, run: RunResult) -> None:
        """After a failed step: what the run published before it, and what it did not."""
        self._stop()
        if not self.enabled:
            return
        self.running = None
        done, broken, not_started = self.published()
        not_started += [s.step_id for s in run.steps if s.reason.startswith("upstream failed") and s.step_id not in not_started]
        then = "Fix the errors below, then apply again" if len(broken) > 1 else "Fix the error below, then apply again"
        for line in self.outcome_lines(done, broken, not_started, "failed", "failed", then):
            self._say(line)

    def outcome_lines(self, done: list[str], broken: list[str], not_started: list[str], why: str, what: str, then: str) -> list[str]:
        from rich.markup import escape

        def named(ids: list[str]) -> str:
            return escape(", ".join(ids))

        lines = [f"[bold]{what.capitalize()} after {_seconds(time.monotonic() - self.started)}.[/]"]
        if not done:
            lines.append("Published: nothing.")
        elif len(done) <= 5:
            lines.append(f"Published: {named(done)} (✓ above).")
        else:
            lines.append(f"Published: {_plural(len(done), 'step')}, every one marked ✓ above.")
        parts = [f"{escape(k)} ({why})" for k in broken]
        if not_started:
            parts.append(f"{named(not_started)} (not started)")
        if parts:
            lines.append("Not published: " + "; ".join(parts) + ".")
        if done:
            lines.append(f"The online snapshot still holds the previous state. {then}: what was published is up to date and skipped.")
        return lines

    def finish(self, result, fmt: str) -> None:
        """Print the outcome of a successful apply (text or JSON)."""
        self._stop()
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
        run = result.run
        unchanged = sum(1 for s in run.steps if s.status is StepStatus.SKIPPED and s.reason == "unchanged")
        rest = f" ({unchanged} unchanged)" if unchanged else ""
        self.out.print(f"Applied: {_plural(run.ran, 'step')} ran in {_seconds(time.monotonic() - self.started)}{rest}, run {run.run_id}.")

    def wait(self, seconds: float, tick: int) -> None:
        """Sleep until the next tick of `engine run --every`, with a live countdown on a terminal."""
        if not (self.enabled and self.console.is_terminal):
            time.sleep(seconds)
            return
        until = time.monotonic() + seconds
        with self.console.status("") as status:
            while (left := until - time.monotonic()) > 0:
                status.update(f"tick {tick} in {left:.0f}s · Ctrl-C to stop")
                time.sleep(min(0.5, left))


def tick_line(count: int, stamp: str, run: RunResult | None) -> str:
    """One line per tick of `engine run --every`: what ran, with rows and seconds.

    >>> tick_line(2, "12:00:00", None)
    '[12:00:00] tick 2: no changes'
    """
    if run is None or not run.ran:
        return f"[{stamp}] tick {count}: no changes"
    parts = [
        f"{s.step_id} ran ({f'{s.rows:,} rows, ' if s.rows is not None else ''}{_seconds(s.seconds)})"
        for s in run.steps
        if s.status is StepStatus.RAN
    ]
    return f"[{stamp}] tick {count}: " + "; ".join(parts)
