"""`plan` as a change report (issue 10, item 1): day-2 changes to an applied project, each with
its column-level diff, classification and downstream objects, in the text plan and in JSON.

Scenarios: change a window, edit a function, change only a comment, add a column, remove a
column, rename a feature, change a description, change a model's parameters, retrain to a worse
model; and a new version of a group compared with the version before it. Each also applies, and
checks the versions and aliases that result (item 2: a version a model was trained on keeps its
meaning, so a breaking change to it is refused until it is bumped).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import api
from engine.compiler.changes import compare, sql_changes, sql_edits
from tests.conftest import run_engine
from tests.support import applied_tips, edit_file, private_copy

SPEC = "specs/project.yaml"


@pytest.fixture(scope="module")
def applied(tmp_path_factory) -> Path:
    return applied_tips(tmp_path_factory, "day2")


@pytest.fixture
def project(applied, tmp_path) -> Path:
    """A copy of the applied project (workspace included) for one scenario."""
    return private_copy(applied, tmp_path)


def _edit(root: Path, old: str, new: str, rel: str = SPEC) -> None:
    edit_file(root, old, new, rel)


def _report(root: Path) -> dict[str, dict]:
    code, out, err = run_engine("plan", str(root), "--format", "json")
    assert code == 0, out + err
    return {c["object"]: c for c in json.loads(out)["report"]}


def _apply(root: Path) -> tuple[int, str]:
    code, out, err = run_engine("apply", str(root))
    return code, out + err


def _versions(root: Path) -> dict[str, object]:
    """The newest version of each group, of the view and of the model, and the model's aliases."""
    from engine.session import reading
    from engine.state import metadata
    from engine.state.workspace import Workspace

    out: dict[str, object] = {g["name"]: g["version"] for g in api.list_feature_groups(root)}
    with reading(Workspace.for_project(root)) as stores:
        out["tips"] = max(r["version"] for r in metadata.feature_view_versions(stores.backend.catalog) if r["name"] == "tips")
    models = [m for m in api.list_models(root) if m["name"] == "tip_model"]
    out["tip_model"] = max(m["version"] for m in models)
    out["aliases"] = {a: m["version"] for m in models for a in m["aliases"]}
    return out


FIRST = {"drivers": 1, "trips": 1, "driver_activity": 1, "tips": 1, "tip_model": 1, "aliases": {"production": 1}}


def _bump(root: Path, name: str) -> None:
    _edit(root, f"  {name}:\n", f"  {name}:\n    version: 2\n")


def _text(root: Path) -> str:
    code, out, err = run_engine("plan", str(root))
    assert code in (0, 3), out + err
    return out


def test_a_first_plan_and_an_unchanged_project_report_nothing(applied) -> None:
    assert _report(applied) == {}
    assert "Changes since the last apply" not in _text(applied)


def test_changing_a_window_is_breaking_and_names_the_parameter_and_what_it_affects(project) -> None:
    _edit(project, "{column: distance_km, function: mean, window: 7d, name: distance_mean_7d}", "{column: distance_km, function: mean, window: 14d, name: distance_mean_7d}")
    change = _report(project)["feature_group:driver_activity@1"]
    assert change["classification"] == "breaking"
    assert {"path": "transform.aggregations[distance_mean_7d].window", "from": "7d", "to": "14d"} in change["parameters"]
    assert change["columns"] == {"added": [], "removed": [], "retyped": []}  # same columns, new meaning
    assert change["downstream"][:2] == ["feature_view:tips@1", "model:tip_model"]
    text = _text(project)
    assert "  feature_group:driver_activity@1  [breaking]" in text
    assert "      ~ transform.aggregations[distance_mean_7d].window: 7d -> 14d" in text
    assert "      affects: feature_view:tips@1, model:tip_model" in text
    # tip_model@1 was trained on driver_activity@1 (through tips@1): both need a new version.
    assert "Breaking changes (2)" in text and "Bump feature_groups.driver_activity.version to 2" in text and "Bump feature_views.tips.version to 2" in text
    code, out = _apply(project)
    assert code == 3 and _versions(project) == FIRST, out
    _bump(project, "driver_activity")
    _bump(project, "tips")
    code, out = _apply(project)
    assert code == 0, out
    assert _versions(project) == {**FIRST, "driver_activity": 2, "tips": 2, "tip_model": 2, "aliases": {"production": 2}}


