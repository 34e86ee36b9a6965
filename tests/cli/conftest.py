"""Fixtures for the CLI tests: a project made by `engine init` and applied once (shared, read-only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_engine


@pytest.fixture(scope="module")
def tips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`engine init` output, applied: every object kind (source … online inference) exists and is published."""
    root = tmp_path_factory.mktemp("cli") / "tips"
    rc, _, err = run_engine("init", str(root))
    assert rc == 0, err
    rc, _, err = run_engine("apply", cwd=root)
    assert rc == 0, err
    return root
