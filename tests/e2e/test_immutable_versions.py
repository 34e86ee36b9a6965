"""Published versions are immutable (issue 10, item 2; DESIGN §3 Versions): a group or view version
a model version was trained on never changes meaning. A breaking change to one is refused before
anything runs, with every bump it needs found in one pass (the group, and each view in use that
reads it); a version no model uses yet may still be redefined in place. Once bumped, the older
model versions stay servable: online (HTTP, from the view definition and group versions the
snapshot keeps) and in batch (the view rebuilt as it was, over the group versions it read), with
the same predictions as before the change. An oracle: the predictions recorded before it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import api
from engine.scaffold import init_project
from tests.conftest import run_engine
from tests.support import edit_file, private_copy

SPEC = "specs/project.yaml"
WINDOW_7D = "{column: distance_km, function: mean, window: 7d, name: distance_mean_7d}"
WINDOW_14D = "{column: distance_km, function: mean, window: 14d, name: distance_mean_7d}"
PINNED = """  march_v1:
    mode: batch
    model: tip_model@1
    range: ["2024-03-01", "2024-04-01"]
    output: {table: march_v1}
"""
SPARE = """  spare:
    primary_key: [driver_id]
    sql: SELECT driver_id, rating FROM drivers_raw
"""
REQUESTS = [{"driver_id": d, "distance_km": km, "requested_at": f"2024-03-{day:02d}T10:00:00Z"} for d, km, day in [(1, 3.0, 5), (2, 12.5, 9), (3, 7.25, 20), (5, 1.0, 28), (7, 30.0, 15)]]


def _edit(root: Path, old: str, new: str) -> None:
    edit_file(root, old, new)


def _apply(root: Path, *extra: str) -> tuple[int, str, str]:
    return run_engine("apply", str(root), *extra)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The tips project applied once (tip_model@1 trained on tips@1), with a batch job pinned to
    tip_model@1 and a group no view reads."""
    root = tmp_path_factory.mktemp("immutable") / "tips"
    init_project(root, "tips")
    _edit(root, "\ninference:\n", "\ninference:\n" + PINNED)
    _edit(root, "\nfunctions:\n", SPARE + "\nfunctions:\n")
    code, out, err = _apply(root)
    assert code == 0, out + err
    return root


@pytest.fixture
def project(trained, tmp_path) -> Path:
    return private_copy(trained, tmp_path)


def _online(root: Path, version: str) -> list[dict]:
    """tip_model@version's answers over HTTP (the real app under uvicorn)."""
    from tests.serving.conftest import LiveServer
    from tests.serving.test_http import call

    with LiveServer(root) as server:
        status, _, body = call(server.port, "POST", f"/models/tip_model/predict?version={version}", {"rows": REQUESTS})
    assert status == 200, body
    assert body["model"] == f"model:tip_model@{version}"
    return body["predictions"]


def _batch(root: Path) -> list[tuple]:
    frame = api.read_predictions(root, "march_v1")
    columns = [c for c in frame.columns if c not in ("scored_at", "run_id")]
    return sorted(map(tuple, frame[columns].astype(str).itertuples(index=False)))


def test_a_breaking_change_to_a_version_in_use_is_refused_with_every_bump_in_one_pass(project) -> None:
    _edit(project, WINDOW_7D, WINDOW_14D)
    code, out, err = run_engine("plan", str(project), "--format", "json")
    assert code == 0, out + err
    breaking = json.loads(out)["breaking"]
    assert len(breaking) == 2, breaking
    group, view = breaking
    assert group.startswith("feature_group:driver_activity@1: breaking change to a version model:tip_model@1 was trained on")
    assert "window: 7d -> 14d" in group and "Bump feature_groups.driver_activity.version to 2" in group
    assert view.startswith("feature_view:tips@1: reads feature_group:driver_activity, which needs a new version")
    assert "Bump feature_views.tips.version to 2" in view
    before = (project / ".engine").stat().st_mtime_ns, sorted(p.name for p in (project / ".engine" / "online").iterdir())
    code, out, err = _apply(project)
    assert code == 3, out + err
    assert "2 breaking changes: nothing was run" in err
    assert sorted(p.name for p in (project / ".engine" / "online").iterdir()) == before[1]  # nothing published
    assert "window: 7d -> 14d" not in json.dumps(api.show_feature_group(project, "driver_activity"))


def test_a_version_no_model_uses_is_redefined_in_place(project) -> None:
    _edit(project, "sql: SELECT driver_id, rating FROM drivers_raw\n", "sql: SELECT driver_id, rating * 2 AS rating FROM drivers_raw\n")
    code, out, err = run_engine("plan", str(project), "--format", "json")
    assert code == 0, out + err
    plan = json.loads(out)
    assert plan["breaking"] == []
    assert {c["object"]: c["classification"] for c in plan["report"]} == {"feature_group:spare@1": "breaking"}
    edit = plan["report"][0]["expressions"][0]
    assert (edit["column"], edit["edits"]) == ("column rating", ["+ 2"])  # sqlglot's edit script, leaves only
    code, out, err = _apply(project)
    assert code == 0, out + err
    doubled = api.read_feature_group(project, "spare")["rating"].tolist()
    ratings = api.read_feature_group(project, "drivers").set_index("driver_id")["rating"]
    assert sorted(doubled) == sorted((ratings * 2).tolist())


