"""Batch inference on a real workspace: same rows and numbers as the training path, exact range
boundaries, predictions table and file, model selectors, M2 (feature-view version mismatch),
atomic file writes (G4) and confined output paths (P1)."""

from __future__ import annotations

import dataclasses
import shutil
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine import api
from engine.compiler.semantics import CheckedProject
from engine.errors import DataError, PlanError, SpecError, StorageIOError
from engine.serving import outputs
from engine.serving.batch import score_batch
from engine.serving.scoring import load_model
from tests.conftest import check_golden, write
from tests.inference.conftest import (
    BOUNDARY_ROWS, apply_models, has_table, job, make_project, query, read_table, scoring_context, spec_text,
)

START, END = pd.Timestamp("2024-01-10", tz="UTC"), pd.Timestamp("2024-01-20", tz="UTC")


@pytest.fixture(scope="module")
def rides(tmp_path_factory) -> Path:
    """Applied once; then tips_xgb is retrained (v2, alias ``candidate``) so selectors differ."""
    root = make_project(tmp_path_factory.mktemp("batch") / "rides")
    apply_models(root)
    write(root, "specs/rides.yaml", spec_text(xgb_trees=4, xgb_aliases=("candidate",)))
    apply_models(root)
    return root


@pytest.fixture(scope="module")
def checked(rides: Path) -> CheckedProject:
    return api.validate(rides)


def _expected(rides: Path, model: str, selector) -> pd.DataFrame:
    """The oracle: predict_frame on the rows of api.read_feature_view in [START, END)."""
    from engine.ids import ModelRef
    from engine.session import reading
    from engine.state.workspace import Workspace

    view = api.read_feature_view(rides, "tips")
    rows = view[(view.requested_at >= START) & (view.requested_at < END)].reset_index(drop=True)
    ws = Workspace.for_project(rides)
    with reading(ws) as stores:
        loaded = load_model(stores.registry, ModelRef(model, None if selector is None else str(selector)))
    return pd.concat([rows, loaded.predict_frame(rows)], axis=1)


def test_batch_predictions_equal_predict_frame_on_feature_view_rows(rides: Path, checked: CheckedProject):
    expected = _expected(rides, "tips_xgb", "production").sort_values("trip_id").reset_index(drop=True)
    with scoring_context(rides, checked) as ctx:
        outcome = score_batch(ctx, job(checked, "january", model="tips_xgb@production"))
    got = read_table(rides, outcome.table).sort_values("trip_id").reset_index(drop=True)
    assert outcome.rows == len(got) == len(expected) > 50
    assert got.trip_id.tolist() == expected.trip_id.tolist()
    assert (got.requested_at == expected.requested_at).all()
    assert got.prediction.tolist() == expected.prediction.tolist()
    for col in ("proba_False", "proba_True"):
        np.testing.assert_array_equal(got[col].to_numpy(), expected[col].to_numpy())
    np.testing.assert_array_equal(got.fare.to_numpy(), expected.fare.to_numpy())  # helper column kept


def test_predictions_table_layout_and_stamps(rides: Path, checked: CheckedProject):
    with scoring_context(rides, checked) as ctx:
        outcome = score_batch(ctx, job(checked, "january"))
    assert outcome.table == '"predictions"."january_scores"'
    cols = query(rides, "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'predictions' AND table_name = 'january_scores' ORDER BY ordinal_position", bind=(outcome.table,))
    assert cols == [
        ("trip_id", "BIGINT"), ("requested_at", "TIMESTAMP WITH TIME ZONE"), ("fare", "DOUBLE"), ("prediction", "BOOLEAN"),
        ("proba_False", "DOUBLE"), ("proba_True", "DOUBLE"), ("model", "VARCHAR"), ("model_version", "INTEGER"),
        ("feature_view", "VARCHAR"), ("feature_view_version", "INTEGER"), ("scored_at", "TIMESTAMP WITH TIME ZONE"), ("run_id", "VARCHAR"),
    ]
    got = read_table(rides, outcome.table)
    assert set(got.model) == {"tips_xgb"} and set(got.feature_view) == {"tips"} and set(got.feature_view_version) == {1}
    assert set(got.run_id) == {"20240301T120000Z-test0001"}
    assert set(got.scored_at) == {pd.Timestamp("2024-03-01 12:00:00", tz="UTC")}  # the run's timestamp
    np.testing.assert_allclose(got.proba_False + got.proba_True, 1.0)


