"""Reading what batch and stream jobs scored (issue 11, item 8): ``api.read_predictions`` and
``engine show inference NAME``, against the rows the jobs wrote (their output files as oracle)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from engine import api
from engine.errors import UsageError
from tests.conftest import run_engine
from tests.inference.conftest import make_project


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> Path:
    root = make_project(tmp_path_factory.mktemp("predictions") / "rides")
    spec = root / "specs/rides.yaml"
    spec.write_text(spec.read_text().replace("live: {mode: stream, model: tips_logreg, source: trips_raw}",
                                             "live: {mode: stream, model: tips_logreg, source: trips_raw, output: {path: out/live.csv}}"))
    api.apply(root)
    return root


def test_a_batch_jobs_predictions_are_its_table_and_match_its_file(scored: Path) -> None:
    frame = api.read_predictions(scored, "january")
    from_file = pd.read_parquet(scored / "out/january.parquet")
    assert len(frame) == len(from_file) > 0
    assert sorted(frame["trip_id"]) == sorted(from_file["trip_id"])
    assert set(frame["model"]) == {"tips_xgb"} and set(frame["model_version"]) == {1}
    run = frame["run_id"].iloc[0]
    assert len(api.read_predictions(scored, "january", run_id=run)) == len(frame)
    assert api.read_predictions(scored, "january", run_id="no-such-run").empty


def test_show_inference_summarises_what_a_stream_job_scored(scored: Path) -> None:
    frame = api.read_predictions(scored, "live")
    assert len(frame) == len(pd.read_csv(scored / "out/live.csv")) > 0
    rc, out, err = run_engine("show", str(scored), "inference", "live", "--format", "json")
    assert rc == 0, err
    doc = json.loads(out)["predictions"]
    assert doc["rows"] == len(frame) and doc["runs"] == frame["run_id"].nunique() == 1
    assert doc["model_versions"] == ["model:tips_logreg@1"] and doc["table"] == "predictions.live"
    rc, text, err = run_engine("show", str(scored), "inference", "live")
    assert rc == 0 and f"predictions: {len(frame):,} rows in predictions.live from 1 run (model:tips_logreg@1)" in text, text + err


def test_unknown_online_and_unscored_jobs_say_why(scored: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown inference job 'januray' .*did you mean 'january'"):
        api.read_predictions(scored, "januray")
    fresh = make_project(tmp_path / "fresh")
    api.apply(fresh, select=("tips",))
    with pytest.raises(UsageError, match="inference:january has not scored anything yet"):
        api.read_predictions(fresh, "january")
    rc, text, err = run_engine("show", str(fresh), "inference", "january")
    assert rc == 0 and "nothing scored yet: run `engine apply`" in text, text + err
