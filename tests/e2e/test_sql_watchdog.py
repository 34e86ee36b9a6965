"""Q8, the hard case: a statement that ignores DuckDB's interrupt. ``interrupt()`` is only looked at
between vectors and operators, so a per-row bomb inside one vector (a ``regexp_replace`` over a
large ``repeat()`` for each of 1 000 rows) runs on for tens of seconds after the first interrupt.
The watchdog interrupts again and again, and at twice the limit fails the step anyway: the apply
exits 5 "timed out" within 2 x the limit (plus the process start), never hangs, and publishes
nothing of the step (I2)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from engine import api
from tests.conftest import REPO

# ~300 MB of text per vector, rewritten byte by byte: no vector boundary for ~20-30 s.
BOMB = "(SELECT max(length(regexp_replace(repeat('a', 300000 + i::INT), 'a', 'b', 'g'))) FROM range(1000) t(i)) > 0"


def _timed_cli(*args: str, timeout: float) -> tuple[int, str, float]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "engine", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stderr, time.monotonic() - started


def test_a_statement_that_ignores_the_interrupt_fails_at_twice_the_limit(tiny_project: Path):
    api.apply(tiny_project)
    before = api.read_feature_group(tiny_project, "orders")
    spec = tiny_project / "specs/shop.yaml"
    spec.write_text(spec.read_text().replace("FROM orders_raw\n", f"FROM orders_raw WHERE {BOMB}\n"))
    rc, err, _ = _timed_cli("validate", str(tiny_project), timeout=60)
    assert rc == 0, err  # the gate cannot see cost: only the runtime bounds it

    # What an apply costs besides the statement: start, imports, plan, lock, open (no SQL runs).
    _, _, overhead = _timed_cli("plan", str(tiny_project), timeout=60)
    rc, err, elapsed = _timed_cli("apply", str(tiny_project), "--sql-timeout", "2", timeout=60)
    assert rc == 5, err
    assert "timed out after 2s" in err and "Traceback" not in err
    assert elapsed < 4 + overhead + 1.5, f"stopped after {elapsed:.1f}s (start-up {overhead:.1f}s)"
    pd.testing.assert_frame_equal(api.read_feature_group(tiny_project, "orders"), before)

    # The workspace is usable right away: the next apply (bomb removed) converges.
    spec.write_text(spec.read_text().replace(f" WHERE {BOMB}", ""))
    rc, err, _ = _timed_cli("apply", str(tiny_project), timeout=60)
    assert rc == 0, err
    pd.testing.assert_frame_equal(api.read_feature_group(tiny_project, "orders"), before)
