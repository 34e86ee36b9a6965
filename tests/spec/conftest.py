"""Shared fixtures for the spec-reading tests: golden files of rendered problems."""

from __future__ import annotations

from tests.support import golden_checker

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

    return golden_checker("yaml", newline=False)

