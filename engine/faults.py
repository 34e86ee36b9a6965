"""Test-only fault injection: ``ENGINE_FAULT_AT=<point>`` makes the process SIGKILL itself there.

Used by the crash tests (RELIABILITY G1, G2) to prove that a killed run publishes nothing partial.
"""

from __future__ import annotations

import os
import signal


def fault_point(name: str) -> None:
    if os.environ.get("ENGINE_FAULT_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
