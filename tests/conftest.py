"""Shared test harness: a subprocess CLI runner, golden files, and a tiny generated project."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("nightly", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"


def pytest_configure(config) -> None:
    """The example feature library (examples/nyc_features) that the flights and taxi examples
    declare under ``requires``: installed in editable mode before anything is collected, if it is
    not installed yet (tests/support_libraries.py), so the README's test command works on a fresh
    machine."""
    from tests.support_libraries import ensure_example_library

    ensure_example_library()


def _on_spark(item) -> bool:
    """A Spark case: marked ``spark`` (a contract case on the cluster) or under tests/spark/ (whose
    conftest marks them later in this hook)."""
    return item.get_closest_marker("spark") is not None or item.nodeid.startswith("tests/spark/")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items) -> None:
    """Where the Spark cases go (a stable sort: each part keeps its order).

    Run in one process, last, together: the shared cluster starts on the first of them, and its
    JVMs (driver, master, two workers) idle at about a third of a core between uses, so started
    early they slowed every test after them.

    Run by pytest-xdist (``-n 2``, the README's command), first: xdist hands tests out in this
    order, so the Spark cases (the longest part, about 9 minutes) run beside the rest instead of
    after it, on one worker or both (each worker process starts its own cluster when it needs
    one). xdist hands tests out in its workers' collection order (every worker must sort alike),
    and its workers collect with ``dist`` reset to "no", so they are told apart by ``workerinput``."""
    spark = [item for item in items if _on_spark(item)]
    rest = [item for item in items if not _on_spark(item)]
    parallel = config.getoption("dist", "no") != "no" or hasattr(config, "workerinput")
    items[:] = spark + rest if parallel else rest + spark


def run_engine(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 120) -> tuple[int, str, str]:
    """Run the CLI in a subprocess (as a user would) and return (exit code, stdout, stderr)."""
    full_env = {**os.environ, "PYTHONHASHSEED": "0", "COLUMNS": "200", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "engine", *args],
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout, proc.stderr


def check_golden(name: str, text: str) -> None:
    """Compare ``text`` with ``tests/golden/<name>`` exactly; ENGINE_UPDATE_GOLDEN=1 rewrites it."""
    from tests.support import check_golden_file

    check_golden_file(GOLDEN / name, text)


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


TINY_SPEC = """
spec_version: 1
project: shop
sources:
  orders_raw: {format: csv, path: data/orders.csv, timezone: America/New_York}
  users_raw: {format: csv, path: data/users.csv}
feature_groups:
  orders:
    primary_key: [order_id]
    event_time: ordered_at
    sql: |
      SELECT order_id, user_id, CAST(amount AS DOUBLE) AS amount, ordered_at
      FROM orders_raw
    expectations:
      - {column: amount, between: [0, 1000]}
      - {column: order_id, not_null: true}
  user_spend:
    primary_key: [user_id]
    event_time: ordered_at
    from: orders
    aggregations:
      - {column: amount, function: sum, window: 2d}
      - {column: amount, function: count, window: 2d, name: orders_2d}
  users:
    primary_key: [user_id]
    python: shop_features.users:user_features
    inputs: [users_raw]
"""

ORDERS_CSV = """order_id,user_id,amount,ordered_at
1,10,5.0,2024-01-01 09:00:00
2,10,7.5,2024-01-02 10:00:00
3,11,3.0,2024-01-02 11:00:00
4,10,1.0,2024-01-05 09:00:00
5,12,20.0,2024-01-06 12:30:00
"""

USERS_CSV = """user_id,name,signup_year
10,ada,2019
11,bob,2021
12,cy,2023
"""

USERS_PY = """
import pandas as pd


def user_features(users: pd.DataFrame) -> pd.DataFrame:
    out = users[["user_id", "signup_year"]].copy()
    out["tenure_years"] = 2024 - out["signup_year"]
    return out
"""


def make_shop(root: Path, spec: str = TINY_SPEC, users_py: str = USERS_PY) -> Path:
    """The tiny project at ``root``, with its spec or its Python feature module replaced if given."""
    write(root, "specs/shop.yaml", spec)
    write(root, "data/orders.csv", ORDERS_CSV)
    write(root, "data/users.csv", USERS_CSV)
    write(root, "shop_features/__init__.py", "")
    write(root, "shop_features/users.py", users_py)
    return root


@pytest.fixture
def tiny_project(tmp_path: Path) -> Path:
    """A three-feature-group project (SQL, aggregation, Python) over two small CSV sources."""
    return make_shop(tmp_path / "shop")
