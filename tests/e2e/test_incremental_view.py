"""Incremental feature views (issue 8: "training data ... process only new spine rows where the
spec allows it"): when the spine and the joined groups only got rows later than every spine row
already in the view, only the new spine rows are joined and appended; otherwise the view is
rebuilt. Either way it equals a from-scratch apply (the oracle)."""

from __future__ import annotations

from engine import api
from tests.e2e.test_incremental import add_file, assert_same, fresh, project, reasons, snapshot


def view_files(ws) -> set[str]:
    return {str(p) for p in (ws / "tables" / "views").rglob("*.parquet")}


def test_later_rows_append_only_the_new_spine_rows_to_the_view(tmp_path):
    root = project(tmp_path / "inc")
    ws = tmp_path / "ws"
    add_file(root, "b0.csv", [(1, 1, 0, 1.0, 0), (2, 2, 5, 2.0, 1), (3, 1, 30, 3.0, 1)])
    api.apply(root, workspace=ws)
    before = view_files(ws)
    add_file(root, "b1.csv", [(4, 1, 300, 4.0, 0), (5, 3, 310, 5.0, 1)])
    ran = reasons(api.apply(root, workspace=ws))
    assert ran["fv"] == ("new data (incremental)", 2), ran
    assert before <= view_files(ws)  # the stored rows were not rewritten
    assert_same(snapshot(root, ws), fresh(root, tmp_path / "fresh"))


def test_a_feature_row_as_early_as_a_stored_spine_row_rebuilds_the_view(tmp_path):
    root = project(tmp_path / "inc", on_late="rebuild")
    ws = tmp_path / "ws"
    add_file(root, "b0.csv", [(1, 1, 0, 1.0, 0), (2, 2, 50, 2.0, 1), (3, 1, 100, 3.0, 1)])
    api.apply(root, workspace=ws)
    # A row at minute 60: the stored spine row at minute 100 (user 1) may now see other features.
    add_file(root, "b1.csv", [(4, 1, 60, 4.0, 0)])
    ran = reasons(api.apply(root, workspace=ws))
    assert ran["fv"][0] != "new data (incremental)", ran
    assert_same(snapshot(root, ws), fresh(root, tmp_path / "fresh"))


def test_an_unchanged_view_after_a_full_refresh_is_rebuilt_and_still_equal(tmp_path):
    root = project(tmp_path / "inc")
    ws = tmp_path / "ws"
    add_file(root, "b0.csv", [(1, 1, 0, 1.0, 0), (2, 2, 5, 2.0, 1)])
    api.apply(root, workspace=ws)
    api.apply(root, workspace=ws, full_refresh=True)
    add_file(root, "b1.csv", [(3, 2, 400, 4.0, 0)])
    api.apply(root, workspace=ws)
    assert_same(snapshot(root, ws), fresh(root, tmp_path / "fresh"))


def test_a_group_over_an_appended_group_runs_incrementally_too(tmp_path):
    """Chained incremental groups: ``scored`` publishes an append commit, so ``rescored`` (append
    over ``scored``) reads only those rows; the result equals a from-scratch apply."""
    root = project(tmp_path / "inc")
    spec = root / "specs" / "inc.yaml"
    spec.write_text(
        spec.read_text().replace(
            "  rolling:\n",
            "  rescored:\n    primary_key: [event_id]\n    event_time: ts\n    incremental: {kind: append}\n"
            "    sql: SELECT event_id, ts, amount2 + 1 AS amount3 FROM scored\n  rolling:\n",
        )
    )
    ws = tmp_path / "ws"
    add_file(root, "b0.csv", [(1, 1, 0, 1.0, 0), (2, 2, 5, 2.0, 1)])
    api.apply(root, workspace=ws)
    add_file(root, "b1.csv", [(3, 1, 300, 4.0, 0)])
    ran = reasons(api.apply(root, workspace=ws))
    assert ran["scored"] == ("new data (incremental)", 1), ran
    assert ran["rescored"] == ("new data (incremental)", 1), ran
    got = api.read_feature_group(root, "rescored", workspace=ws).sort_values("event_id")
    assert list(got["amount3"]) == [3.0, 5.0, 9.0]
    assert_same(snapshot(root, ws), fresh(root, tmp_path / "fresh"))
