"""Tests of engine.training; ``check_golden`` compares user-visible text with tests/golden/training/."""

from __future__ import annotations

from tests.support import golden_checker




check_golden = golden_checker('training')
