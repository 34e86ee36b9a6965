"""Commits and time travel (issue 8): every apply of a feature group is a commit of its offline
table; any recorded commit reads back by number or time (API and `engine show --as-of`) until
`engine gc` removes it after `storage.retention`."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine import api
from engine.errors import UsageError
from tests.conftest import ORDERS_CSV, run_engine

MORE = "6,11,9.0,2024-01-07 08:00:00\n"


def _two_commits(root: Path) -> list[dict]:
    api.apply(root)
    (root / "data/orders.csv").write_text(ORDERS_CSV + MORE)
    api.apply(root)
    commits = api.show_feature_group(root, "orders")["commits"]
    assert len(commits) == 2 and commits[0]["version"] < commits[1]["version"]
    return commits


def test_each_apply_is_a_commit_and_every_commit_reads_back(tiny_project: Path):
    first, second = _two_commits(tiny_project)
    assert len(api.read_feature_group(tiny_project, "orders", as_of=first["version"])) == 5
    assert len(api.read_feature_group(tiny_project, "orders", as_of=second["version"])) == 6
    assert len(api.read_feature_group(tiny_project, "orders", as_of=first["committed_at"])) == 5
    between = datetime.fromisoformat(second["committed_at"]) - timedelta(microseconds=1)
    assert len(api.read_feature_group(tiny_project, "orders", as_of=between)) == 5
    assert len(api.read_feature_group(tiny_project, "orders")) == 6
    assert first["run_id"] != second["run_id"] and first["run_id"]
    with pytest.raises(UsageError, match="did not exist at"):
        api.read_feature_group(tiny_project, "orders", as_of=datetime(2000, 1, 1, tzinfo=UTC))

    rc, out, err = run_engine("show", str(tiny_project), "feature_group", "orders", "--as-of", str(first["version"]))
    assert rc == 0, err
    assert "5 rows" in out and f"as of commit {first['version']}" in out and "commits: 2" in out
    rc, out, err = run_engine("show", str(tiny_project), "feature_group", "orders", "--as-of", first["committed_at"], "--format", "json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["as_of"]["version"] == first["version"] and doc["row_count"] == 5
    rc, _, err = run_engine("show", str(tiny_project), "feature_group", "orders", "--as-of", "99")
    assert rc == 2 and "has no commit 99" in err
    rc, _, err = run_engine("show", str(tiny_project), "feature_groups", "--as-of", "1")
    assert rc == 2 and "--as-of applies to one feature group" in err


def test_gc_keeps_commits_younger_than_the_retention(tiny_project: Path):
    first, _ = _two_commits(tiny_project)
    api.gc(tiny_project)  # default retention 7d: nothing of either commit goes
    assert len(api.read_feature_group(tiny_project, "orders", as_of=first["version"])) == 5


def test_gc_after_the_retention_removes_old_commits_and_keeps_the_current_state(tiny_project: Path):
    spec = tiny_project / "specs/shop.yaml"
    spec.write_text(spec.read_text().replace("project: shop\n", "project: shop\nstorage: {retention: 1s}\n"))
    first, _ = _two_commits(tiny_project)
    table = tiny_project / ".engine/tables/offline/orders__v1"
    before = sorted(p.relative_to(table).as_posix() for p in table.rglob("*.parquet"))
    time.sleep(1.2)
    removed = api.gc(tiny_project)
    assert any(str(p).startswith(str(table)) for p in removed)
    after = sorted(p.relative_to(table).as_posix() for p in table.rglob("*.parquet"))
    assert len(after) < len(before)
    with pytest.raises(UsageError, match="has no commit"):
        api.read_feature_group(tiny_project, "orders", as_of=first["version"])
    assert len(api.read_feature_group(tiny_project, "orders")) == 6
    assert api.check(tiny_project) == []
    api.apply(tiny_project)  # still consistent: nothing to do
    assert len(api.read_feature_group(tiny_project, "orders")) == 6


def test_a_bad_retention_is_a_positioned_spec_error(tiny_project: Path):
    spec = tiny_project / "specs/shop.yaml"
    spec.write_text(spec.read_text().replace("project: shop\n", "project: shop\nstorage: {retention: 7x}\n"))
    rc, _, err = run_engine("validate", str(tiny_project))
    assert rc == 3, err
    assert "specs/shop.yaml:3" in err and "storage.retention" in err
