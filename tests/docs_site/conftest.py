"""The docs-site tests use the monitored project of tests/monitor (applied once per session)."""

from tests.monitor.conftest import shop  # noqa: F401  (a session fixture, shared)
