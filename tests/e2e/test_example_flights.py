"""The flights example end to end, as a user runs it: one apply builds the feature groups,
trains and registers both models and scores December; a second apply runs nothing; new files
dropped into the source folder are scored exactly once by the streaming job."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine import api
from tests.conftest import REPO, run_engine

EXAMPLE = REPO / "examples" / "flights"


@pytest.fixture(scope="module")
def flights(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("example") / "flights"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".engine", "out", "__pycache__", ".pytest_cache"))
    rc, out, err = run_engine("apply", str(root), "--format", "json", timeout=900)
    assert rc == 0, err
    root.joinpath("first_apply.json").write_text(out)
    return root


def test_first_apply_runs_every_step(flights: Path):
    result = json.loads((flights / "first_apply.json").read_text())
    statuses = {s["id"]: s["status"] for s in result["steps"]}
    assert set(statuses.values()) == {"ran"}, statuses
    assert "feature_view:delays@1" in statuses and "model:delay_xgb" in statuses
    assert "inference:december" in statuses and "inference:live" in statuses


def test_second_apply_runs_nothing(flights: Path):
    rc, out, err = run_engine("apply", str(flights))
    assert rc == 0, err
    assert out.strip() == "No changes."


def test_models_are_registered_with_sensible_metrics(flights: Path):
    models = {m["name"]: m for m in api.list_models(flights)}
    assert set(models) == {"delay_xgb", "delay_baseline"}
    for m in models.values():
        assert 0.65 < m["metrics"]["test"]["roc_auc"] < 0.9
    assert models["delay_xgb"]["aliases"] == ["production"]


def test_no_label_or_outcome_is_a_feature(flights: Path):
    features = api.show_model(flights, "delay_xgb")["manifest"]["feature_columns"]
    assert not {"is_delayed", "arr_delay", "is_cancelled", "is_diverted", "landed_at"} & set(features)


def test_december_is_scored_to_a_table_and_a_file(flights: Path):
    import pandas as pd

    scores = pd.read_parquet(flights / "out/december_scores.parquet")
    assert len(scores) > 20_000
    assert scores["sched_dep_ts"].min() >= pd.Timestamp("2013-12-01", tz="UTC")
    assert scores["sched_dep_ts"].max() < pd.Timestamp("2014-01-01", tz="UTC")
    assert set(scores["model_version"]) == {1}
    assert scores["proba_True"].between(0, 1).all()


def test_new_files_are_scored_exactly_once_by_the_stream(flights: Path):
    for f in (flights / "data/new_flights").glob("*.parquet"):
        shutil.copy(f, flights / "data/flights" / f.name)
    rc, out, err = run_engine("apply", str(flights), "--select", "live", "--format", "json", timeout=600)
    assert rc == 0, err
    steps = {s["id"]: s for s in json.loads(out)["steps"]}
    assert steps["inference:live"]["rows"] == 6_064
    assert "model:delay_xgb" not in steps  # scoring never retrains
    rc, out, err = run_engine("apply", str(flights), "--select", "live", "--format", "json", timeout=600)
    assert rc == 0 and json.loads(out)["status"] == "unchanged"
