"""issue 11, item 9: a model that trains with warnings (here a LogisticRegression stopped before it
converged) says so in the apply output, not only in `engine show model`."""

from __future__ import annotations

import json
from pathlib import Path

from engine import api
from tests.conftest import run_engine
from tests.e2e.test_training import rides  # noqa: F401 (the fixture)


def test_training_warnings_reach_the_apply_output_and_the_manifest(rides: Path) -> None:  # noqa: F811
    spec = rides / "specs/rides.yaml"
    spec.write_text(spec.read_text().replace("params: {max_iter: 500}", "params: {max_iter: 1}"))
    rc, out, err = run_engine("apply", str(rides), "--format", "json")
    assert rc == 0, err
    step = next(s for s in json.loads(out)["steps"] if s["id"] == "model:tips_logreg")
    assert any(n.startswith("warning while training: ConvergenceWarning: lbfgs failed to converge") for n in step["notes"]), step
    manifest = api.show_model(rides, "tips_logreg")["manifest"]
    assert any(w.startswith("ConvergenceWarning") for w in manifest["metric_warnings"])
    xgb = next(s for s in json.loads(out)["steps"] if s["id"] == "model:tips_xgb")
    assert xgb["notes"] == []

    spec.write_text(spec.read_text().replace("params: {max_iter: 1}", "params: {max_iter: 2}"))
    rc, out, err = run_engine("apply", str(rides))
    assert rc == 0 and "note: warning while training: ConvergenceWarning" in err, err