def test_editing_a_function_is_a_breaking_change_of_the_view_that_uses_it(project) -> None:
    _edit(project, "return ts.dt.hour", "return (ts.dt.hour + 1) % 24", rel="tips_features/time.py")
    report = _report(project)
    assert report["feature_view:tips@1"]["classification"] == "breaking"
    assert report["feature_view:tips@1"]["code"] == ["tips_features.time:hour_of_day"]
    assert "model:tip_model" in report["feature_view:tips@1"]["downstream"]
    assert [k for k in report if k.startswith("feature_group")] == []
    code, out = _apply(project)
    assert code == 3 and "feature_view:tips@1: breaking change to a version model:tip_model@1 was trained on (~ code of tips_features.time:hour_of_day)" in out, out
    _bump(project, "tips")
    code, out = _apply(project)
    assert code == 0, out
    assert _versions(project) == {**FIRST, "tips": 2, "tip_model": 2, "aliases": {"production": 2}}


def test_only_a_comment_or_formatting_is_no_change(project) -> None:
    _edit(project, "def hour_of_day(ts):", "def hour_of_day(ts):  # the hour, UTC", rel="tips_features/time.py")
    _edit(project, "sql: SELECT trip_id, driver_id, requested_at, distance_km, tipped FROM trips_raw", "sql: SELECT trip_id,   driver_id, requested_at, distance_km, tipped  FROM trips_raw")
    assert _report(project) == {}
    assert "No changes." in _text(project)
    code, out = _apply(project)
    assert code == 0 and "No changes." in out and _versions(project) == FIRST, out


def test_adding_a_column_is_non_breaking_with_its_expression(project) -> None:
    _edit(project, "SELECT driver_id, rating, years FROM drivers_raw", "SELECT driver_id, rating, years, rating * years AS seniority FROM drivers_raw")
    report = _report(project)
    group = report["feature_group:drivers@1"]
    assert group["classification"] == "non-breaking"
    assert group["columns"]["added"] == [{"name": "seniority", "type": None}]  # CSV columns are not typed statically
    assert group["expressions"] == [{"column": "column seniority", "from": "(none)", "to": "rating * years AS seniority"}]
    view = report["feature_view:tips@1"]  # the join now brings driver_seniority
    assert view["columns"]["added"] == [{"name": "driver_seniority", "type": None}] and view["classification"] == "non-breaking"
    # Non-breaking: the versions keep their number and gain the column; the model retrains on it.
    code, out = _apply(project)
    assert code == 0, out
    assert _versions(project) == {**FIRST, "tip_model": 2, "aliases": {"production": 2}}
    assert "driver_seniority" in api.read_feature_view(project, "tips").columns


def test_removing_a_column_is_breaking_and_blocked_until_a_bump(project) -> None:
    _edit(project, "SELECT driver_id, rating, years FROM drivers_raw", "SELECT driver_id, rating FROM drivers_raw")
    code, out, err = run_engine("plan", str(project), "--format", "json")
    assert code == 0, out + err
    plan = json.loads(out)
    change = {c["object"]: c for c in plan["report"]}["feature_group:drivers@1"]
    assert change["classification"] == "breaking" and change["columns"]["removed"] == [{"name": "years", "type": None}]
    assert any("Bump feature_groups.drivers.version to 2" in b for b in plan["breaking"])
    # Bumped, the new version is compared with version 1.
    _edit(project, "  drivers:\n    primary_key: [driver_id]", "  drivers:\n    version: 2\n    primary_key: [driver_id]")
    report = _report(project)
    bumped = report["feature_group:drivers@2 (from @1)"]
    assert bumped["classification"] == "breaking" and bumped["columns"]["removed"] == [{"name": "years", "type": None}]
    assert report["feature_view:tips@1"]["columns"]["removed"] == [{"name": "driver_years", "type": None}]
    # ... and tips@1, which model:tip_model@1 was trained on, needs one with it.
    code, out = _apply(project)
    assert code == 3 and "Bump feature_views.tips.version to 2" in out, out
    _bump(project, "tips")
    code, out = _apply(project)
    assert code == 0, out
    assert _versions(project) == {**FIRST, "drivers": 2, "tips": 2, "tip_model": 2, "aliases": {"production": 2}}
    assert "driver_years" in api.read_feature_view(project, "tips", version=1).columns


def test_renaming_a_feature_is_a_removal_and_an_addition(project) -> None:
    _edit(project, "SELECT driver_id, rating, years FROM drivers_raw", "SELECT driver_id, rating AS score, years FROM drivers_raw")
    change = _report(project)["feature_group:drivers@1"]
    assert change["classification"] == "breaking"
    assert change["columns"]["removed"] == [{"name": "rating", "type": None}] and change["columns"]["added"] == [{"name": "score", "type": None}]
    assert {"column": "column score", "from": "(none)", "to": "rating AS score"} in change["expressions"]
    code, out = _apply(project)
    assert code == 3 and "Bump feature_groups.drivers.version to 2" in out and "Bump feature_views.tips.version to 2" in out, out
    assert _versions(project) == FIRST