def test_range_is_start_inclusive_end_exclusive(rides: Path, checked: CheckedProject):
    with scoring_context(rides, checked) as ctx:
        outcome = score_batch(ctx, job(checked, "january"))
    got = read_table(rides, outcome.table)
    ids = set(got.trip_id)
    on_start, on_end, just_before_end = BOUNDARY_ROWS
    assert on_start in ids and just_before_end in ids and on_end not in ids
    assert got.requested_at.min() == START and got.requested_at.max() < END
    spine = api.read_feature_group(rides, "trips")
    assert len(got) == int(((spine.requested_at >= START) & (spine.requested_at < END)).sum())


def test_range_accepts_timestamps_with_offsets(rides: Path, checked: CheckedProject):
    """The same instant written with an offset selects the same rows (UTC parsing)."""
    with scoring_context(rides, checked) as ctx:
        a = score_batch(ctx, job(checked, "january", output_path=None))
        b = score_batch(ctx, job(checked, "january", output_path=None, range=("2024-01-10T02:00:00+02:00", "2024-01-19T19:00:00-05:00")))
    assert a.rows == b.rows


def test_output_file_equals_table_and_rerun_replaces_its_range(rides: Path, checked: CheckedProject):
    """A run replaces the predictions of the range it scores and keeps the table's other rows
    (issue 10, item 7: backfills and moving windows accumulate); the file mirrors the table."""
    with scoring_context(rides, checked) as ctx:
        first = score_batch(ctx, job(checked, "january"))
    assert first.path == "out/january.parquet"
    table = read_table(rides, first.table)
    pd.testing.assert_frame_equal(pd.read_parquet(rides / first.path), table, check_dtype=False)
    with scoring_context(rides, checked, run_id="20240302T000000Z-test0002") as ctx:
        second = score_batch(ctx, job(checked, "january", range=("2024-01-10", "2024-01-12")))
    table = read_table(rides, second.table)
    assert second.rows < first.rows and len(table) == first.rows  # replaced in its range, not appended
    times = pd.to_datetime(table["requested_at"], utc=True)
    inside = times < pd.Timestamp("2024-01-12", tz="UTC")
    assert int(inside.sum()) == second.rows
    assert set(table.run_id[inside]) == {"20240302T000000Z-test0002"} and set(table.run_id[~inside]) == {"20240301T120000Z-test0001"}
    assert len(pd.read_parquet(rides / second.path)) == len(table)
    assert not [p for p in (rides / "out").iterdir() if p.name.startswith(outputs.TMP_PREFIX)]


def test_csv_output(rides: Path, checked: CheckedProject):
    with scoring_context(rides, checked) as ctx:
        outcome = score_batch(ctx, job(checked, "january", output_table="csv_scores", output_path="out/scores.csv"))
    frame = pd.read_csv(rides / "out/scores.csv")
    assert len(frame) == outcome.rows and list(frame.columns) == list(read_table(rides, outcome.table).columns)


def test_jsonl_output_passes_validate_and_is_written(rides: Path, checked: CheckedProject):
    """One output-path rule: what ``engine validate`` accepts is what the writer writes (.jsonl too)."""
    spec = rides / "specs/rides.yaml"
    original = spec.read_text()
    try:
        spec.write_text(original.replace("path: out/january.parquet", "path: out/x.jsonl"))
        jsonl_job = api.validate(rides).project.inference["january"]
    finally:
        spec.write_text(original)
    assert jsonl_job.output_path == "out/x.jsonl"
    with scoring_context(rides, checked) as ctx:
        outcome = score_batch(ctx, dataclasses.replace(jsonl_job, output_table="jsonl_scores"))
    assert outcome.path == "out/x.jsonl"
    frame = pd.read_json(rides / "out/x.jsonl", lines=True)
    assert len(frame) == outcome.rows and list(frame.columns) == list(read_table(rides, outcome.table).columns)


def _best_roc_auc_version(rides: Path) -> int:
    versions = [(v, api.show_model(rides, "tips_xgb", version=v)["metrics"]["test"]["roc_auc"]) for v in (1, 2)]
    best = max(v[1] for v in versions)
    return max(v for v, auc in versions if auc == best)  # ties -> newest


@pytest.mark.parametrize("reference, expected", [
    ("tips_xgb@1", 1), ("tips_xgb@latest", 2), ("tips_xgb", 2), ("tips_xgb@production", 1),
    ("tips_xgb@candidate", 2), ("tips_xgb@best:roc_auc", None),
])
def test_model_selectors_resolve(rides: Path, checked: CheckedProject, reference: str, expected: int | None):
    expected = expected if expected is not None else _best_roc_auc_version(rides)
    with scoring_context(rides, checked) as ctx:
        outcome = score_batch(ctx, job(checked, "january", model=reference, output_path=None))
    assert outcome.model_ref == f"model:tips_xgb@{expected}"
    assert set(read_table(rides, outcome.table).model_version) == {expected}


