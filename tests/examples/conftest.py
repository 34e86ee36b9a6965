"""Fixtures of the example-project tests: the shared feature library the examples declare under
``requires`` (examples/nyc_features), installed once per session."""

from __future__ import annotations

import pytest

from tests.support_libraries import ensure_example_library


@pytest.fixture(scope="session")
def example_library() -> str:
    """The installed version of ``nyc-features`` (installed in editable mode from
    examples/nyc_features if it was not)."""
    return ensure_example_library()
