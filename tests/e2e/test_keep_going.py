"""A failed step skips only what depends on it (issue 10, item 6, as dbt's build): independent
branches go on running and publish; the summary names each failed step, positioned, and what was
skipped because of it; nothing of a failed object is published."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import TINY_SPEC, make_shop, run_engine

FAILING_USERS = """
import pandas as pd


def user_features(users: pd.DataFrame) -> pd.DataFrame:
    raise ValueError("no users today")
"""


def _project(root: Path, spec: str = TINY_SPEC, users_py: str = FAILING_USERS) -> Path:
    return make_shop(root, spec, users_py)


def _statuses(root: Path) -> dict[str, tuple[str, str]]:
    code, out, err = run_engine("apply", str(root), "--format", "json")
    doc = json.loads(out)
    return code, {s["id"]: (s["status"], s["reason"]) for s in doc["steps"]}, err


def test_an_independent_sibling_runs_and_publishes_after_a_failure(tmp_path: Path) -> None:
    root = _project(tmp_path / "shop")
    code, out, err = run_engine("apply", str(root))
    assert code == 5, out + err
    assert "feature_group:users@1 (failed)" in err and "no users today" in err and "shop_features/users.py:5" in err, err
    # orders and user_spend do not read users: they ran and are published.
    assert "Published: source:orders_raw, source:users_raw, feature_group:orders@1, feature_group:user_spend@1" in err, err
    code, out, err = run_engine("show", str(root), "feature_group", "user_spend")
    assert code == 0, out + err
    code, out, err = run_engine("show", str(root), "feature_group", "users")
    assert code == 0 and "not built yet" in out, out + err  # nothing of the failed group was published


def test_two_failures_are_both_reported_with_what_each_skipped(tmp_path: Path) -> None:
    spec = TINY_SPEC.replace("- {column: amount, between: [0, 1000]}", "- {column: amount, between: [0, 10]}")
    root = _project(tmp_path / "shop", spec)
    code, out, err = run_engine("apply", str(root))
    assert code == 4, out + err  # the first failure's exit code: orders' expectation (data check)
    assert "2 steps failed:" in err, err
    assert "feature_group:orders@1" in err and "feature_group:users@1" in err and "no users today" in err, err
    assert "skipped because of it: feature_group:user_spend@1" in err, err
    assert "specs/shop.yaml:" in err  # each failure positioned on its spec key


def test_the_json_report_marks_downstream_steps_skipped_naming_the_failed_one(tmp_path: Path) -> None:
    spec = TINY_SPEC.replace("- {column: amount, between: [0, 1000]}", "- {column: amount, between: [0, 10]}")
    root = _project(tmp_path / "shop", spec, users_py=FAILING_USERS.replace('raise ValueError("no users today")', 'return users[["user_id", "signup_year"]]'))
    code, steps, err = _statuses(root)
    assert code == 4, err
    assert steps["feature_group:orders@1"][0] == "failed"
    assert steps["feature_group:user_spend@1"] == ("skipped", "upstream failed: feature_group:orders@1")
    assert steps["feature_group:users@1"][0] == "ran"