def test_selected_versions_give_their_own_predictions(rides: Path, checked: CheckedProject):
    """v1 (10 trees) and v2 (4 trees) score differently: the selector really picks the artifact."""
    probas = {}
    for v in (1, 2):
        with scoring_context(rides, checked) as ctx:
            outcome = score_batch(ctx, job(checked, "january", model=f"tips_xgb@{v}", output_path=None))
        probas[v] = read_table(rides, outcome.table).sort_values("trip_id").proba_True.to_numpy()
        expected = _expected(rides, "tips_xgb", v).sort_values("trip_id").proba_True.to_numpy()
        np.testing.assert_array_equal(probas[v], expected)
    assert not np.array_equal(probas[1], probas[2])


def test_logistic_regression_scores_too(rides: Path, checked: CheckedProject):
    with scoring_context(rides, checked) as ctx:
        outcome = score_batch(ctx, job(checked, "january", model="tips_logreg", output_table="logreg", output_path=None))
    got = read_table(rides, outcome.table).sort_values("trip_id").reset_index(drop=True)
    expected = _expected(rides, "tips_logreg", None).sort_values("trip_id").reset_index(drop=True)
    np.testing.assert_allclose(got.proba_True.to_numpy(), expected.proba_True.to_numpy(), rtol=0, atol=1e-12)


def _with_view_version(checked: CheckedProject, version: int) -> CheckedProject:
    project = checked.project
    views = {**project.feature_views, "tips": dataclasses.replace(project.feature_views["tips"], version=version)}
    return dataclasses.replace(checked, project=dataclasses.replace(project, feature_views=views))


def test_m2_an_older_view_version_is_rebuilt_for_the_model_trained_on_it(rides: Path, checked: CheckedProject, tmp_path):
    """M2: the model pins feature_view:tips@1; a project at @2 scores it over tips@1 rebuilt from
    its recorded definition (the same predictions as the published tips@1 rows give)."""
    expected = _expected(rides, "tips_xgb", 1).sort_values("trip_id").reset_index(drop=True)
    copy = tmp_path / "rides"
    shutil.copytree(rides, copy)
    moved = _with_view_version(api.validate(copy), 2)
    with scoring_context(copy, moved) as ctx:
        outcome = score_batch(ctx, job(moved, "january", model="tips_xgb@1", output_table="pinned", output_path=None))
    got = read_table(copy, outcome.table).sort_values("trip_id").reset_index(drop=True)
    assert got.trip_id.tolist() == expected.trip_id.tolist()
    np.testing.assert_array_equal(got.proba_True.to_numpy(), expected.proba_True.to_numpy())
    assert set(got.feature_view_version) == {1}


def test_m2_a_view_version_without_a_recorded_definition_is_a_plan_error(rides: Path, checked: CheckedProject, tmp_path):
    """M2, in a workspace from before the engine recorded view definitions: the model pins
    feature_view:tips@1, the project is at @2, and tips@1 cannot be rebuilt: PlanError."""
    import sqlite3

    copy = tmp_path / "rides"
    shutil.copytree(rides, copy)
    with sqlite3.connect(copy / ".engine" / "catalog.sqlite") as db:  # what an older workspace holds
        db.execute("DELETE FROM step_definitions WHERE step_id = 'feature_view:tips@1'")
    moved = _with_view_version(api.validate(copy), 2)
    with scoring_context(copy, moved) as ctx:
        with pytest.raises(PlanError) as err:
            score_batch(ctx, job(moved, "january", model="tips_xgb@1"))
    check_golden("inference/m2_mismatch.txt", str(err.value) + "\n")
    assert "feature_view:tips@1" in str(err.value) and "feature_view:tips@2" in str(err.value)
    assert not _has(copy, "january_scores") or _count(copy, "january_scores") == _count(rides, "january_scores")


def _has(rides: Path, table: str) -> bool:
    return has_table(rides, "predictions", table)


def _count(rides: Path, table: str) -> int:
    return query(rides, f'SELECT count(*) FROM "predictions"."{table}"', bind=(f'"predictions"."{table}"',))[0][0]


def test_empty_range_is_a_data_error_and_keeps_the_old_table(rides: Path, checked: CheckedProject):
    with scoring_context(rides, checked) as ctx:
        score_batch(ctx, job(checked, "january", output_path=None))
    before = read_table(rides, '"predictions"."january_scores"')
    with scoring_context(rides, checked) as ctx:
        with pytest.raises(DataError) as err:
            score_batch(ctx, job(checked, "january", output_path=None, range=("2030-01-01", "2030-02-01")))
    check_golden("inference/empty_range.txt", str(err.value) + "\n")
    pd.testing.assert_frame_equal(read_table(rides, '"predictions"."january_scores"'), before)


