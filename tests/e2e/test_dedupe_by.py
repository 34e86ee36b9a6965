"""``dedupe`` (issue 11, item 9): rows sharing a key and event time keep the last one in input
order (``latest``) or the one with the largest value of a named column (``latest_by``), e.g. an
ingestion time that disagrees with the order the rows were written in."""

from __future__ import annotations

from pathlib import Path

from engine import api
from tests.conftest import run_engine, write

SPEC = """
spec_version: 1
project: dedupe
sources:
  prices_raw: {format: csv, path: data/prices.csv}
feature_groups:
  prices:
    primary_key: [sku]
    event_time: day
    dedupe: DEDUPE
    sql: SELECT sku, CAST(day AS TIMESTAMP) AS day, price, CAST(ingested_at AS TIMESTAMP) AS ingested_at FROM prices_raw
"""

CSV = """sku,day,price,ingested_at
a,2024-01-01,10.0,2024-01-02 09:00:00
a,2024-01-01,11.0,2024-01-02 08:00:00
b,2024-01-01,5.0,
b,2024-01-01,6.0,2024-01-01 12:00:00
c,2024-01-02,7.0,2024-01-03 00:00:00
"""


def _project(root: Path, dedupe: str) -> Path:
    write(root, "engine.yaml", "project: dedupe\n")
    write(root, "specs/dedupe.yaml", SPEC.replace("DEDUPE", dedupe))
    write(root, "data/prices.csv", CSV)
    return root


def _prices(root: Path) -> dict[str, float]:
    frame = api.read_feature_group(root, "prices")
    return dict(zip(frame["sku"], frame["price"]))


def test_latest_keeps_the_last_row_written_and_latest_by_the_largest_column(tmp_path: Path) -> None:
    last = _project(tmp_path / "last", "latest")
    api.apply(last)
    assert _prices(last) == {"a": 11.0, "b": 6.0, "c": 7.0}
    by = _project(tmp_path / "by", "{latest_by: ingested_at}")
    api.apply(by)
    assert _prices(by) == {"a": 10.0, "b": 6.0, "c": 7.0}  # a: ingested later although written first; b: NULL is lowest


def test_latest_by_a_column_the_group_does_not_have_fails_validate_on_the_key(tmp_path: Path) -> None:
    root = _project(tmp_path / "bad", "{latest_by: ingested}")
    rc, out, err = run_engine("validate", str(root))
    assert rc == 3, out + err
    assert "feature_groups.prices.dedupe.latest_by" in err and "dedupe column 'ingested' is not an output column of feature_group:prices" in err
    assert "did you mean 'ingested_at'" in err
