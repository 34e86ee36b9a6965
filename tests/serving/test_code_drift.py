"""A model version records the code of the on-demand functions it was trained with (issue 10,
item 3; issue 14, item 2); `predict`, `serve` and batch scoring refuse to run it with other code
on disk (exit 3, naming the functions and the version) unless --allow-code-drift. Comments and
formatting are not other code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine import api
from engine.cli.main import cli
from engine.errors import PlanError
from tests.conftest import run_engine
from tests.serving.conftest import TIME_PY

ROW = json.dumps([{"driver_id": 3, "zone": "north", "distance_km": 12.5, "requested_at": "2024-02-20T10:00:00Z"}])
EDITED = TIME_PY.replace("return ts.dt.hour", "return (ts.dt.hour + 1) % 24")
RESTYLED = '"""Ride time features."""\n' + TIME_PY.replace("def hour_of_day(ts):", "def hour_of_day(ts):  # hour, UTC\n    \"\"\"The hour.\"\"\"\n")


def _predict(root: Path, *extra: str):
    return CliRunner().invoke(cli, ["predict", str(root), "tip_api", *extra], input=ROW, catch_exceptions=False)


def _model_ref(root: Path) -> str:
    return f"model:tips_xgb@{api.show_model(root, 'tips_xgb')['manifest']['version']}"


def test_the_manifest_records_each_on_demand_function_and_its_code(rides) -> None:
    manifest = api.show_model(rides, "tips_xgb")["manifest"]
    code = manifest["function_code"]
    assert sorted(code) == ["hour_of_day", "long_trip"]
    assert code["hour_of_day"]["python"] == "ride_features.time:hour_of_day" and len(code["hour_of_day"]["code"]) == 16


def test_comments_and_docstrings_are_not_drift(rides_copy) -> None:
    (rides_copy / "ride_features" / "time.py").write_text(RESTYLED)
    result = _predict(rides_copy)
    assert result.exit_code == 0, result.output


def test_predict_refuses_other_code_naming_functions_and_version_and_the_flag_overrides(rides_copy) -> None:
    ref = _model_ref(rides_copy)
    (rides_copy / "ride_features" / "time.py").write_text(EDITED)
    result = _predict(rides_copy)
    assert result.exit_code == 3, result.output
    assert f"{ref} was trained with other code than is on disk now" in result.output
    assert "function:hour_of_day (ride_features.time:hour_of_day)" in result.output and "--allow-code-drift" in result.output
    allowed = _predict(rides_copy, "--allow-code-drift")
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.output)["predictions"][0]["prediction"] is not None


def test_serve_refuses_to_start_on_other_code(rides_copy) -> None:
    from engine.serving.http import create_app
    from engine.state.workspace import Workspace

    (rides_copy / "ride_features" / "time.py").write_text(EDITED)
    checked = api.validate(rides_copy)
    root = Workspace.for_project(checked.project.root).root
    with pytest.raises(PlanError, match="inference:tip_api: model:tips_xgb@"):
        create_app(checked, root)
    create_app(checked, root, allow_code_drift=True)  # starts


def test_batch_scoring_with_a_pinned_version_refuses_other_code(rides_copy) -> None:
    """After a code change, apply refuses until the view gets a new version (model versions were
    trained on it); a job pinned to the old model version would score it with features it was not
    trained on: exit 3, nothing written, unless --allow-code-drift."""
    ref = _model_ref(rides_copy)
    spec = rides_copy / "specs" / "rides.yaml"
    spec.write_text(spec.read_text() + f"  pinned: {{mode: batch, model: '{ref.removeprefix('model:')}', range: ['2024-01-01', '2025-01-01'], output: {{table: pinned_scores}}}}\n")
    code, out, err = run_engine("apply", str(rides_copy))
    assert code == 0, out + err
    (rides_copy / "ride_features" / "time.py").write_text(EDITED)
    # The whole project: the edited code changes tips@1, which model versions were trained on.
    code, out, err = run_engine("apply", str(rides_copy))
    assert code == 3, out + err
    assert "feature_view:tips@1: breaking change to a version" in err and "~ code of ride_features.time:hour_of_day" in err, err
    assert "Bump feature_views.tips.version to 2" in err
    # Bumped, the models retrain on tips@2; the job pinned to a version trained on tips@1 would
    # build tips@1 (kept, and read back from its recorded definition) with the code on disk.
    spec.write_text(spec.read_text().replace("  tips:\n", "  tips:\n    version: 2\n", 1))
    code, out, err = run_engine("apply", str(rides_copy))
    assert code == 3, out + err
    assert f"inference:pinned: {ref} was trained with other code" in err and "function:hour_of_day" in err, err
    code, out, err = run_engine("apply", str(rides_copy), "--allow-code-drift")
    assert code == 0, out + err
