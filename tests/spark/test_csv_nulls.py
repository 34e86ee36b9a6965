"""CSV NULLs on Spark read as on DuckDB (issue 11, item 9): a quoted "" stays '', an empty
unquoted field is NULL; one declared null string is NULL quoted or not."""

from __future__ import annotations

import pytest

from tests.conftest import run_engine
from tests.e2e.test_csv_null_strings import _project
from tests.support_spark import lake_tables


@pytest.mark.parametrize(("csv", "expected"), [
    ("", {1: ("", 30), 2: (None, 40), 3: ("ace", None), 4: ("NA", 50)}),
    (', csv: {null_strings: [""]}', {1: (None, 30), 2: (None, 40), 3: ("ace", None), 4: ("NA", 50)}),
])
def test_spark_reads_csv_nulls_as_duckdb_does(tmp_path, csv, expected) -> None:
    root = _project(tmp_path / "p", csv)
    got = {}
    for backend in ("duckdb", "spark"):
        ws = tmp_path / f"ws_{backend}"
        code, out, err = run_engine("apply", str(root), "--backend", backend, "--workspace", str(ws), env={"ENGINE_SPARK_MASTER": "local[1]"}, timeout=300)
        assert code == 0, out + err
        rows = next(v for k, v in lake_tables(ws, ("offline",)).items() if k.startswith("offline.people"))
        got[backend] = {int(r["id"]): (r["nickname"], r["age"]) for r in rows}
    assert got["duckdb"] == got["spark"] == expected
