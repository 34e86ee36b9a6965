"""Fixtures for the SQL tests: a golden-file checker (``ENGINE_UPDATE_GOLDEN=1`` rewrites the files)."""

from __future__ import annotations

from tests.support import golden_checker

from collections.abc import Callable

import pytest



check_golden = golden_checker('sql')


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """The golden-file checker, as a fixture."""
    return check_golden
