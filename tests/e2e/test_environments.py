"""Environments (issue 10, item 4): `engine apply --env dev` builds only what changed, beside prod
and sharing its unchanged tables; `engine diff dev` compares the two; `engine promote dev` makes
dev's state prod's without recomputing anything. Asserted by step statuses (what ran where), by
prod's files and rows staying as they were until the promotion, and by a prod apply after it that
has nothing to do. Refusals: an environment behind prod, one that does not reflect the project on
disk, unknown and invalid names (nothing switched)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine import api
from tests.conftest import run_engine
from tests.support import applied_tips, edit_file, private_copy

SPEC = "specs/project.yaml"
WINDOW_7D = "{column: distance_km, function: mean, window: 7d, name: distance_mean_7d}"
WINDOW_14D = "{column: distance_km, function: mean, window: 14d, name: distance_mean_7d}"


def _edit(root: Path, old: str, new: str) -> None:
    edit_file(root, old, new)


def _json(*args: str, code: int = 0) -> dict:
    rc, out, err = run_engine(*args, "--format", "json")
    assert rc == code, out + err
    return json.loads(out)


def _statuses(doc: dict) -> dict[str, str]:
    return {s["id"]: s["status"] for s in doc["steps"]}


def _files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def applied(tmp_path_factory) -> Path:
    return applied_tips(tmp_path_factory, "envs")


@pytest.fixture
def project(applied, tmp_path) -> Path:
    return private_copy(applied, tmp_path)


def test_a_dev_to_prod_cycle_recomputes_nothing_that_did_not_change(project) -> None:
    prod_tables = _files(project / ".engine" / "tables")
    prod_output = (project / "out" / "march_scores.csv").read_bytes()
    # A breaking change to what tip_model@1 was trained on: new versions of the group and view.
    _edit(project, WINDOW_7D, WINDOW_14D)
    _edit(project, "  driver_activity:\n", "  driver_activity:\n    version: 2\n")
    _edit(project, "  tips:\n    spine", "  tips:\n    version: 2\n    spine")

    dev = _json("apply", str(project), "--env", "dev")
    assert _statuses(dev) == {
        "source:drivers_raw": "skipped", "source:trips_raw": "skipped",
        "feature_group:drivers@1": "skipped", "feature_group:trips@1": "skipped",
        "feature_group:driver_activity@2": "ran", "feature_view:tips@2": "ran", "model:tip_model": "ran", "inference:march": "ran",
    }
    assert any("environment 'dev' created from prod" in n for n in dev["notices"])
    # Prod is as it was: not a file of its tables touched, its output file and model list the same.
    assert _files(project / ".engine" / "tables") == prod_tables
    assert (project / "out" / "march_scores.csv").read_bytes() == prod_output
    assert [m["version"] for m in api.list_models(project)] == [1]
    # The unchanged tables are shared with dev, not copied (the same files, hard-linked).
    trips = next((project / ".engine" / "tables" / "offline").glob("trips__v1/**/*.parquet"))
    twin = project / ".engine" / "envs" / "dev" / "tables" / trips.relative_to(project / ".engine" / "tables")
    assert os.path.samefile(trips, twin)

    plan = _json("plan", str(project), "--env", "dev")  # against dev's own state: nothing left to build
    assert plan["changes"] == 0, plan
    rc, text, err = run_engine("diff", str(project), "dev")
    assert rc == 0, text + err
    assert "Environments dev (a) and prod (b): 4 of " in text and "  model:tip_model@2  [only in dev]" in text
    assert "      aliases: (none) -> production" in text  # tip_model@1 (a: dev, b: prod): production is on @2 in dev, on @1 in prod
    diff = _json("diff", str(project), "dev")
    changed = {o["object"]: o["status"] for o in diff["objects"] if o["status"] != "same"}
    assert changed == {
        "feature_group:driver_activity@2": "only in dev", "feature_view:tips@2": "only in dev",
        "model:tip_model@1": "changed", "model:tip_model@2": "only in dev",  # production moved to @2 in dev
    }
    assert "feature_group:trips@1" not in changed

    promoted = _json("promote", str(project), "dev")
    assert "model:tip_model@2" in promoted["models"] and "offline.driver_activity__v2" in promoted["tables"]
    assert promoted["files"] == ["out/march_scores.csv"]
    # Prod now has dev's state: nothing to run, the new versions readable, the new model served.
    again = _json("apply", str(project))
    assert again["steps"] == [] or set(_statuses(again).values()) == {"skipped"}, again
    rc, out, err = run_engine("apply", str(project))
    assert rc == 0 and "No changes." in out, out + err
    assert [m["version"] for m in api.list_models(project)] == [1, 2]
    assert len(api.read_feature_group(project, "driver_activity", version=2)) == 600
    assert (project / "out" / "march_scores.csv").read_bytes() == (project / ".engine" / "envs" / "dev" / "outputs" / "out" / "march_scores.csv").read_bytes()
    state = api.online_state(project)
    assert state.model("tip_model", "production").model.ref == "model:tip_model@2"
    assert state.model("tip_model", "1").service.feature_view.version == 1  # the older model stays servable
    assert _json("diff", str(project), "dev")["changed"] == 0


def test_promoting_an_environment_behind_prod_is_refused_until_it_is_rebased(project) -> None:
    _edit(project, "params: {n_estimators: 50, max_depth: 3}", "params: {n_estimators: 20, max_depth: 3}")
    assert _statuses(_json("apply", str(project), "--env", "dev"))["model:tip_model"] == "ran"
    # Prod publishes meanwhile (the same change, applied there directly).
    rc, out, err = run_engine("apply", str(project))
    assert rc == 0, out + err
    before = _files(project / ".engine" / "tables"), api.list_models(project)
    rc, out, err = run_engine("promote", str(project), "dev")
    assert rc == 3, out + err
    assert "environment 'dev' is behind prod" in err and "`engine apply --env dev` rebases it" in err and "Nothing was switched." in err
    assert (_files(project / ".engine" / "tables"), api.list_models(project)) == before
    # Rebased, dev is prod again: nothing of its own to build, and promoting switches nothing.
    rc, out, err = run_engine("apply", str(project), "--env", "dev")
    assert rc == 0 and "environment 'dev' rebased on prod" in out + err and "No changes." in out, out + err
    assert _json("promote", str(project), "dev")["tables"] == []


def test_an_environment_that_does_not_reflect_the_project_is_not_promoted(project) -> None:
    _edit(project, "params: {n_estimators: 50, max_depth: 3}", "params: {n_estimators: 20, max_depth: 3}")
    _json("apply", str(project), "--env", "dev")
    _edit(project, "params: {n_estimators: 20, max_depth: 3}", "params: {n_estimators: 10, max_depth: 3}")
    rc, out, err = run_engine("promote", str(project), "dev")
    assert rc == 3, out + err
    assert "environment 'dev' does not reflect the project on disk: model:tip_model" in err and "`engine apply --env dev` first" in err
    assert [m["version"] for m in api.list_models(project)] == [1]


@pytest.mark.parametrize(("args", "message"), [
    (("promote", "nope"), "no environment 'nope': create it with `engine apply --env nope`"),
    (("apply", "--env", "Dev!"), "invalid environment name 'Dev!'"),
    (("apply", "--env", "prod"), "'prod' is the default environment: apply without --env"),
    (("diff", "nope"), "no environment 'nope' with anything applied"),
])
def test_unknown_and_invalid_environments_are_usage_errors(project, args, message) -> None:
    command, *rest = args
    rc, out, err = run_engine(command, str(project), *rest)
    assert rc == 2 and message in err, out + err


def test_a_promotion_killed_mid_commit_switches_nothing_and_a_retry_completes(project) -> None:
    """G1 for promote: SIGKILL after prod's tables got their new Delta commits, before the catalog
    transaction that records them (and prod's new metadata) committed."""
    _edit(project, "params: {n_estimators: 50, max_depth: 3}", "params: {n_estimators: 20, max_depth: 3}")
    _json("apply", str(project), "--env", "dev")
    models = api.list_models(project)
    scores = api.read_predictions(project, "march")
    output = (project / "out" / "march_scores.csv").read_bytes()
    rc, _, _ = run_engine("promote", str(project), "dev", env={"ENGINE_FAULT_AT": "mid_promote"})
    assert rc == -9
    assert api.list_models(project) == models  # the catalog kept prod's state
    assert api.read_predictions(project, "march").equals(scores)
    assert (project / "out" / "march_scores.csv").read_bytes() == output
    assert not list(project.rglob("*.promote-*")) and not list((project / "out").glob(".*"))
    promoted = _json("promote", str(project), "dev")
    assert promoted["tables"] == ["predictions.march_scores"] and promoted["models"] == []  # linked by the killed attempt
    assert [m["version"] for m in api.list_models(project)] == [1, 2]
    rc, out, err = run_engine("apply", str(project))
    assert rc == 0 and "No changes." in out, out + err
