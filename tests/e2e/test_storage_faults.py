"""G3/G4 at every phase of an apply: the disk fills up (``RLIMIT_FSIZE`` in the child, ``SIGXFSZ``
ignored, no root needed) while ingesting, publishing a feature group, building the feature view,
registering a model or publishing the online snapshot. Each run must exit 74 with a message naming
the workspace and saying the previous state is intact (never exit 1 "a bug", never exit 4 blaming a
source file); the object being written when the disk filled up keeps its previous version, every
other object is all-old or all-new (I1, I2); and once space is back the rerun converges to exactly
what an uninterrupted apply builds (I7).

The limit is applied by a tiny wrapper around the CLI when the run reaches a named point (the
points ``ENGINE_FAULT_AT`` uses to kill the process): from there on, no file of the process may
grow past ``limit`` bytes, which is what a full disk looks like to DuckDB and to Python.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from engine import api
from tests.conftest import REPO, write
from tests.e2e.test_training import SPEC, TIME_PY, _data

CAPPED_CLI = textwrap.dedent(
    """
    import os, resource, signal, sys

    import engine.faults as faults  # patched before any module imports fault_point by name

    point, limit = os.environ["CAP_AT"], int(os.environ["CAP_BYTES"])
    real = faults.fault_point


    def fault_point(name):
        if name == point:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        real(name)


    faults.fault_point = fault_point
    from engine.cli.main import main

    sys.argv = ["engine", *sys.argv[1:]]
    main()
    """
)

# (phase, the point where the disk fills up, bytes any file may still grow to from there, the
# object that phase was writing: it must keep its previous version)
PHASES = [
    ("ingest", "before_ingest", 0, "group:trips"),
    ("ingest_commit", "mid_ingest", 4096, "group:trips"),
    ("feature_group_publish", "inside_publish", 0, "group:trips"),
    ("view_build", "view_build", 0, "view"),
    ("model_registration", "after_artifact", 0, "models"),
    ("model_training", "before_model", 0, "models"),
    ("model_artifact", "before_artifact", 0, "models"),
    ("online_snapshot", "before_snapshot", 0, "snapshot"),
]


def _project(root: Path) -> Path:
    trips, drivers = _data()
    write(root, "specs/rides.yaml", SPEC)
    write(root, "data/trips.csv", trips)
    write(root, "data/drivers.csv", drivers)
    write(root, "ride_features/__init__.py", "")
    write(root, "ride_features/time.py", TIME_PY)
    return root


def _change_data(root: Path) -> None:
    """New and changed trips: every phase of the next apply has work to do."""
    trips, _ = _data(n=700, seed=1)
    (root / "data/trips.csv").write_text(trips)


def _state(root: Path, workspace: Path | None = None) -> dict:
    """Everything an apply publishes, in comparable form (no timestamps or run ids)."""
    ws = workspace or root / ".engine"
    groups = {g["name"]: api.read_feature_group(root, g["name"], workspace=workspace) for g in api.list_feature_groups(root, workspace=workspace)}
    view = api.read_feature_view(root, "tips", workspace=workspace)
    models = sorted((m["name"], m["version"], m["fingerprint"]) for m in api.list_models(root, workspace=workspace))
    current = json.loads((ws / "online/CURRENT").read_text())["snapshot_id"] if (ws / "online/CURRENT").exists() else None
    return {"groups": groups, "view": view, "models": models, "snapshot": current}


def _objects(state: dict) -> dict[str, object]:
    out: dict[str, object] = {f"group:{name}": frame for name, frame in state["groups"].items()}
    out.update(view=state["view"], models=state["models"], snapshot=state["snapshot"])
    return out


def _equal(a: object, b: object) -> bool:
    if isinstance(a, pd.DataFrame) and isinstance(b, pd.DataFrame):
        try:
            pd.testing.assert_frame_equal(a, b)
        except AssertionError:
            return False
        return True
    return a == b


def _assert_same(got: dict, expected: dict, *, snapshot: bool = True) -> None:
    assert sorted(got["groups"]) == sorted(expected["groups"])
    for name, frame in expected["groups"].items():
        pd.testing.assert_frame_equal(got["groups"][name], frame)
    pd.testing.assert_frame_equal(got["view"], expected["view"])
    assert got["models"] == expected["models"]
    if snapshot:
        assert got["snapshot"] == expected["snapshot"]


@pytest.fixture(scope="module")
def applied(tmp_path_factory) -> tuple[Path, Path]:
    """A project applied once (the previous state), and a reference workspace holding what an
    uninterrupted apply over the changed data publishes."""
    base = _project(tmp_path_factory.mktemp("storage") / "rides")
    api.apply(base)
    reference = tmp_path_factory.mktemp("reference") / "rides"
    shutil.copytree(base, reference)
    _change_data(reference)
    api.apply(reference)
    return base, reference


@pytest.mark.parametrize(("phase", "point", "limit", "target"), PHASES, ids=[p[0] for p in PHASES])
def test_disk_full_at_each_phase_exits_74_keeps_the_previous_state_and_rerun_converges(applied, tmp_path: Path, phase: str, point: str, limit: int, target: str):
    base, reference = applied
    root = tmp_path / "rides"
    shutil.copytree(base, root)
    before = _state(root)
    _change_data(root)

    script = tmp_path / "capped_cli.py"
    script.write_text(CAPPED_CLI)
    env = {**os.environ, "CAP_AT": point, "CAP_BYTES": str(limit), "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(script), "apply", str(root)], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 60
    err = proc.stderr
    assert proc.returncode == 74, err
    assert "Traceback" not in err and "this is a bug" not in err
    assert str(root / ".engine") in err and "previous state is intact" in err, err

    # The object being written is as the previous apply left it; every other one is all-old or
    # all-new (I1, I2); the online snapshot still names the previous one.
    after, old, new = _objects(_state(root)), _objects(before), _objects(_state(reference))
    assert _equal(after[target], old[target]), f"{target} changed although writing it failed"
    for name, value in after.items():
        if name != "snapshot":
            assert _equal(value, old[name]) or _equal(value, new[name]), f"{name} is neither the old nor the new version"
    assert after["snapshot"] == old["snapshot"]

    # Space is back: the rerun converges to what an uninterrupted apply publishes (I7).
    rc = subprocess.run([sys.executable, "-m", "engine", "apply", str(root)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert rc.returncode == 0, rc.stderr
    expected = _state(reference)
    got = _state(root)
    _assert_same(got, expected, snapshot=False)
    check = subprocess.run([sys.executable, "-m", "engine", "check", str(root)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and check.stdout.strip() == "Workspace ok.", check.stdout + check.stderr


def test_disk_full_while_reading_a_source_is_exit_74_not_a_data_error(tiny_project: Path, tmp_path: Path):
    """The disk fills up in the middle of reading a source (DuckDB spills the read to the
    workspace's temp folder under a small memory limit): the source file is not to blame, so the
    exit is 74 naming the workspace, not 4; the rerun converges."""
    rows = "\n".join(f"{i},{i % 100},{i % 1000}.5,2024-01-01 09:00:00" for i in range(1, 600_001))
    (tiny_project / "data/orders.csv").write_text("order_id,user_id,amount,ordered_at\n" + rows + "\n")
    script = tmp_path / "capped_cli.py"
    script.write_text(CAPPED_CLI)
    env = {**os.environ, "CAP_AT": "before_ingest", "CAP_BYTES": "0", "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, str(script), "apply", str(tiny_project), "--memory-limit", "50MB"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 74, proc.stderr
    assert "source:orders_raw: writing the workspace" in proc.stderr and "previous state is intact" in proc.stderr
    assert "reading 'data/orders.csv' failed" not in proc.stderr and "Traceback" not in proc.stderr
    rerun = subprocess.run([sys.executable, "-m", "engine", "apply", str(tiny_project)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    assert len(api.read_feature_group(tiny_project, "orders")) == 600_000
