"""Tests of the declared built-in transforms, data expectations and descriptive statistics.

Shared here: a golden-file helper (``ENGINE_UPDATE_GOLDEN=1`` rewrites the files) and a DuckDB
connection factory pinned to UTC.
"""

from __future__ import annotations

from tests.support import golden_checker, utc_connection




check_golden = golden_checker('builtins')


connect = utc_connection
