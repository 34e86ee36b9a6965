"""Tests of the point-in-time join (DESIGN §3, RELIABILITY F3) against a brute-force oracle.

Shared here: a golden-file helper (``ENGINE_UPDATE_GOLDEN=1`` rewrites the files) and a DuckDB
connection factory pinned to UTC.
"""

from __future__ import annotations

from tests.support import golden_checker, utc_connection




check_golden = golden_checker('pit')


connect = utc_connection
