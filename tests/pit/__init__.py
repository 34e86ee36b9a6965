"""Tests of the point-in-time join (DESIGN §3, RELIABILITY F3) against a brute-force oracle.

Shared here: a golden-file helper (``ENGINE_UPDATE_GOLDEN=1`` rewrites the files) and a DuckDB
connection factory pinned to UTC.
"""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "golden" / "pit"


def check_golden(name: str, text: str) -> None:
    """Compare ``text`` with ``tests/golden/pit/NAME.txt`` (rewrite it when updating)."""
    path = GOLDEN_DIR / f"{name}.txt"
    if not text.endswith("\n"):
        text += "\n"
    if os.environ.get("ENGINE_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"golden file {path} is missing (run with ENGINE_UPDATE_GOLDEN=1)"
    assert text == path.read_text(encoding="utf-8"), f"output differs from golden file {path} (ENGINE_UPDATE_GOLDEN=1 to accept)"


def connect():
    """An in-memory DuckDB connection with the session pinned to UTC, as the engine runs it."""
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    return con
