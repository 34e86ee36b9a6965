"""Tests of the spec JSON Schema and its validator (engine.spec.schema)."""
