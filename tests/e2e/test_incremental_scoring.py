"""Incremental batch scoring (issue 8: "training data and stream/batch scoring process only new
spine rows where the spec allows it"). When an apply appends new spine rows to the feature view
(an incremental view) and the job's model version and range are those its table already holds,
only the new rows are scored and appended. Anything else (a rebuilt view, another model version,
a table written since by a backfill) scores the whole range. The oracle: a forced full scoring of
the range in the same workspace (same model version), whose predictions must be the same rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from engine import api
from tests.e2e.test_incremental import add_file, project, reasons

# New view rows train a new version of clf (its identity includes the view's rows); the job pins
# clf@1, so it keeps scoring with the version its table holds.
SCORING = """
models:
  clf:
    feature_view: fv
    estimator: sklearn.linear_model.LogisticRegression
    split: {by: time, test_from: "2026-01-01 01:00:00"}
inference:
  scores: {mode: batch, model: clf@1, range: ["2026-01-01", "2026-01-02"], output: {path: out/scores.parquet}}
"""

FIRST = [(1, 1, 0, 1.0, 0), (2, 2, 10, 2.0, 1), (3, 1, 20, 3.0, 1), (4, 2, 30, 0.5, 0), (5, 3, 70, 2.5, 1), (6, 3, 80, 0.2, 0)]
STAMPS = ["scored_at", "run_id"]


def scoring_project(root: Path, model: str = "clf@1") -> Path:
    project(root)
    spec = root / "specs" / "inc.yaml"
    spec.write_text(spec.read_text() + SCORING.replace("clf@1", model), encoding="utf-8")
    return root


def predictions(root: Path) -> pd.DataFrame:
    frame = pd.read_parquet(root / "out" / "scores.parquet").drop(columns=STAMPS)
    return frame.sort_values("event_id").reset_index(drop=True)


def rescored(root: Path, ws: Path) -> pd.DataFrame:
    """The oracle: the job's inputs rebuilt and its whole range scored again (forced), with the
    same model version, in the same workspace."""
    ran = reasons(api.apply(root, workspace=ws, select=("scores",), force=True))
    assert ran["scores"][0] == "forced" and "clf" not in ran, ran
    return predictions(root)


def table_files(ws: Path) -> set[str]:
    return {str(p) for p in (ws / "tables" / "predictions").rglob("*.parquet")}


def test_new_spine_rows_are_scored_alone_and_appended(tmp_path):
    root = scoring_project(tmp_path / "inc")
    ws = tmp_path / "ws"
    add_file(root, "b0.csv", FIRST)
    first = reasons(api.apply(root, workspace=ws))
    assert first["scores"] == ("new", 6), first
    before, stored = predictions(root), table_files(ws)
    add_file(root, "b1.csv", [(7, 1, 300, 4.0, 0), (8, 3, 310, 5.0, 1), (9, 2, 1500, 1.0, 0)])  # 9: the next day, out of range
    ran = reasons(api.apply(root, workspace=ws))
    assert ran["fv"] == ("new data (incremental)", 3), ran
    assert ran["clf"][0] == "upstream changed", ran  # clf@2 is trained; the job scores with clf@1
    assert ran["scores"] == ("new data (incremental)", 2), ran
    got = predictions(root)
    assert list(got["event_id"]) == [1, 2, 3, 4, 5, 6, 7, 8]
    pd.testing.assert_frame_equal(got[got["event_id"] <= 6].reset_index(drop=True), before)  # the stored rows stand
    assert stored <= table_files(ws)  # and their files were not rewritten
    assert set(got["model_version"]) == {1}
    pd.testing.assert_frame_equal(got, rescored(root, ws))


def test_new_rows_outside_the_range_score_nothing_and_change_nothing(tmp_path):
    root = scoring_project(tmp_path / "inc")
    ws = tmp_path / "ws"
    add_file(root, "b0.csv", FIRST)
    api.apply(root, workspace=ws)
    before = pd.read_parquet(root / "out" / "scores.parquet")
    add_file(root, "b1.csv", [(7, 1, 1500, 4.0, 0)])
    ran = reasons(api.apply(root, workspace=ws))
    assert ran["scores"] == ("new data (incremental)", 0), ran
    pd.testing.assert_frame_equal(pd.read_parquet(root / "out" / "scores.parquet"), before)  # stamps included


def test_a_rebuilt_view_rescores_the_whole_range(tmp_path):
    root = scoring_project(tmp_path / "inc")
    ws = tmp_path / "ws"
    add_file(root, "b0.csv", FIRST)
    api.apply(root, workspace=ws)
    # A row at minute 75 is as early as the stored spine row at minute 80: the view is rebuilt.
    add_file(root, "b1.csv", [(7, 3, 75, 4.0, 1), (8, 1, 300, 1.0, 0)])
    ran = reasons(api.apply(root, workspace=ws))
    assert ran["fv"][0] != "new data (incremental)", ran
    assert ran["scores"] == ("upstream changed", 8), ran
    got = predictions(root)
    pd.testing.assert_frame_equal(got, rescored(root, ws))


def test_another_model_version_rescores_the_whole_range(tmp_path):
    """A job on the latest version: the new rows train clf@2, and every row is scored with it."""
    root = scoring_project(tmp_path / "inc", model="clf")
    ws = tmp_path / "ws"
    add_file(root, "b0.csv", FIRST)
    api.apply(root, workspace=ws)
    add_file(root, "b1.csv", [(7, 1, 300, 4.0, 1)])
    ran = reasons(api.apply(root, workspace=ws))
    assert ran["fv"] == ("new data (incremental)", 1), ran
    assert ran["scores"] == ("upstream changed", 7), ran
    got = predictions(root)
    assert set(got["model_version"]) == {2}
    pd.testing.assert_frame_equal(got, rescored(root, ws))


def test_a_backfill_in_between_makes_the_next_run_score_the_whole_range(tmp_path):
    """A backfill writes the table (another range, perhaps other columns): the record of what the
    table holds is dropped, so the next run does not append to rows it cannot vouch for."""
    root = scoring_project(tmp_path / "inc")
    ws = tmp_path / "ws"
    add_file(root, "b0.csv", FIRST)
    api.apply(root, workspace=ws)
    backfilled = reasons(api.apply(root, workspace=ws, select=("scores",), backfill=("2026-01-01T00:00:00", "2026-01-01T00:30:00")))
    assert backfilled["scores"] == ("backfill", 3), backfilled
    add_file(root, "b1.csv", [(7, 1, 300, 4.0, 0)])
    ran = reasons(api.apply(root, workspace=ws))
    assert ran["fv"] == ("new data (incremental)", 1), ran
    assert ran["scores"] == ("upstream changed", 7), ran
    got = predictions(root)
    pd.testing.assert_frame_equal(got, rescored(root, ws))


def test_after_the_blake3_upgrade_scoring_still_reads_the_published_view(tmp_path, monkeypatch):
    # A workspace an engine from before BLAKE3 wrote (as in test_incremental's upgrade test): the
    # view's table records a fingerprint over SHA-256 file digests. Scoring while the view is
    # unchanged still proves the table current and reads it, rather than building the view again.
    from engine.compiler import fingerprint
    from engine.serving import batch
    from engine.state import digests

    root = scoring_project(tmp_path / "inc")
    ws = tmp_path / "ws"
    add_file(root, "b0.csv", FIRST)
    with monkeypatch.context() as old_engine:
        old_engine.setattr(fingerprint, "_content_digest", fingerprint._sha256)
        api.apply(root, workspace=ws)
    (ws / "digests.json").unlink(missing_ok=True)  # another cache format: read as empty
    monkeypatch.setattr(digests, "_LOADED", {})
    before = predictions(root)
    found = []
    published = batch.published_view
    monkeypatch.setattr(batch, "published_view", lambda ctx, fv: found.append(published(ctx, fv)) or found[-1])
    spec = root / "specs" / "inc.yaml"  # the job changes (a wider range); its view does not
    spec.write_text(spec.read_text().replace('"2026-01-02"]', '"2026-01-03"]'), encoding="utf-8")
    ran = {name: why for name, why in reasons(api.apply(root, workspace=ws)).items() if why[0] != "unchanged"}
    assert ran == {"scores": ("changed", 6)}, ran
    assert found and None not in found  # the published table was proven current, and read
    pd.testing.assert_frame_equal(predictions(root), before)