def test_g4_file_write_failure_leaves_no_partial_file_and_old_table(rides: Path, checked: CheckedProject, monkeypatch):
    """G4: an I/O error while writing the file -> StorageIOError, no file under the final name,
    no temp file left, and the table keeps its previous rows (the transaction rolled back)."""
    import pyarrow.parquet as pq

    target = "out/failing.parquet"
    with scoring_context(rides, checked) as ctx:
        score_batch(ctx, job(checked, "january", output_table="g4", output_path=None))
    before = read_table(rides, '"predictions"."g4"')

    def broken(table, where, **kw):
        Path(where).write_bytes(b"PAR1 partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", broken)
    with scoring_context(rides, checked, run_id="20240305T000000Z-failing1") as ctx:
        with pytest.raises(StorageIOError, match="No space left"):
            score_batch(ctx, job(checked, "january", output_table="g4", output_path=target, range=("2024-01-10", "2024-01-11")))
    assert not (rides / target).exists()
    assert not [p for p in (rides / "out").iterdir() if p.name.startswith(outputs.TMP_PREFIX)]
    pd.testing.assert_frame_equal(read_table(rides, '"predictions"."g4"'), before)


def test_g4_failed_rename_keeps_previous_file(rides: Path, checked: CheckedProject, monkeypatch):
    with scoring_context(rides, checked) as ctx:
        first = score_batch(ctx, job(checked, "january", output_table="g4b", output_path="out/g4b.parquet"))
    old = (rides / "out/g4b.parquet").read_bytes()
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(5, "Input/output error")))
    with scoring_context(rides, checked) as ctx:
        with pytest.raises(StorageIOError):
            score_batch(ctx, job(checked, "january", output_table="g4b", output_path="out/g4b.parquet", range=("2024-01-10", "2024-01-11")))
    monkeypatch.setattr(os, "replace", real_replace)
    assert (rides / "out/g4b.parquet").read_bytes() == old and first.rows > 0
    assert not [p for p in (rides / "out").iterdir() if p.name.startswith(outputs.TMP_PREFIX)]


@pytest.mark.parametrize("path", ["../escape.parquet", "/tmp/abs.parquet", "~/x.parquet", "out/../../x.parquet", "out/x.txt"])
def test_p1_output_path_must_stay_in_the_project(rides: Path, checked: CheckedProject, path: str):
    with scoring_context(rides, checked) as ctx:
        with pytest.raises(SpecError):
            score_batch(ctx, job(checked, "january", output_table="p1", output_path=path))
    assert not _has(rides, "p1")


def test_p2_output_path_through_a_symlink_outside_is_refused(rides: Path, checked: CheckedProject, tmp_path: Path):
    link = rides / "linked"
    if not link.exists():
        os.symlink(tmp_path, link)
    with scoring_context(rides, checked) as ctx:
        with pytest.raises(SpecError, match="outside the project"):
            score_batch(ctx, job(checked, "january", output_table="p2", output_path="linked/x.parquet"))
    assert not (tmp_path / "x.parquet").exists()


def test_published_view_is_reused_only_when_current(rides: Path, checked: CheckedProject):
    """After an apply the published view is current (fingerprint match); a changed view definition
    (here: its filter) makes it stale, and scoring re-materialises instead."""
    from engine.serving.batch import published_view

    fv = checked.project.feature_views["tips"]
    changed = dataclasses.replace(checked, project=dataclasses.replace(
        checked.project, feature_views={"tips": dataclasses.replace(fv, filter="distance_km > 1")}))
    with scoring_context(rides, checked) as ctx:
        assert published_view(ctx, fv) is not None
    with scoring_context(rides, changed) as ctx:
        assert published_view(ctx, changed.project.feature_views["tips"]) is None
        outcome = score_batch(ctx, job(checked, "january", output_table="filtered", output_path=None))
    got = read_table(rides, outcome.table)
    assert len(got) > 0 and (got.fare > 5 + 1.5 * 1).all()  # fare = 5 + 1.5 * distance_km: the new filter applied


def test_rematerialised_rows_score_like_the_published_view(rides: Path, checked: CheckedProject, monkeypatch):
    """The two ways to get the rows (published view, materialise with spine_where) agree exactly."""
    from engine.serving import batch

    with scoring_context(rides, checked) as ctx:
        fast = score_batch(ctx, job(checked, "january", output_table="fast", output_path=None))
    monkeypatch.setattr(batch, "published_view", lambda ctx, fv: None)
    with scoring_context(rides, checked) as ctx:
        slow = score_batch(ctx, job(checked, "january", output_table="slow", output_path=None))
    a = read_table(rides, fast.table).sort_values("trip_id").reset_index(drop=True)
    b = read_table(rides, slow.table).sort_values("trip_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
