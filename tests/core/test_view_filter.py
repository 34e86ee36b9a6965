"""Feature-view filters (issue 13, item 6): one boolean expression over the spine's columns,
checked at validate with its position, and compiled from the parsed expression — never pasted
into SQL as text. Before, ``1=1 --`` and ``… UNION ALL SELECT …`` passed validate and failed at
apply with exit 5 and no position."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import api
from engine.errors import SpecError
from tests.conftest import run_engine, write

SPEC = """
spec_version: 1
project: f
sources:
  trips_raw: {format: csv, path: data/trips.csv}
feature_groups:
  trips:
    primary_key: [trip_id]
    event_time: at
    sql: SELECT trip_id, at, CAST(km AS DOUBLE) AS km, tipped FROM trips_raw
feature_views:
  tips:
    spine: trips
    label: tipped
    features: [km]
    filter: {filter}
"""
TRIPS = "trip_id,at,km,tipped\n1,2024-01-01 10:00:00,0.5,true\n2,2024-01-02 10:00:00,3.0,false\n3,2024-01-03 10:00:00,7.0,true\n"


def _project(tmp_path: Path, filter_text: str) -> Path:
    root = tmp_path / "f"
    write(root, "specs/f.yaml", SPEC.replace("{filter}", filter_text))
    write(root, "data/trips.csv", TRIPS)
    return root


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"km > 0 UNION ALL SELECT 1, 2, 3, 4"', "filter must be one boolean expression: SQL does not parse (UNION)"),
        ('"km > (SELECT max(km) FROM trips)"', "filter must not contain a subquery"),
        ('"kmm > 1"', "column 'kmm' is not a column of the spine (did you mean 'km'?)"),
        ('"read_text(\'/etc/passwd\') IS NOT NULL"', "function read_text() not allowed"),
        ('"km >"', "filter must be one boolean expression: SQL does not parse"),
        ("'42'", "filter must be a boolean expression"),
    ],
    ids=["union", "subquery", "unknown_column", "denied_function", "incomplete", "not_boolean"],
)
def test_a_bad_filter_is_refused_at_validate_positioned(tmp_path: Path, text: str, message: str) -> None:
    root = _project(tmp_path, text)
    with pytest.raises(SpecError) as info:
        api.validate(root)
    [problem] = info.value.problems
    assert problem.path == ("feature_views", "tips", "filter")
    assert problem.file.endswith("f.yaml") and problem.line == 15 and problem.column > 0
    assert message in problem.message
    rc, _, err = run_engine("validate", str(root))
    assert rc == 3 and "feature_views.tips.filter" in err


def test_a_trailing_comment_no_longer_breaks_the_query(tmp_path: Path) -> None:
    root = _project(tmp_path, '"km > 1 --"')
    api.apply(root)
    assert sorted(api.read_feature_view(root, "tips").trip_id) == [2, 3]


def test_a_good_filter_keeps_what_it_says(tmp_path: Path) -> None:
    root = _project(tmp_path, "\"km > 1 AND tipped\"")
    api.apply(root)
    assert api.read_feature_view(root, "tips").trip_id.tolist() == [3]
