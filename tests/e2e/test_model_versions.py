"""G6 end to end: a crash between a model's artifact and its registry row must not shift version
numbers (issue 13, item 7). The rerun registers the same number the crashed run would have, with
no `engine gc` in between; the orphan it left is set aside, reported by `engine check` and removed
by `engine gc`."""

from __future__ import annotations

import signal
from pathlib import Path

from engine import api
from tests.conftest import run_engine
from tests.e2e.test_training import rides  # noqa: F401 (the fixture)


def test_a_crash_after_the_artifact_does_not_shift_the_next_version(rides: Path):  # noqa: F811
    rc, _, _ = run_engine("apply", str(rides), env={"ENGINE_FAULT_AT": "after_artifact"})
    assert rc == -signal.SIGKILL
    rc, _, err = run_engine("apply", str(rides))  # no gc in between
    assert rc == 0, err
    assert [(m["name"], m["version"]) for m in api.list_models(rides)] == [("tips_logreg", 1), ("tips_xgb", 1)]

    rc, out, err = run_engine("check", str(rides))
    assert rc == 0 and "orphan model directory set aside" in err and "engine gc" in err, out + err
    rc, out, _ = run_engine("gc", str(rides))
    assert rc == 0 and "1 item removed." in out
    rc, out, err = run_engine("check", str(rides))
    assert rc == 0 and out.strip() == "Workspace ok.", err

    # The next model version is the index's highest + 1, here too.
    trips = rides / "data/trips.csv"
    trips.write_text(trips.read_text().replace(",True,", ",False,", 5))
    rc, _, _ = run_engine("apply", str(rides), env={"ENGINE_FAULT_AT": "after_artifact"})
    assert rc == -signal.SIGKILL
    rc, _, err = run_engine("apply", str(rides))
    assert rc == 0, err
    assert [(m["name"], m["version"]) for m in api.list_models(rides)] == [("tips_logreg", 1), ("tips_logreg", 2), ("tips_xgb", 1), ("tips_xgb", 2)]