def test_a_description_is_metadata_only_and_nothing_runs(project) -> None:
    _edit(project, "description: One row per trip; the spine of the feature view (label tipped).", "description: Every trip, once.")
    code, out, err = run_engine("plan", str(project), "--format", "json")
    plan = json.loads(out)
    assert plan["changes"] == 0
    change = {c["object"]: c for c in plan["report"]}["feature_group:trips@1"]
    assert change["classification"] == "metadata-only" and change["metadata"] == ["description"]
    code, out = _apply(project)
    assert code == 0 and "No changes." in out and _versions(project) == FIRST, out


def test_a_model_parameter_change_is_breaking_for_the_model_only(project) -> None:
    _edit(project, "params: {n_estimators: 50, max_depth: 3}", "params: {n_estimators: 5, max_depth: 3}")
    report = _report(project)
    assert list(report) == ["model:tip_model"]
    assert report["model:tip_model"]["parameters"] == [{"path": "params.n_estimators", "from": 50, "to": 5}], report["model:tip_model"]
    assert report["model:tip_model"]["classification"] == "breaking"
    assert "inference:march" in report["model:tip_model"]["downstream"]
    code, out = _apply(project)  # a new model version; the view and groups are as they were
    assert code == 0, out
    assert _versions(project) == {**FIRST, "tip_model": 2, "aliases": {"production": 2}}


def test_retraining_to_a_worse_model_keeps_a_gated_alias_on_the_better_version(project) -> None:
    _edit(project, "aliases: [production]", "aliases:\n      production: {when: roc_auc >= current}\n      candidate:")
    _edit(project, "params: {n_estimators: 50, max_depth: 3}", "params: {n_estimators: 1, max_depth: 1}")
    report = _report(project)
    assert report["model:tip_model"]["classification"] == "breaking"
    assert {"path": "params.n_estimators", "from": 50, "to": 1} in report["model:tip_model"]["parameters"]
    code, out = _apply(project)
    assert code == 0, out
    auc = {m["version"]: m["metrics"]["test"]["roc_auc"] for m in api.list_models(project) if m["name"] == "tip_model"}
    assert auc[2] < auc[1]  # one stump is worse than fifty trees of depth 3 on this data
    assert _versions(project) == {**FIRST, "tip_model": 2, "aliases": {"production": 1, "candidate": 2}}
    assert f"alias 'production' stays on model:tip_model@1: test roc_auc {auc[2]:.4g} < model:tip_model@1's {auc[1]:.4g}" in out


# --- units -------------------------------------------------------------------------------------------


def test_sql_changes_compare_expressions_by_name_and_clauses() -> None:
    old = "SELECT a, b + 1 AS c FROM t WHERE x > 1"
    new = "SELECT a, b + 2 AS c, d FROM t WHERE x > 2 GROUP BY a, c, d"
    changes = sql_changes(old, new, {"d"})
    assert ("column c", "b + 1 AS c", "b + 2 AS c") in changes
    assert ("column d", "(none)", "d") in changes
    assert ("WHERE", "WHERE x > 1", "WHERE x > 2") in changes
    assert any(c[0] == "GROUP BY" for c in changes)
    assert sql_changes(old, old, set()) == []


def test_compare_classifies_additions_expectations_and_metadata() -> None:
    base = {"columns": {"a": "BIGINT"}, "definition": {"expectations": []}, "code": {}, "description": "x", "tags": []}
    assert compare("k", base, dict(base)) is None
    more = {**base, "columns": {"a": "BIGINT", "b": "DOUBLE"}}
    assert compare("k", base, more).classification == "non-breaking"
    checked = {**base, "definition": {"expectations": [{"column": "a", "not_null": True}]}}
    assert compare("k", base, checked).classification == "non-breaking"
    retyped = {**base, "columns": {"a": "VARCHAR"}}
    assert compare("k", base, retyped).retyped == (("a", "BIGINT", "VARCHAR"),)
    assert compare("k", base, retyped).classification == "breaking"
    assert compare("k", base, {**base, "tags": ["fraud"]}).classification == "metadata-only"


def test_sql_edits_are_the_leaf_level_edit_script_of_sqlglot_diff() -> None:
    assert sql_edits("avg(x) FILTER (WHERE t > 7) AS m", "avg(x) FILTER (WHERE t > 14) AS m") == ["- 7", "+ 14"]
    assert sql_edits("b + 1 AS c", "b * 2 + z AS c") == ["- 1", "+ z", "+ 2"]
    assert sql_edits("WHERE x > 1", "WHERE x > 2 AND y IS NULL") == ["- 1", "+ 2", "+ y", "+ NULL"]
    assert sql_edits("FROM t", "FROM u JOIN v ON u.a = v.a")[:3] == ["- t", "+ u", "+ v"]
    assert sql_edits("a AS b", "a AS b") == []
    assert sql_edits("SELECT (", "a") == []  # unreadable alone: no script