def test_after_the_bump_older_model_versions_stay_servable_online_and_in_batch(project) -> None:
    online_v1 = _online(project, "1")
    batch_v1 = _batch(project)
    _edit(project, WINDOW_7D, WINDOW_14D)
    _edit(project, "  driver_activity:\n", "  driver_activity:\n    version: 2\n")
    _edit(project, "  tips:\n    spine", "  tips:\n    version: 2\n    spine")
    code, out, err = run_engine("plan", str(project), "--format", "json")
    assert code == 0, out + err
    plan = json.loads(out)
    assert plan["breaking"] == []
    report = {c["object"]: c for c in plan["report"]}
    assert report["feature_view:tips@2 (from @1)"]["parameters"] == [{"path": "joined.driver_activity", "from": 1, "to": 2}]
    code, out, err = _apply(project)
    assert code == 0, out + err
    assert "model:tip_model@2" in err

    # tip_model@1 is answered from tips@1 and driver_activity@1, exactly as before the change.
    assert _online(project, "1") == online_v1
    assert _online(project, "2") != online_v1  # the 14-day window: other features, another model
    from engine.store.online import online_dir, read_current
    from engine.state.workspace import Workspace

    _, current = read_current(online_dir(Workspace.for_project(project)))
    manifest = json.loads((current / "manifest.json").read_text())
    assert set(manifest["archived_feature_groups"]) == {"driver_activity@1"}
    assert set(manifest["feature_views"]) == {"tips@1", "tips@2"}
    assert manifest["feature_views"]["tips@1"]["joined"] == {"trips": 1, "drivers": 1, "driver_activity": 1}

    # Its vectors come from driver_activity@1's online rows (no request time: no ttl), not @2's.
    state = api.online_state(project)
    v1, v2 = state.archived_view("tips", 1), state.view("tips")
    latest = {n: api.read_feature_group(project, "driver_activity", version=n).sort_values("requested_at").groupby("driver_id").last()["distance_mean_7d"] for n in (1, 2)}
    drivers = sorted(latest[1].index)
    assert [v1.vector({"driver_id": d}, {"distance_km": 1.0}).values["distance_mean_7d"] for d in drivers] == [latest[1][d] for d in drivers]
    assert [v2.vector({"driver_id": d}, {"distance_km": 1.0}).values["distance_mean_7d"] for d in drivers] == [latest[2][d] for d in drivers]
    assert latest[1].tolist() != latest[2].tolist()

    # The pinned batch job rescores with tip_model@1 over tips@1 rebuilt: the same predictions.
    code, out, err = _apply(project, "--select", "inference:march_v1", "--force")
    assert code == 0, out + err
    assert _batch(project) == batch_v1

    # Both view versions stay readable; the older keeps its 7-day means.
    old, new = api.read_feature_view(project, "tips", version=1), api.read_feature_view(project, "tips")
    assert len(old) == len(new) and not old["distance_mean_7d"].equals(new["distance_mean_7d"])


def test_versioning_auto_takes_each_needed_version_itself_and_records_it(project) -> None:
    _edit(project, "project: tips\n", "project: tips\nversioning: auto\n")
    code, out, err = _apply(project)
    assert code == 0 and "No changes." in out, out + err  # the key alone changes nothing
    _edit(project, WINDOW_7D, WINDOW_14D)
    code, out, err = run_engine("plan", str(project), "--format", "json")
    assert code == 0, out + err
    plan = json.loads(out)
    assert plan["breaking"] == []
    assert [v.split(":", 2)[:2] for v in plan["versions"]] == [["feature_group", "driver_activity@1 -> @2"], ["feature_view", "tips@1 -> @2"]]
    assert not (project / "engine-versions.json").exists()  # plan writes nothing
    code, out, err = _apply(project)
    assert code == 0, out + err
    assert "versioning: auto: new version feature_group:driver_activity@1 -> @2" in err and "model:tip_model@2" in err
    assert json.loads((project / "engine-versions.json").read_text()) == {
        "feature_groups": {"driver_activity": 2, "drivers": 1, "spare": 1, "trips": 1}, "feature_views": {"tips": 2},
    }
    # Every later verb reads the recorded versions: validate, plan, the older model still served.
    code, out, err = run_engine("validate", str(project))
    assert code == 0, out + err
    code, out, err = _apply(project)
    assert code == 0 and "No changes." in out, out + err
    assert _online(project, "1") and api.online_state(project).model("tip_model", "1").service.feature_view.version == 1
    # The next breaking change to the new version (a model was trained on it) takes @3.
    _edit(project, WINDOW_14D, WINDOW_7D.replace("7d, name", "3d, name"))
    code, out, err = _apply(project)
    assert code == 0, out + err
    assert json.loads((project / "engine-versions.json").read_text())["feature_groups"]["driver_activity"] == 3


def test_an_unreadable_versions_file_is_a_positioned_spec_error(project) -> None:
    _edit(project, "project: tips\n", "project: tips\nversioning: auto\n")
    (project / "engine-versions.json").write_text('{"feature_groups": {"trips": 1,}}\n')
    code, out, err = run_engine("validate", str(project))
    assert code == 3, out + err
    assert "engine-versions.json:1:" in err and "not valid JSON" in err and "delete it to start again from the declared versions" in err
    (project / "engine-versions.json").write_text('{"feature_groups": {"trips": 0}, "feature_views": {}}\n')
    code, out, err = run_engine("validate", str(project))
    assert code == 3 and "feature_groups.trips: expected a version number ≥ 1, got 0" in err, out + err
