"""Tests of the SQL gate, identifier quoting, column inference and the sandboxed DuckDB connection."""
