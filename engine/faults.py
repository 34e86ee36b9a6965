"""Test-only fault injection at named points of a run.

``ENGINE_FAULT_AT=<point>`` makes the process SIGKILL itself there: the crash tests (RELIABILITY
G1, G2) prove that a killed run publishes nothing partial. ``ENGINE_PAUSE_AT=<point>`` with
``ENGINE_PAUSE_FILE=<path>`` makes it create ``<path>`` the first time it gets there and wait (up
to 120 s) until the file is deleted: the concurrency tests read the workspace while an apply is
held mid-commit.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def fault_point(name: str) -> None:
    if os.environ.get("ENGINE_FAULT_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("ENGINE_PAUSE_AT") == name and os.environ.get("ENGINE_PAUSE_FILE") and name not in _PAUSED:
        _PAUSED.add(name)
        _pause(Path(os.environ["ENGINE_PAUSE_FILE"]))


_PAUSED: set[str] = set()


def _pause(flag: Path) -> None:
    flag.write_text(str(os.getpid()))
    deadline = time.monotonic() + 120
    while flag.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
