"""Shared fixtures for the spec-reading tests: golden files of rendered problems."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.errors import SpecError

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "golden" / "yaml"


def rendered(error: SpecError) -> str:
    """The lines a user sees for ``error``: one ``Problem.render()`` per line."""
    return "".join(p.render() + "\n" for p in error.problems)


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """``golden(name, text)`` compares ``text`` with tests/golden/yaml/NAME.txt.

    With ``ENGINE_UPDATE_GOLDEN=1`` the file is (re)written instead; review the diff.
    """

    def check(name: str, text: str) -> None:
        path = GOLDEN_DIR / f"{name}.txt"
        if os.environ.get("ENGINE_UPDATE_GOLDEN") == "1":
            GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return
        assert path.exists(), f"missing golden file {path}; run with ENGINE_UPDATE_GOLDEN=1"
        assert text == path.read_text(encoding="utf-8"), f"output differs from {path}"

    return check
