"""on_missing per online job (issue 11, item 7): an entity without stored features gets no
prediction by default (null), or a prediction from imputed features (predict), or an error row
(error). Declared in the spec; refused on a batch or stream job (exit 3, positioned)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from engine.cli.main import cli
from tests.conftest import run_engine

ROWS = json.dumps([
    {"driver_id": 3, "zone": "north", "distance_km": 12.5, "requested_at": "2024-02-20T10:00:00Z"},
    {"driver_id": 4242, "zone": "west", "distance_km": 1.0, "requested_at": "2024-02-20T10:00:00Z"},
])
JOB = "tip_api: {mode: online, model: tips_xgb@production, keys: [driver_id, zone], request: [distance_km, requested_at]}"


def _with(root, option: str) -> None:
    spec = root / "specs" / "rides.yaml"
    original = root / "specs" / ".rides.yaml.orig"
    if not original.exists():
        original.write_text(spec.read_text())
    text = original.read_text()
    assert JOB in text
    spec.write_text(text.replace(JOB, JOB[:-1] + f", {option}}}"))


def _predict(root):
    result = CliRunner().invoke(cli, ["predict", str(root), "tip_api"], input=ROWS, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["predictions"]


def test_the_default_gives_an_unknown_entity_no_prediction(rides) -> None:
    known, unknown = _predict(rides)
    assert known["status"] == "ok" and known["prediction"] in (0, 1) and set(known["probabilities"]) == {"0", "1"}
    assert unknown == {"status": "missing", "prediction": None, "missing": ["drivers", "driver_stats", "zone_demand"]}


def test_predict_and_error_as_declared_in_the_spec(rides_copy) -> None:
    _with(rides_copy, "on_missing: predict")
    _, unknown = _predict(rides_copy)
    assert unknown["status"] == "missing" and unknown["prediction"] in (0, 1) and unknown["probabilities"]
    _with(rides_copy, "on_missing: error")
    _, unknown = _predict(rides_copy)
    assert unknown["status"] == "error" and unknown["prediction"] is None
    assert unknown["error"].startswith("no stored features for this row's keys in drivers, driver_stats, zone_demand")


def test_on_missing_on_a_batch_job_or_an_unknown_value_is_exit_3_positioned(rides_copy) -> None:
    spec = rides_copy / "specs" / "rides.yaml"
    base = spec.read_text()
    spec.write_text(base + "  scores: {mode: batch, model: tips_xgb, range: ['2024-01-01', '2025-01-01'], output: {table: s}, on_missing: predict}\n")
    code, out, err = run_engine("validate", str(rides_copy))
    assert code == 3 and "inference.scores.on_missing" in err and "online jobs only" in err, err
    spec.write_text(base.replace(JOB, JOB[:-1] + ", on_missing: skip}"))
    code, out, err = run_engine("validate", str(rides_copy))
    assert code == 3 and "inference.tip_api.on_missing" in err and "predict" in err, err


def test_a_batch_job_without_a_range_is_refused_at_validate_positioned(rides_copy) -> None:
    """Found by `engine validate`, before anything runs (it used to surface only when the job ran)."""
    spec = rides_copy / "specs" / "rides.yaml"
    spec.write_text(spec.read_text() + "  scores: {mode: batch, model: tips_xgb, output: {table: s}}\n")
    code, out, err = run_engine("validate", str(rides_copy))
    assert code == 3 and "specs/rides.yaml:" in err and "inference.scores: inference:scores is a batch job without a range" in err, err
    assert "range: [start, end)" in err
