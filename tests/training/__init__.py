"""Tests of engine.training; ``check_golden`` compares user-visible text with tests/golden/training/."""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "golden" / "training"


def check_golden(name: str, text: str) -> None:
    """Compare ``text`` with ``tests/golden/training/NAME.txt``; ``ENGINE_UPDATE_GOLDEN=1`` rewrites it."""
    path = GOLDEN_DIR / f"{name}.txt"
    if not text.endswith("\n"):
        text += "\n"
    if os.environ.get("ENGINE_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"golden file {path} is missing (run with ENGINE_UPDATE_GOLDEN=1)"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"output differs from golden file {path}:\n--- got\n{text}--- expected\n{expected}"
