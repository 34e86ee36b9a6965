"""Declared feature libraries reach the Spark executors (issue 14, item 5): the installed
distribution is packed (package files and .dist-info) and shipped with the job, so executors on
the test cluster — whose worker processes were started without the library on their path —
import the version the driver validated."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

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


def test_a_declared_library_is_shipped_to_the_cluster_executors(tmp_path, spark_cluster, monkeypatch) -> None:
    """In this process, on the session every cluster test shares (a second application would
    wait for the cores the shared one holds): the driver sees the library on its path, the
    executors only through what the job ships."""
    from engine import api
    from engine.compiler import libraries as libs
    from tests.support_spark import cluster_settings, lake_arrow

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
    settings = cluster_settings()
    monkeypatch.setenv("ENGINE_BACKEND", "spark")
    monkeypatch.setenv("ENGINE_SPARK_MASTER", settings.master)
    monkeypatch.setenv("ENGINE_SPARK_CONF", json.dumps(dict(settings.conf)))
    monkeypatch.syspath_prepend(str(site))
    libs._owner_cached.cache_clear()
    try:
        api.apply(root, select=("tips",))
        # The driver keeps importing the installed library, not the zip shipped to the executors
        # (PySpark's addPyFile also puts the zip first on the driver's path). Were it imported
        # from the zip, the code digest recorded for the view would be that of a folder the
        # fingerprint cannot list, and a forced re-run would be refused as a breaking change to
        # the library's code.
        assert not [p for p in sys.path if p.endswith(".zip") and "tip_lib" in p]
        forced = api.plan(root, select=("tips",), force=True)
        assert forced.blocked == (), forced.blocked
        assert not [c for c in forced.changes if c.code], [c.as_dict() for c in forced.changes]
    finally:
        for name in [n for n in sys.modules if n == "tiplib" or n.startswith("tiplib.")]:
            sys.modules.pop(name)
        libs._owner_cached.cache_clear()

    tables = lake_arrow(root / ".engine", ("views",))  # read through the lake's file lists (neither backend)
    frame = next(t for name, t in tables.items() if name.startswith("views.tips")).to_pandas()
    assert len(frame) > 0
    assert set(frame["shipped"]) == {1}  # every executor imported the library from the shipped zip
    assert frame["hour_of_day"].notna().all()

    zips = list(Path(tempfile.gettempdir()).glob(f"engine-libraries-{os.getuid()}/tip_lib-1.0.0-*.zip"))
    assert zips, "no library zip was built"
    names = set(zipfile.ZipFile(zips[0]).namelist())
    assert {"tiplib/__init__.py", "tiplib/time.py", "tiplib/where.py", "tip_lib-1.0.0.dist-info/METADATA"} <= names
