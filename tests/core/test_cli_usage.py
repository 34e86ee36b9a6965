"""Issue 13 item 7: usage mistakes are usage errors (exit 2) and unwritable workspaces I/O errors
(exit 74), never exit 1 "internal error". Each case used to end with a traceback hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_engine


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--threads", "-3"), "Invalid value for '--threads': -3 is not in the range 1<=x<=1024"),
        (("--threads", "0"), "Invalid value for '--threads'"),
        (("--memory-limit", "abc"), "'abc' is not a size: use e.g. 4GB, 512MiB or 80%"),
    ],
    ids=["negative_threads", "zero_threads", "memory_limit"],
)
def test_bad_resource_options_are_usage_errors(tiny_project: Path, args: tuple[str, ...], message: str) -> None:
    rc, _, err = run_engine("apply", str(tiny_project), *args)
    assert rc == 2, err
    assert message in err and "internal error" not in err
    assert not (tiny_project / ".engine/engine.duckdb").exists()


def test_a_workspace_that_cannot_be_created_is_an_io_error(tiny_project: Path) -> None:
    rc, _, err = run_engine("apply", str(tiny_project), "--workspace", "/proc/engine-workspace")
    assert rc == 74, err
    assert "cannot create the workspace /proc/engine-workspace" in err and "internal error" not in err


def test_a_nul_byte_in_a_spec_path_is_a_positioned_spec_error(tiny_project: Path) -> None:
    spec = tiny_project / "specs/shop.yaml"
    spec.write_text(spec.read_text().replace("path: data/users.csv", 'path: "data/users.csv\\0"'))
    rc, _, err = run_engine("validate", str(tiny_project))
    assert rc == 3, err
    assert "sources.users_raw.path: path 'data/users.csv\\x00' contains a NUL byte" in err
    assert "internal error" not in err


def test_good_resource_options_still_run(tiny_project: Path) -> None:
    rc, _, err = run_engine("apply", str(tiny_project), "--threads", "1", "--memory-limit", "512MiB")
    assert rc == 0, err


def test_a_run_time_sql_error_names_the_step_the_file_and_the_line(tiny_project: Path) -> None:
    """Issue 13 item 9: a SQL error at run time (here a conversion no check can foresee) is
    positioned on the feature group's sql key, names the step, and keeps DuckDB's reason."""
    spec = tiny_project / "specs/shop.yaml"
    spec.write_text(spec.read_text().replace("CAST(amount AS DOUBLE) AS amount", "CAST(CAST(user_id AS VARCHAR) || 'x' AS INTEGER) AS amount"))
    rc, _, err = run_engine("apply", str(tiny_project))
    assert rc == 5, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "specs/shop.yaml:10:10: feature_groups.orders.sql: feature_group:orders@1: " in last
    assert "Could not convert string '10x'" in last
