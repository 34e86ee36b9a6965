"""The DuckDB backend (the default): embedded, single machine, out-of-core."""

from engine.backends.duckdb.backend import DuckDBBackend

__all__ = ["DuckDBBackend"]
