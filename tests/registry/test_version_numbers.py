"""Version numbers never skip (issue 13, item 7; RELIABILITY G6): the next version of a model is
the index's highest + 1, whatever a crash left on disk. An orphan directory holding that number (a
crash between the artifact and its index row) is set aside atomically as the orphan it is, never
reused and never deleted behind the user's back: `engine check` reports it and `engine gc`
removes it. An indexed version is never overwritten."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import InternalError
from engine.registry.local import LocalRegistry
from tests.registry.test_registry import Clock, _connect, _manifest, _model


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / ".engine"
    ws.mkdir()
    return ws


@pytest.fixture
def registry(workspace: Path):
    backend = _connect(workspace)
    yield LocalRegistry(backend.catalog, workspace / "models", clock=Clock())
    backend.close()


def _set_aside(workspace: Path, name: str) -> list[Path]:
    return sorted(p for p in (workspace / "models" / name).iterdir() if p.name.startswith(".orphan-"))


def test_an_orphan_directory_does_not_shift_the_next_version(registry: LocalRegistry, workspace: Path) -> None:
    registry.register("m", "fp-1", _manifest(), _model())
    orphan, _ = registry.stage("m", 2, "fp-2", _manifest(), _model(seed=1))  # the crash: no index row
    (orphan / "evidence.txt").write_text("left by a crash")

    mv = registry.register("m", "fp-3", _manifest(), _model(seed=2))

    assert mv.version == 2
    assert [v.version for v in registry.list("m")] == [1, 2]
    assert json.loads((workspace / "models/m/2/manifest.json").read_text())["fingerprint"] == "fp-3"
    assert not (workspace / "models/m/2/evidence.txt").exists()
    aside = _set_aside(workspace, "m")
    assert len(aside) == 1 and aside[0].name.startswith(".orphan-2-")
    assert (aside[0] / "evidence.txt").read_text() == "left by a crash"  # set aside, not deleted
    assert registry.check() == [f"models/m/{aside[0].name}: orphan model directory set aside (not in the registry index); `engine gc` removes it"]
    assert registry.gc() == aside
    assert registry.check() == []
    assert registry.load(mv) is not None


def test_several_orphans_are_set_aside_one_number_at_a_time(registry: LocalRegistry, workspace: Path) -> None:
    registry.register("m", "fp-1", _manifest(), _model())
    registry.stage("m", 2, "fp-x", _manifest(), _model(seed=1))
    registry.stage("m", 3, "fp-y", _manifest(), _model(seed=2))
    assert registry.register("m", "fp-2", _manifest(), _model(seed=3)).version == 2
    assert registry.register("m", "fp-3", _manifest(), _model(seed=4)).version == 3
    assert registry.register("m", "fp-4", _manifest(), _model(seed=5)).version == 4
    assert [v.fingerprint for v in registry.list("m")] == ["fp-1", "fp-2", "fp-3", "fp-4"]
    assert len(_set_aside(workspace, "m")) == 2


def test_an_indexed_version_directory_is_never_overwritten(registry: LocalRegistry, workspace: Path) -> None:
    first = registry.register("m", "fp-1", _manifest(), _model())
    before = (workspace / "models/m/1/manifest.json").read_bytes()
    with pytest.raises(InternalError, match="already exists; versions are immutable"):
        registry.stage("m", 1, "fp-9", _manifest(), _model(seed=9))
    assert (workspace / "models/m/1/manifest.json").read_bytes() == before
    assert registry.register("m", "fp-2", _manifest(), _model(seed=1)).version == 2
    assert registry.get("m", 1) == first and _set_aside(workspace, "m") == []
