"""issue 11, items 2 and 3 (bad input): what a feature view feeds a model is checked at validate,
positioned on the key — a timestamp feature (training would stop on it, exit 4, after building
everything), a transform for a column that is not a feature, a numeric transform on text."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_engine, write
from tests.e2e.test_training import SPEC, TIME_PY, _data


def _rides(root: Path, spec: str) -> Path:
    trips, drivers = _data(60)
    write(root, "specs/rides.yaml", spec)
    write(root, "data/trips.csv", trips)
    write(root, "data/drivers.csv", drivers)
    write(root, "ride_features/__init__.py", "")
    write(root, "ride_features/time.py", TIME_PY)
    return root


def _line(root: Path, text: str) -> int:
    return next(i for i, line in enumerate((root / "specs/rides.yaml").read_text().splitlines(), 1) if text in line)


@pytest.mark.parametrize(
    "old, new, key, message",
    [
        ("features: [distance_km]", "features: [distance_km, requested_at]", "feature_views.tips.features[1]",
         "feature 'requested_at' is a TIMESTAMP"),
        ("{feature_group: drivers, on: [driver_id], prefix: driver_}", "{feature_group: drivers, on: [driver_id], prefix: driver_, select: [rating, years]}",
         None, None),
        ("transforms: {distance_km: standard_scaler,", "transforms: {distance: standard_scaler, distance_km: standard_scaler,",
         "feature_views.tips.transforms.distance", "transform for 'distance', which is not a feature of feature view 'tips'"),
    ],
)
def test_model_inputs_are_checked_at_validate(tmp_path: Path, old: str, new: str, key: str | None, message: str | None) -> None:
    assert old in SPEC
    # A CSV source's types are known at validate only where declared or cast; cast the time here.
    spec = SPEC.replace("sql: SELECT trip_id, driver_id, requested_at,", "sql: SELECT trip_id, driver_id, CAST(requested_at AS TIMESTAMP) AS requested_at,")
    root = _rides(tmp_path / "rides", spec.replace(old, new))
    rc, out, err = run_engine("validate", str(root))
    if key is None:  # a valid variant: nothing to report
        assert rc == 0, out + err
        return
    assert rc == 3, out + err
    assert key.replace("[", ".").replace("]", "") in err.replace("[", ".").replace("]", "") and message in err, err
    assert f"specs/rides.yaml:{_line(root, new)}:" in err, err


def test_a_numeric_transform_on_a_text_column_and_a_joined_timestamp_are_reported_together(tmp_path: Path) -> None:
    spec = SPEC.replace("sql: SELECT driver_id, rating, years FROM drivers_raw",
                        "sql: SELECT driver_id, rating, years, CAST(rating AS VARCHAR) AS grade, CAST('2024-01-01' AS TIMESTAMP) AS joined_at FROM drivers_raw")
    spec = spec.replace("transforms: {distance_km: standard_scaler,", "transforms: {driver_grade: standard_scaler, distance_km: standard_scaler,")
    root = _rides(tmp_path / "rides", spec)
    rc, out, err = run_engine("validate", str(root))
    assert rc == 3, out + err
    assert "standard_scaler applies to numbers, and 'driver_grade' is a VARCHAR (use one_hot_encoder or label_encoder for text)" in err
    assert "feature 'driver_joined_at' is a TIMESTAMP, and a model takes numbers" in err
    assert "2 problems found." in err
    line = _line(root, "{feature_group: drivers, on: [driver_id], prefix: driver_}")
    assert f"specs/rides.yaml:{line}:" in err  # the joined timestamp: on its join
