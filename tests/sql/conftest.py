"""Fixtures for the SQL tests: a golden-file checker (``ENGINE_UPDATE_GOLDEN=1`` rewrites the files)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "golden" / "sql"


def check_golden(name: str, text: str) -> None:
    """Compare ``text`` with ``tests/golden/sql/NAME.txt``; rewrite the file when updating."""
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


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """The golden-file checker, as a fixture."""
    return check_golden
