"""Spark test fixtures: the session's standalone cluster (tests/support_spark.py), started lazily
on the first test that asks for it, so the rest of the suite never pays for a JVM."""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("pyspark") is None:
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def spark_cluster():
    from tests.support_spark import shared_cluster

    return shared_cluster()


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/spark/" in str(item.fspath):
            item.add_marker(pytest.mark.spark)
