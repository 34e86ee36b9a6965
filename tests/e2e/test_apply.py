"""End-to-end apply on a tiny generated project: storage semantics, idempotence, atomicity, exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from engine import api
from engine.errors import DataError, PlanError
from tests.conftest import check_golden, run_engine, write


def _utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_apply_builds_every_feature_group_and_second_apply_runs_nothing(tiny_project: Path):
    rc, out, err = run_engine("apply", str(tiny_project), "--format", "json")
    assert rc == 0, err
    result = json.loads(out)
    assert {s["id"]: s["status"] for s in result["steps"]} == {
        "source:orders_raw": "ran",
        "source:users_raw": "ran",
        "feature_group:orders@1": "ran",
        "feature_group:user_spend@1": "ran",
        "feature_group:users@1": "ran",
    }
    rc, out, err = run_engine("apply", str(tiny_project))
    assert rc == 0, err
    assert out.strip() == "No changes."
    rc, out, _ = run_engine("apply", str(tiny_project), "--format", "json")
    assert rc == 0 and json.loads(out)["status"] == "unchanged"
    assert all(s["status"] == "skipped" for s in json.loads(out)["steps"])


def test_naive_source_times_are_read_in_the_source_timezone_and_stored_utc(tiny_project: Path):
    api.apply(tiny_project)
    orders = api.read_feature_group(tiny_project, "orders")
    assert list(orders["order_id"]) == [1, 2, 3, 4, 5]
    # 2024-01-01 09:00 in New York is 14:00 UTC (DESIGN §3 Time).
    assert orders.loc[0, "ordered_at"] == _utc("2024-01-01 14:00")
    assert str(orders["ordered_at"].dt.tz) == "UTC"


def test_results_do_not_depend_on_the_machine_timezone(tiny_project: Path, tmp_path: Path):
    """F4/V18: the same apply under TZ=America/New_York gives identical tables."""
    other = tmp_path / "ws_ny"
    rc, _, err = run_engine("apply", str(tiny_project), "--workspace", str(other), env={"TZ": "America/New_York"})
    assert rc == 0, err
    api.apply(tiny_project)
    for name in ("orders", "user_spend", "users"):
        a = api.read_feature_group(tiny_project, name)
        b = api.read_feature_group(tiny_project, name, workspace=other)
        pd.testing.assert_frame_equal(a, b)


def test_window_aggregation_sees_no_later_rows(tiny_project: Path):
    api.apply(tiny_project)
    spend = api.read_feature_group(tiny_project, "user_spend")
    orders = api.read_feature_group(tiny_project, "orders")
    for _, row in spend.iterrows():
        window = orders[(orders.user_id == row.user_id) & (orders.ordered_at <= row.ordered_at) & (orders.ordered_at > row.ordered_at - pd.Timedelta("2D"))]
        assert row["amount_sum_2d"] == pytest.approx(window.amount.sum())
        assert row["orders_2d"] == len(window)


def test_online_table_holds_the_latest_row_per_key(tiny_project: Path):
    api.apply(tiny_project)
    offline = api.read_feature_group(tiny_project, "user_spend")
    online = api.read_feature_group(tiny_project, "user_spend", online=True)
    oracle = offline.sort_values("ordered_at").groupby("user_id", as_index=False).last()
    pd.testing.assert_frame_equal(online.reset_index(drop=True), oracle[online.columns].reset_index(drop=True), check_dtype=False)


def test_python_feature_group(tiny_project: Path):
    api.apply(tiny_project)
    users = api.read_feature_group(tiny_project, "users")
    assert users.set_index("user_id")["tenure_years"].to_dict() == {10: 5, 11: 3, 12: 1}


def test_changed_data_reruns_the_source_and_what_depends_on_it(tiny_project: Path):
    api.apply(tiny_project)
    with open(tiny_project / "data/orders.csv", "a") as fh:
        fh.write("6,11,9.0,2024-01-07 08:00:00\n")
    the_plan = api.plan(tiny_project)
    actions = {s.step.key: (s.action.value, s.reason.value) for s in the_plan.steps}
    assert actions["source:orders_raw"] == ("run", "data changed")
    assert actions["feature_group:orders@1"] == ("run", "upstream changed")
    assert actions["feature_group:user_spend@1"] == ("run", "upstream changed")
    assert actions["source:users_raw"] == ("skip", "unchanged")
    assert actions["feature_group:users@1"] == ("skip", "unchanged")
    api.apply(tiny_project)
    assert len(api.read_feature_group(tiny_project, "orders")) == 6


def test_reformatting_sql_and_editing_descriptions_change_nothing(tiny_project: Path):
    api.apply(tiny_project)
    spec = tiny_project / "specs/shop.yaml"
    text = spec.read_text()
    text = text.replace("SELECT order_id, user_id, CAST(amount AS DOUBLE) AS amount, ordered_at", "select order_id,\n        user_id,  cast(amount as double) as amount,   -- money\n        ordered_at")
    text = text.replace("  orders:\n", "  orders:\n    description: every order, one row each\n")
    spec.write_text(text)
    assert not api.plan(tiny_project).has_changes


def test_editing_a_feature_function_reruns_its_feature_group(tiny_project: Path):
    api.apply(tiny_project)
    py = tiny_project / "shop_features/users.py"
    py.write_text(py.read_text().replace("2024 -", "2025 -"))
    actions = {s.step.key: s.reason.value for s in api.plan(tiny_project).to_run}
    assert actions == {"feature_group:users@1": "changed"}


def test_failed_expectation_publishes_nothing_and_exits_4(tiny_project: Path):
    api.apply(tiny_project)
    before = api.read_feature_group(tiny_project, "orders")
    with open(tiny_project / "data/orders.csv", "a") as fh:
        fh.write("7,10,5000.0,2024-01-08 08:00:00\n")
    rc, out, err = run_engine("apply", str(tiny_project))
    assert rc == 4, err
    assert "expectation" in err and "amount between" in err and "1 of 6 rows" in err
    pd.testing.assert_frame_equal(api.read_feature_group(tiny_project, "orders"), before)


def test_null_primary_key_is_a_data_error(tiny_project: Path):
    """F1."""
    with open(tiny_project / "data/orders.csv", "a") as fh:
        fh.write(",10,5.0,2024-01-08 08:00:00\n")
    with pytest.raises(DataError, match="1 rows with a NULL in the primary key"):
        api.apply(tiny_project)


def test_duplicate_key_and_time_is_a_data_error_unless_dedupe_latest(tiny_project: Path):
    """F2."""
    with open(tiny_project / "data/orders.csv", "a") as fh:
        fh.write("5,12,21.0,2024-01-06 12:30:00\n")
    with pytest.raises(DataError, match="share a primary key and event time"):
        api.apply(tiny_project)
    spec = tiny_project / "specs/shop.yaml"
    spec.write_text(spec.read_text().replace("    event_time: ordered_at\n    sql:", "    event_time: ordered_at\n    dedupe: latest\n    sql:"))
    api.apply(tiny_project)
    orders = api.read_feature_group(tiny_project, "orders")
    assert orders.set_index("order_id").loc[5, "amount"] == 21.0  # the last row in input order wins


def test_breaking_change_needs_a_new_version_and_old_version_stays_readable(tiny_project: Path):
    """F9/F10 and DESIGN §3 Versions."""
    api.apply(tiny_project)
    spec = tiny_project / "specs/shop.yaml"
    spec.write_text(spec.read_text().replace("CAST(amount AS DOUBLE) AS amount", "CAST(amount AS INTEGER) AS amount"))
    with pytest.raises(PlanError, match="column 'amount' changed type from DOUBLE to INTEGER.*Bump feature_groups.orders.version to 2"):
        api.apply(tiny_project)
    spec.write_text(spec.read_text().replace("  orders:\n", "  orders:\n    version: 2\n"))
    # The downstream aggregation now sums integers: that breaks its version too, and says so.
    with pytest.raises(PlanError, match="feature_group:user_spend@1: .*column 'amount_sum_2d' changed type"):
        api.apply(tiny_project)
    spec.write_text(spec.read_text().replace("  user_spend:\n", "  user_spend:\n    version: 2\n"))
    api.apply(tiny_project)
    v1 = api.read_feature_group(tiny_project, "orders", version=1)
    v2 = api.read_feature_group(tiny_project, "orders", version=2)
    assert str(v1["amount"].dtype) == "float64" and str(v2["amount"].dtype) == "int32"


def test_adding_a_column_is_not_breaking(tiny_project: Path):
    api.apply(tiny_project)
    spec = tiny_project / "specs/shop.yaml"
    spec.write_text(spec.read_text().replace("AS amount, ordered_at", "AS amount, amount > 5 AS big, ordered_at"))
    api.apply(tiny_project)
    orders = api.read_feature_group(tiny_project, "orders")
    assert "big" in orders.columns and orders["big"].tolist() == [False, True, False, False, True]


def test_python_transform_error_exits_5_and_names_the_user_file(tiny_project: Path):
    py = tiny_project / "shop_features/users.py"
    py.write_text(py.read_text().replace('out["tenure_years"] = 2024 - out["signup_year"]', 'out["tenure_years"] = out["no_such_column"]'))
    rc, _, err = run_engine("apply", str(tiny_project))
    assert rc == 5, err
    assert "feature_group:users@1: shop_features.users:user_features raised KeyError" in err
    assert "(shop_features/users.py:6)" in err
    assert "Traceback" not in err


def test_select_runs_only_the_object_and_what_it_needs(tiny_project: Path):
    rc, out, err = run_engine("apply", str(tiny_project), "--select", "users", "--format", "json")
    assert rc == 0, err
    assert [s["id"] for s in json.loads(out)["steps"]] == ["source:users_raw", "feature_group:users@1"]
    rc, _, err = run_engine("apply", str(tiny_project), "--select", "userz")
    assert rc == 2 and "did you mean 'users'" in err


def test_plan_text_is_stable(tiny_project: Path):
    rc, out, err = run_engine("plan", str(tiny_project))
    assert rc == 0, err
    check_golden("plan/tiny_new.txt", out)
    api.apply(tiny_project)
    rc, out, _ = run_engine("plan", str(tiny_project), "--format", "json")
    plan = json.loads(out)
    assert plan["changes"] == 0
    assert {s["id"]: (s["action"], s["reason"]) for s in plan["steps"]}["feature_group:orders@1"] == ("skip", "unchanged")


def test_concurrent_apply_is_refused_with_exit_75(tiny_project: Path):
    """C1: the second apply exits 75 naming the holder."""
    from engine.state.workspace import ProjectLock, Workspace

    with ProjectLock(Workspace.for_project(tiny_project)):
        rc, _, err = run_engine("apply", str(tiny_project))
    assert rc == 75
    assert "project locked by pid" in err


def test_show_feature_group_prints_statistics(tiny_project: Path):
    api.apply(tiny_project)
    rc, out, err = run_engine("show", "feature_group", "orders", "--path", str(tiny_project), "--format", "json")
    assert rc == 0, err
    info = json.loads(out)
    assert info["id"] == "feature_group:orders@1" and info["row_count"] == 5
    assert info["stats"]["amount"]["mean"] == pytest.approx(7.3)
    assert info["stats"]["amount"]["nulls"] == 0
    rc, out, _ = run_engine("show", "feature_group", "orders", "--path", str(tiny_project))
    assert rc == 0 and "amount" in out and "7.3" in out


def test_edited_feature_function_runs_new_code_in_the_same_process(tiny_project: Path, tmp_path: Path):
    """A long-lived process (the Python API) must not run a cached copy of edited user code, nor
    another project's package of the same name."""
    api.apply(tiny_project)
    py = tiny_project / "shop_features/users.py"
    py.write_text(py.read_text().replace("2024 -", "2030 -"))
    api.apply(tiny_project)
    assert api.read_feature_group(tiny_project, "users").set_index("user_id")["tenure_years"].to_dict() == {10: 11, 11: 9, 12: 7}
    other = tmp_path / "other"
    shutil.copytree(tiny_project, other, ignore=shutil.ignore_patterns(".engine"))
    (other / "shop_features/users.py").write_text(py.read_text().replace("2030 -", "2000 -"))
    api.apply(other)
    assert api.read_feature_group(other, "users")["tenure_years"].tolist() == [-19, -21, -23]


