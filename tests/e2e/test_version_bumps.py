"""Every version bump a change needs is found in one pass, before anything runs (issue 10, items
1-2): removing a column from two published groups lists both in `plan`, and the view that reads
them (model versions were trained on it, so it needs a new version too), and stops `apply` with
exit 3 and nothing run; bumping all three versions applies, the old versions staying readable."""

from __future__ import annotations

import json
from pathlib import Path

from engine import api
from tests.conftest import run_engine
from tests.e2e.test_training import rides  # noqa: F401 (the fixture)

DRIVERS = "sql: SELECT driver_id, rating, years FROM drivers_raw"
STATS = "      - {column: distance_km, function: mean, window: 3d, name: distance_mean_3d}\n"
TRANSFORM = " distance_mean_3d: impute_mean,"


def test_all_required_bumps_are_reported_at_once_and_nothing_runs(rides: Path) -> None:  # noqa: F811
    api.apply(rides)
    spec = rides / "specs/rides.yaml"
    text = spec.read_text()
    assert DRIVERS in text and STATS in text and TRANSFORM in text
    spec.write_text(text.replace(DRIVERS, "sql: SELECT driver_id, rating FROM drivers_raw").replace(STATS, "").replace(TRANSFORM, ""))

    rc, out, err = run_engine("plan", str(rides), "--format", "json")
    assert rc == 0, err
    breaking = json.loads(out)["breaking"]
    assert len(breaking) == 3, breaking
    assert any(b.startswith("feature_group:drivers@1: breaking change without a new version: column 'years' removed. Bump feature_groups.drivers.version to 2") for b in breaking)
    assert any(b.startswith("feature_group:driver_stats@1: breaking change without a new version: column 'distance_mean_3d' removed") for b in breaking)
    assert any(b.startswith("feature_view:tips@1: breaking change to a version model:tips_logreg@1, model:tips_xgb@1 were trained on (- column distance_mean_3d") and "Bump feature_views.tips.version to 2" in b for b in breaking), breaking
    rc, text_plan, err = run_engine("plan", str(rides))
    assert "Breaking changes (3): apply refuses until each is resolved:" in text_plan, text_plan

    rc, out, err = run_engine("apply", str(rides))
    assert rc == 3, out + err
    assert "3 breaking changes: nothing was run" in err and "column 'years' removed" in err and "column 'distance_mean_3d' removed" in err
    assert "years" in api.read_feature_group(rides, "drivers").columns  # nothing was published

    text = spec.read_text()
    text = text.replace("  drivers:\n    primary_key: [driver_id]", "  drivers:\n    version: 2\n    primary_key: [driver_id]")
    text = text.replace("  driver_stats:\n    primary_key: [driver_id]", "  driver_stats:\n    version: 2\n    primary_key: [driver_id]")
    spec.write_text(text.replace("  tips:\n", "  tips:\n    version: 2\n", 1))
    rc, out, err = run_engine("apply", str(rides))
    assert rc == 0, err
    assert "years" not in api.read_feature_group(rides, "drivers").columns
    assert "years" in api.read_feature_group(rides, "drivers", version=1).columns  # the old version stays readable
    assert "driver_years" in api.read_feature_view(rides, "tips", version=1).columns and "driver_years" not in api.read_feature_view(rides, "tips").columns
