"""Selecting what to run (issue 11, item 8): every object kind in --select and lineage (functions
and online jobs included), NAME+ for downstream, tag:TAG, --exclude, and the rule that keeps an
exclusion from recording stale work as up to date."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import api
from engine.compiler.steps import Action
from tests.conftest import run_engine
from tests.serving.conftest import make_project

ALL_STEPS = {
    "source:trips_raw", "source:drivers_raw", "source:zones_raw",
    "feature_group:trips@1", "feature_group:drivers@1", "feature_group:driver_stats@1", "feature_group:zone_demand@1",
    "feature_view:tips@1", "model:tips_xgb", "model:tips_logreg",
}  # fmt: skip


@pytest.fixture
def rides(tmp_path: Path) -> Path:
    root = make_project(tmp_path / "rides")
    spec = root / "specs/rides.yaml"
    text = spec.read_text()
    text = text.replace("  driver_stats:\n    primary_key: [driver_id]", "  driver_stats:\n    tags: [fraud, windows]\n    primary_key: [driver_id]")
    text = text.replace("  tips_xgb:\n    feature_view: tips", "  tips_xgb:\n    tags: [fraud]\n    feature_view: tips")
    spec.write_text(text)
    return root


def _planned(root: Path, **kwargs) -> set[str]:
    return {s.step.key for s in api.plan(root, **kwargs).steps}


def test_each_selector_form_picks_its_objects_and_what_they_need(rides: Path) -> None:
    upstream_of_view = {"source:trips_raw", "source:drivers_raw", "source:zones_raw", "feature_group:trips@1", "feature_group:drivers@1",
                        "feature_group:driver_stats@1", "feature_group:zone_demand@1", "feature_view:tips@1"}  # fmt: skip
    assert _planned(rides) == ALL_STEPS
    assert _planned(rides, select=("driver_stats",)) == {"source:trips_raw", "feature_group:trips@1", "feature_group:driver_stats@1"}
    assert _planned(rides, select=("+driver_stats",)) == _planned(rides, select=("feature_group:driver_stats@1",)) == _planned(rides, select=("driver_stats",))
    # NAME+: the object, everything downstream, and what those need.
    assert _planned(rides, select=("driver_stats+",)) == ALL_STEPS
    # A function: the views computing it (and what they need), not the models reading them.
    assert _planned(rides, select=("hour_of_day",)) == upstream_of_view
    assert _planned(rides, select=("function:hour_of_day+",)) == ALL_STEPS
    # An online job, which is served: the model and view it serves.
    assert _planned(rides, select=("tip_api",)) == upstream_of_view | {"model:tips_xgb"}
    # Tags: every tagged object (a group and a model here) and what they need.
    assert _planned(rides, select=("tag:fraud",)) == upstream_of_view | {"model:tips_xgb"}
    assert _planned(rides, select=("tag:windows",)) == {"source:trips_raw", "feature_group:trips@1", "feature_group:driver_stats@1"}


def test_unknown_selectors_are_usage_errors_with_the_known_names(rides: Path) -> None:
    rc, out, err = run_engine("plan", str(rides), "-s", "tag:frud")
    assert rc == 2, out + err
    assert "no object is tagged 'frud' (tags in the project: fraud, windows)" in err and "did you mean 'fraud'" in err
    rc, out, err = run_engine("plan", str(rides), "-x", "drivr_stats")
    assert rc == 2 and "--exclude: no object named 'drivr_stats'" in err and "driver_stats" in err, out + err


def test_tags_and_descriptions_are_not_part_of_any_fingerprint(rides: Path) -> None:
    api.apply(rides)
    spec = rides / "specs/rides.yaml"
    spec.write_text(spec.read_text().replace("tags: [fraud, windows]", "tags: [windows]\n    description: per-driver activity"))
    assert not api.plan(rides).has_changes


def test_an_excluded_step_with_changes_holds_back_what_reads_it_until_it_runs(rides: Path) -> None:
    api.apply(rides)
    trips = rides / "data/trips.csv"
    lines = trips.read_text().splitlines()
    trips.write_text("\n".join(lines[:-5]) + "\n")  # the source changed
    rc, out, err = run_engine("apply", str(rides), "-x", "trips", "--format", "json")
    assert rc == 0, err
    steps = {s["id"]: s for s in json.loads(out)["steps"]}
    assert steps["source:trips_raw"]["status"] == "ran"
    assert steps["feature_group:trips@1"]["status"] == "skipped" and steps["feature_group:trips@1"]["reason"] == "excluded (has changes)"
    for held in ("feature_group:driver_stats@1", "feature_view:tips@1", "model:tips_xgb", "model:tips_logreg"):
        assert steps[held]["status"] == "skipped" and steps[held]["reason"] == "upstream excluded", held
    assert steps["feature_group:drivers@1"]["reason"] == "unchanged"
    # Nothing was recorded as up to date: without --exclude, the held-back steps run.
    plan = api.plan(rides)
    assert {s.step.key for s in plan.steps if s.action is Action.RUN} == {"feature_group:trips@1", "feature_group:driver_stats@1", "feature_view:tips@1", "model:tips_xgb", "model:tips_logreg"}
    # Excluding an object without changes changes nothing.
    assert api.plan(rides, exclude=("drivers",)).to_run == plan.to_run
    # NAME+ excludes downstream too: here only the models stay out.
    assert {s.step.key for s in api.plan(rides, exclude=("tips_xgb", "tips_logreg")).to_run} == {"feature_group:trips@1", "feature_group:driver_stats@1", "feature_view:tips@1"}
    assert {s.step.key for s in api.plan(rides, exclude=("driver_stats+",)).to_run} == {"feature_group:trips@1"}


def test_lineage_shows_functions_and_online_jobs(rides: Path) -> None:
    rc, out, err = run_engine("lineage", str(rides), "hour_of_day", "--format", "json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["root"] == "function:hour_of_day"
    assert {"from": "function:hour_of_day", "to": "feature_view:tips@1"} in doc["edges"]
    assert {"from": "model:tips_xgb", "to": "inference:tip_api"} in doc["edges"]
    rc, out, err = run_engine("lineage", str(rides), "tip_api")
    assert rc == 0 and out.startswith("inference:tip_api\n  reads:") and "model:tips_xgb" in out, out + err