def test_jsonl_and_declared_csv_types_are_read_as_declared(tmp_path: Path):
    """Sources: JSON lines, and CSV with declared column types overriding the sniffer."""
    root = tmp_path / "p"
    write(root, "specs/s.yaml", """
        spec_version: 1
        project: p
        sources:
          events_raw: {format: jsonl, path: data/events.jsonl, timezone: Europe/Berlin}
          codes_raw: {format: csv, path: data/codes.csv, columns: {code: VARCHAR, weight: DOUBLE}}
        feature_groups:
          events:
            primary_key: [id]
            event_time: at
            sql: SELECT id, at, code FROM events_raw
          codes:
            primary_key: [code]
            sql: SELECT code, weight FROM codes_raw
        """)
    write(root, "data/events.jsonl", '{"id": 1, "at": "2024-06-01 12:00:00", "code": "007"}\n{"id": 2, "at": "2024-06-02 12:00:00", "code": "010"}\n')
    write(root, "data/codes.csv", "code,weight\n007,1\n010,2\n")
    api.apply(root)
    events = api.read_feature_group(root, "events")
    assert events["at"].tolist() == [_utc("2024-06-01 10:00"), _utc("2024-06-02 10:00")]  # Berlin summer time
    codes = api.read_feature_group(root, "codes")
    assert codes["code"].tolist() == ["007", "010"]  # declared VARCHAR keeps leading zeros
    assert str(codes["weight"].dtype) == "float64"
