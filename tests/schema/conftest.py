"""Fixtures for the schema tests: load a YAML snippet with positions, render problems, golden files."""

from __future__ import annotations

from tests.support import golden_checker

import textwrap
from collections.abc import Callable

import pytest

from engine.errors import Problem
from engine.spec.sourcemap import SourceMap

def load(text: str, filename: str = "spec.yaml") -> tuple[object, SourceMap]:
    """Plain data and a SourceMap for a YAML snippet (dedented), via the strict loader."""
    text = textwrap.dedent(text).lstrip("\n")
    from engine.spec.yaml_loader import load_yaml

    return load_yaml(text, filename)


def render(problems: list[Problem]) -> str:
    """What a user sees: one rendered problem per line."""
    return "".join(p.render() + "\n" for p in problems)


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """``golden(name, text)`` compares ``text`` with tests/golden/schema/NAME.txt.

    ``ENGINE_UPDATE_GOLDEN=1`` (re)writes the file instead; review the diff before committing.
    """

    return golden_checker("schema", newline=False)

