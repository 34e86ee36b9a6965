"""Fixtures for the schema tests: load a YAML snippet with positions, render problems, golden files."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.errors import Problem
from engine.spec.sourcemap import Location, SourceMap

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "golden" / "schema"


def _compose_load(text: str, filename: str) -> tuple[object, SourceMap]:
    """Fallback loader (used only while engine.spec.yaml_loader is absent): positions from yaml.compose.

    Plain scalars follow the strict rules (only true/false are booleans), so Y6-style values stay strings.
    """
    import yaml

    smap = SourceMap()

    def loc(mark: yaml.Mark) -> Location:
        return Location(filename, mark.line + 1, mark.column + 1)

    def build(node: yaml.Node, path: tuple) -> object:
        if isinstance(node, yaml.MappingNode):
            out = {}
            for key_node, value_node in node.value:
                key = key_node.value
                smap.add(path + (key,), loc(key_node.start_mark), loc(value_node.start_mark))
                out[key] = build(value_node, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                smap.add(path + (i,), loc(item.start_mark), loc(item.start_mark))
                items.append(build(item, path + (i,)))
            return items
        if node.style is not None:
            return node.value
        text_value = node.value
        if text_value in ("true", "false"):
            return text_value == "true"
        if text_value in ("", "~", "null"):
            return None
        for cast in (int, float):
            try:
                return cast(text_value)
            except ValueError:
                pass
        return text_value

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    smap.add((), Location(filename, 1, 1))
    return (build(root, ()) if root is not None else None), smap


def load(text: str, filename: str = "spec.yaml") -> tuple[object, SourceMap]:
    """Plain data and a SourceMap for a YAML snippet (dedented), via the strict loader when present."""
    text = textwrap.dedent(text).lstrip("\n")
    try:
        from engine.spec.yaml_loader import load_yaml
    except ImportError:  # pragma: no cover - until the strict loader lands
        return _compose_load(text, filename)
    return load_yaml(text, filename)


def render(problems: list[Problem]) -> str:
    """What a user sees: one rendered problem per line."""
    return "".join(p.render() + "\n" for p in problems)


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """``golden(name, text)`` compares ``text`` with tests/golden/schema/NAME.txt.

    ``ENGINE_UPDATE_GOLDEN=1`` (re)writes the file instead; review the diff before committing.
    """

    def check(name: str, text: str) -> None:
        path = GOLDEN_DIR / f"{name}.txt"
        if os.environ.get("ENGINE_UPDATE_GOLDEN") == "1":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        assert path.exists(), f"missing golden file {path} (run with ENGINE_UPDATE_GOLDEN=1)"
        assert text == path.read_text(encoding="utf-8"), f"output differs from {path} (ENGINE_UPDATE_GOLDEN=1 to accept)"

    return check
