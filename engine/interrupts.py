"""Whether the user (Ctrl-C) or a scheduler (SIGTERM) asked this process to stop.

DuckDB turns a signal that arrives during a query into its own "Query interrupted" error; the
flag lets the runtime report such a failure as the interruption it is (exit 130), not as a
failed transform.
"""

from __future__ import annotations

_requested = False


def request() -> None:
    global _requested
    _requested = True


def requested() -> bool:
    return _requested
