"""Issue 13 items 8 and 9: `engine show` covers every object kind; its tables fit the terminal, carry
no trailing spaces, and write structured values as YAML, never as Python reprs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_engine

ONE = [
    ("source", "trips_raw", {"format": "csv", "path": "data/trips.csv", "files": ["data/trips.csv"]}),
    ("feature_group", "driver_activity", {"from": "trips", "primary_key": ["driver_id"]}),
    ("function", "hour_of_day", {"python": "tips_features.time:hour_of_day", "inputs": ["requested_at"], "returns": "int64"}),
    ("feature_view", "tips", {"spine": "trips", "label": ["tipped"], "on_demand": ["hour_of_day"]}),
    ("model", "tip_model", {"estimator": "xgboost.XGBClassifier", "aliases": ["production"]}),
    ("inference", "march", {"mode": "batch", "model": "tip_model@production", "output": "table march_scores, out/march_scores.csv"}),
    ("inference", "api", {"mode": "online", "keys": ["driver_id"], "endpoint": "POST /jobs/api/predict (engine serve)"}),
]


@pytest.mark.parametrize(("kind", "name", "expected"), ONE, ids=[f"{k}:{n}" for k, n, _ in ONE])
def test_show_one_object_of_every_kind(tips: Path, kind: str, name: str, expected: dict):
    rc, out, err = run_engine("show", kind, name, "--format", "json", cwd=tips)
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["definition"].items() >= expected.items(), doc["definition"]
    assert doc["state"], doc
    rc, text, err = run_engine("show", kind, name, cwd=tips)
    assert rc == 0, err
    assert f"{kind}:{name}" in text.splitlines()[0] and "state:" in text


def test_show_states_and_lineage_come_from_the_workspace_and_the_dag(tips: Path):
    rc, out, _ = run_engine("show", "feature_view", "tips", "--format", "json", cwd=tips)
    doc = json.loads(out)
    assert doc["state"] == "up to date"
    assert doc["read_by"] == ["inference:api", "inference:march", "model:tip_model"]  # the online job computes vectors from it
    assert set(doc["reads"]) == {"feature_group:trips@1", "feature_group:drivers@1", "feature_group:driver_activity@1", "function:hour_of_day"}
    rc, out, _ = run_engine("show", "function", "hour_of_day", "--format", "json", cwd=tips)
    assert json.loads(out)["read_by"] == ["feature_view:tips@1"]


@pytest.mark.parametrize("kind", ["sources", "functions", "feature_views", "inference"])
def test_show_lists_every_object_of_a_kind(tips: Path, kind: str):
    rc, out, err = run_engine("show", kind, "--format", "json", cwd=tips)
    assert rc == 0, err
    names = [d["name"] for d in json.loads(out)]
    expected = {"sources": ["trips_raw", "drivers_raw"], "functions": ["hour_of_day"], "feature_views": ["tips"], "inference": ["march", "api"]}[kind]
    assert names == expected
    rc, out, err = run_engine("show", kind, cwd=tips)
    assert rc == 0 and all(n in out for n in expected), err


def test_show_without_kind_lists_every_object_and_its_state(tips: Path):
    rc, out, err = run_engine("show", "--format", "json", cwd=tips)
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["project"] == "tips"
    assert {o["kind"] for o in doc["objects"]} == {"source", "feature_group", "function", "feature_view", "model", "inference"}
    assert {o["state"] for o in doc["objects"] if o["kind"] in ("source", "feature_group", "model")} == {"up to date"}


def test_show_tables_fit_the_terminal_without_trailing_spaces(tips: Path):
    for args in (("feature_group", "trips"), ("model", "tip_model"), ("models",), ("feature_groups",), (), ("sources",)):
        rc, out, err = run_engine("show", *args, cwd=tips, env={"COLUMNS": "80"})
        assert rc == 0, err
        for line in out.splitlines():
            assert len(line) <= 80, (args, line)
            assert line == line.rstrip(), (args, line)


def test_show_writes_structured_values_as_yaml_not_python_reprs(tips: Path):
    rc, out, err = run_engine("show", "model", "tip_model", cwd=tips)
    assert rc == 0, err
    assert "{'" not in out and "['" not in out and "True" not in out, out
    assert "split {by: time, seed: 0, test_from: '2024-03-01'}: test 63" in out, out
    assert "params:       {max_depth: 3, n_estimators: 50}" in out, out


def test_show_job_is_the_inference_kind(tips: Path):
    """Issue 11 item 8: `engine show job NAME` (and `jobs`) show inference jobs."""
    rc, out, err = run_engine("show", "job", "march", "--format", "json", cwd=tips)
    assert rc == 0, err
    assert json.loads(out)["id"] == "inference:march"
    rc, out, err = run_engine("show", "jobs", "--format", "json", cwd=tips)
    assert rc == 0, err
    assert [d["name"] for d in json.loads(out)] == ["march", "api"]
