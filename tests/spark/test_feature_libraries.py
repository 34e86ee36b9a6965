"""Declared feature libraries reach the Spark executors (issue 14, item 5): the installed
distribution is packed (package files and .dist-info) and shipped with the job, so executors on
the test cluster — whose worker processes were started without the library on their path —
import the version the driver validated."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from tests.conftest import run_engine
from tests.e2e.test_feature_libraries import TIME_PY, install, library_project

WHERE_PY = '''"""Where this module was imported from."""

import pandas as pd


def from_zip(ts):
    """1 when the library was imported from a shipped zip, else 0."""
    shipped = int(".zip" in __file__)
    if isinstance(ts, pd.Series):
        return pd.Series(shipped, index=ts.index, dtype="int64")
    return shipped
'''


def test_a_declared_library_is_shipped_to_the_cluster_executors(tmp_path, spark_cluster) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install(site, "tip-lib", "1.0.0", {"tiplib/__init__.py": "", "tiplib/time.py": TIME_PY, "tiplib/where.py": WHERE_PY})
    root = library_project(tmp_path / "p")
    spec = root / "specs" / "project.yaml"
    spec.write_text(
        spec.read_text()
        .replace("functions:\n", "functions:\n  shipped: {python: tiplib.where:from_zip, inputs: [requested_at], returns: int64}\n")
        .replace("on_demand: [hour_of_day]", "on_demand: [hour_of_day, shipped]")
    )
    conf = {"spark.cores.max": "2", "spark.executor.memory": "768m", "spark.sql.shuffle.partitions": "2",
            "spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
    env = {"ENGINE_SPARK_MASTER": spark_cluster.master_url, "ENGINE_SPARK_CONF": json.dumps(conf),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    code, out, err = run_engine("apply", str(root), "--backend", "spark", "--select", "tips", env=env, timeout=600)
    assert code == 0, out + err

    from tests.support_spark import lake_arrow

    tables = lake_arrow(root / ".engine", ("views",))  # read through the lake's file lists (neither backend)
    frame = next(t for name, t in tables.items() if name.startswith("views.tips")).to_pandas()
    assert len(frame) > 0
    assert set(frame["shipped"]) == {1}  # every executor imported the library from the shipped zip
    assert frame["hour_of_day"].notna().all()

    zips = list(Path(os.environ.get("TMPDIR", "/tmp")).glob(f"engine-libraries-{os.getuid()}/tip_lib-1.0.0-*.zip"))
    assert zips, "no library zip was built"
    names = set(zipfile.ZipFile(zips[0]).namelist())
    assert {"tiplib/__init__.py", "tiplib/time.py", "tiplib/where.py", "tip_lib-1.0.0.dist-info/METADATA"} <= names
