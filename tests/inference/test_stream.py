"""Streaming inference on a real workspace: exactly-once scoring by the spine key, idempotent
re-runs (I7), the watermark committed with the rows, and a crash inside the transaction that
publishes nothing (G1). Each test uses its own job name and predictions table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine import api
from engine.compiler.semantics import CheckedProject
from engine.serving import stream
from engine.serving.stream import score_stream
from tests.inference.conftest import (
    apply_models, has_table, job, make_project, query, read_side, read_table, scoring_context, trips_frame,
)


@pytest.fixture(scope="module")
def rides(tmp_path_factory) -> Path:
    root = make_project(tmp_path_factory.mktemp("stream") / "rides")
    apply_models(root)
    return root


@pytest.fixture(scope="module")
def checked(rides: Path) -> CheckedProject:
    return api.validate(rides)


def _job(checked: CheckedProject, name: str):
    return job(checked, "live", name=name, output_table=f"{name}_scores")


def _run(rides: Path, checked: CheckedProject, name: str, run_id: str):
    with scoring_context(rides, checked, run_id=run_id) as ctx:
        return score_stream(ctx, _job(checked, name))


def _watermark(rides: Path, name: str) -> tuple | None:
    """The job's row in the catalog (``last_event_time`` as the ISO UTC text stored), or None."""
    with read_side(rides) as stores:
        if not stores.backend.catalog.has_table("_engine", "stream_watermarks"):
            return None
        rows = stores.backend.catalog.query(
            "SELECT runs, rows_scored, last_run_id, last_event_time FROM _engine.stream_watermarks WHERE job = ?", [name]
        )
    return tuple(rows[0]) if rows else None


def _distinct_and_total(rides: Path, table: str) -> tuple[int, int]:
    relation = f'"predictions"."{table}"'
    return query(rides, f"SELECT count(DISTINCT trip_id), count(*) FROM {relation}", bind=(relation,))[0]


def _has(rides: Path, table: str) -> bool:
    return has_table(rides, "predictions", table)


def _crash(name: str) -> None:
    if name == "stream_before_commit":
        raise RuntimeError("simulated crash before COMMIT")


def test_first_run_scores_every_spine_row_then_nothing(rides: Path, checked: CheckedProject):
    """I7: the second run with nothing new scores 0 rows and changes nothing (table, watermark)."""
    spine = api.read_feature_group(rides, "trips")
    first = _run(rides, checked, "live_a", "20240301T000000Z-run00001")
    assert first.rows == len(spine) and first.table == '"predictions"."live_a_scores"'
    assert first.model_ref == "model:tips_logreg@1"
    table = read_table(rides, first.table)
    assert sorted(table.trip_id) == sorted(spine.trip_id)
    assert _distinct_and_total(rides, "live_a_scores") == (len(spine), len(spine))
    mark = _watermark(rides, "live_a")
    assert mark[:3] == (1, len(spine), "20240301T000000Z-run00001")
    assert pd.Timestamp(mark[3]) == spine.requested_at.max()

    second = _run(rides, checked, "live_a", "20240302T000000Z-run00002")
    assert second.rows == 0
    pd.testing.assert_frame_equal(read_table(rides, first.table), table)
    assert _watermark(rides, "live_a") == mark


def test_stream_predictions_equal_predict_frame(rides: Path, checked: CheckedProject):
    from engine.ids import ModelRef
    from engine.serving.scoring import load_model
    from engine.session import reading
    from engine.state.workspace import Workspace

    outcome = _run(rides, checked, "live_p", "20240301T000000Z-run00003")
    view = api.read_feature_view(rides, "tips").sort_values("trip_id").reset_index(drop=True)
    ws = Workspace.for_project(rides)
    with reading(ws) as stores:
        expected = load_model(stores.registry, ModelRef("tips_logreg")).predict_frame(view)
    got = read_table(rides, outcome.table).sort_values("trip_id").reset_index(drop=True)
    assert got.trip_id.tolist() == view.trip_id.tolist()
    np.testing.assert_allclose(got.proba_True.to_numpy(), expected.proba_True.to_numpy(), rtol=0, atol=1e-12)
    assert got.prediction.tolist() == expected.prediction.tolist()


def test_g1_crash_before_commit_appends_nothing_and_next_run_scores(rides: Path, checked: CheckedProject, monkeypatch):
    """G1: an exception inside the transaction rolls back rows and watermark together."""
    monkeypatch.setattr(stream, "fault_point", _crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(rides, checked, "live_b", "20240301T000000Z-crashed1")
    assert not _has(rides, "live_b_scores")
    assert _watermark(rides, "live_b") is None
    monkeypatch.undo()
    outcome = _run(rides, checked, "live_b", "20240301T000000Z-recover1")
    assert outcome.rows == len(api.read_feature_group(rides, "trips"))
    assert _watermark(rides, "live_b")[:2] == (1, outcome.rows)


def test_stream_output_file_mirrors_the_table(rides: Path, checked: CheckedProject):
    import dataclasses

    with scoring_context(rides, checked) as ctx:
        outcome = score_stream(ctx, dataclasses.replace(_job(checked, "live_f"), output_path="out/live.parquet"))
    assert outcome.path == "out/live.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(rides / outcome.path), read_table(rides, outcome.table), check_dtype=False)


def test_new_spine_rows_are_scored_exactly_once(rides: Path, checked: CheckedProject, monkeypatch):
    """New rows appended to the source and re-applied through the feature pipeline are scored once:
    a crashed incremental run changes nothing, the next one scores exactly the new rows, the one
    after scores none; keys never repeat. (Runs last: it grows the project's data.)"""
    first = _run(rides, checked, "live_c", "20240301T000000Z-run00010")
    mark = _watermark(rides, "live_c")
    new = trips_frame(range(200_001, 200_041), seed=9, days=(46, 50))
    csv = rides / "data/trips.csv"
    csv.write_text(csv.read_text() + new.to_csv(index=False, header=False))
    api.apply(rides, select=("tips",))  # re-ingest, rebuild the feature groups and the view

    monkeypatch.setattr(stream, "fault_point", _crash)
    with pytest.raises(RuntimeError):
        _run(rides, checked, "live_c", "20240302T000000Z-crashed2")
    assert _watermark(rides, "live_c") == mark
    assert _distinct_and_total(rides, "live_c_scores") == (first.rows, first.rows)
    monkeypatch.undo()

    second = _run(rides, checked, "live_c", "20240302T000000Z-run00011")
    assert second.rows == len(new)
    table = read_table(rides, second.table)
    assert set(table[table.run_id == "20240302T000000Z-run00011"].trip_id) == set(new.trip_id)
    assert _distinct_and_total(rides, "live_c_scores") == (first.rows + len(new), first.rows + len(new))
    runs, scored, last_run, last_time = _watermark(rides, "live_c")
    assert (runs, scored, last_run) == (2, first.rows + len(new), "20240302T000000Z-run00011")
    assert pd.Timestamp(last_time) == pd.Timestamp(new.requested_at.max(), tz="UTC")

    third = _run(rides, checked, "live_c", "20240303T000000Z-run00012")
    assert third.rows == 0
    assert _distinct_and_total(rides, "live_c_scores") == (first.rows + len(new), first.rows + len(new))
    assert _watermark(rides, "live_c")[0] == 2
