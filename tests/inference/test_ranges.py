"""Relative batch ranges and backfills (issue 10, item 7): ``range: {last: …}`` resolves at the
run's time floored to its unit (so a day's re-apply changes nothing); ``apply --start/--end``
scores another range once, and a batch run replaces only the predictions of the range it scores."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from engine import api
from engine.compiler.planner import make_plan
from engine.model.windows import relative_range
from tests.conftest import run_engine
from tests.inference.conftest import make_project

JANUARY = 'range: ["2024-01-10", "2024-01-20"]'


@pytest.fixture
def rides(tmp_path: Path) -> Path:
    return make_project(tmp_path / "rides")


def _times(frame: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(frame["requested_at"], utc=True)


def test_a_relative_range_is_the_window_ending_at_the_runs_floored_time() -> None:
    for last, seconds, now, expected in [
        ("30d", 30 * 86400, datetime(2026, 12, 3, 22, 41, 7, 5, tzinfo=UTC), ("2026-11-03T00:00:00+00:00", "2026-12-03T00:00:00+00:00")),
        ("2w", 14 * 86400, datetime(2026, 12, 3, 0, 0, tzinfo=UTC), ("2026-11-19T00:00:00+00:00", "2026-12-03T00:00:00+00:00")),
        ("6h", 6 * 3600, datetime(2026, 12, 3, 5, 59, 59, tzinfo=UTC), ("2026-12-02T23:00:00+00:00", "2026-12-03T05:00:00+00:00")),
        ("90m", 90 * 60, datetime(2026, 12, 3, 5, 30, 40, tzinfo=UTC), ("2026-12-03T04:00:00+00:00", "2026-12-03T05:30:00+00:00")),
    ]:
        assert tuple(t.isoformat() for t in relative_range(last, seconds, now)) == expected


def test_a_relative_range_scores_its_window_and_moves_only_with_the_clock(rides: Path) -> None:
    spec = rides / "specs/rides.yaml"
    spec.write_text(spec.read_text().replace(JANUARY, "range: {last: 4000d}"))
    rc, out, err = run_engine("apply", str(rides), "--format", "json")
    assert rc == 0, err
    scores = api.read_predictions(rides, "january")
    spine = api.read_feature_group(rides, "trips")
    start, end = relative_range("4000d", 4000 * 86400, datetime.now(UTC))
    inside = spine[(_times(spine) >= start) & (_times(spine) < end)]
    assert len(scores) == len(inside) > 0
    # The same day: nothing to do. The next day (a later clock): the range moved, the job runs.
    checked = api.validate(rides)
    from engine.state.workspace import Workspace
    from engine.api import _stored_state

    steps, consumed = _stored_state(Workspace.for_project(rides))
    today = make_plan(checked, steps, consumed=consumed, select=("january",))
    assert not today.has_changes
    tomorrow = make_plan(checked, steps, consumed=consumed, select=("january",), now=datetime.now(UTC) + pd.Timedelta(days=1))
    job = next(s for s in tomorrow.steps if s.step.key == "inference:january")
    assert job.reason.value == "range moved" and job.step.window[1] > today.steps[-1].step.window[1]
    rc, text, err = run_engine("plan", str(rides), "-s", "january")
    assert rc == 0 and "No changes." in text and "[" in text, text + err


def test_a_backfill_scores_another_range_once_and_keeps_the_jobs_own_rows(rides: Path) -> None:
    rc, _, err = run_engine("apply", str(rides))
    assert rc == 0, err
    own = api.read_predictions(rides, "january")
    assert (_times(own) >= pd.Timestamp("2024-01-10", tz="UTC")).all() and (_times(own) < pd.Timestamp("2024-01-20", tz="UTC")).all()
    rc, out, err = run_engine("apply", str(rides), "-s", "january", "--start", "2024-01-01", "--end", "2024-01-05", "--format", "json")
    assert rc == 0, err
    step = next(s for s in json.loads(out)["steps"] if s["id"] == "inference:january")
    assert step["status"] == "ran" and step["reason"] == "backfill"
    both = api.read_predictions(rides, "january")
    backfilled = both[_times(both) < pd.Timestamp("2024-01-05", tz="UTC")]
    spine = api.read_feature_group(rides, "trips")
    assert len(backfilled) == int(((_times(spine) >= pd.Timestamp("2024-01-01", tz="UTC")) & (_times(spine) < pd.Timestamp("2024-01-05", tz="UTC"))).sum()) > 0
    assert len(both) == len(own) + len(backfilled)
    # A backfill is recorded nowhere else: the job's own plan is unchanged; re-scoring its own range
    # replaces those rows only (no duplicates), keeping the backfilled ones.
    assert not api.plan(rides).has_changes
    rc, _, err = run_engine("apply", str(rides), "-s", "january", "--force")
    assert rc == 0, err
    again = api.read_predictions(rides, "january")
    assert len(again) == len(both) and again["trip_id"].is_unique


def test_backfill_bounds_are_usage_errors(rides: Path) -> None:
    for args, message in [
        (("--start", "2024-01-01"), "--start and --end go together"),
        (("--start", "2024-02-01", "--end", "2024-01-01"), "must be before --end"),
        (("--start", "yesterday", "--end", "2024-01-01"), "--start/--end"),
        (("-s", "tips", "--start", "2024-01-01", "--end", "2024-01-05"), "no batch job is selected"),
    ]:
        rc, out, err = run_engine("plan", str(rides), *args)
        assert rc == 2 and message in err, (args, out + err)
