"""Helpers every test package shares: golden files and a UTC DuckDB connection."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"


def check_golden_file(path: Path, text: str) -> None:
    """Compare ``text`` with the golden file; ``ENGINE_UPDATE_GOLDEN=1`` (re)writes it — review the diff."""
    if os.environ.get("ENGINE_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"golden file {path} is missing (run with ENGINE_UPDATE_GOLDEN=1 and review it)"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"output differs from golden file {path}:\n--- got\n{text}--- expected\n{expected}"


def golden_checker(area: str, *, newline: bool = True) -> Callable[[str, str], None]:
    """``check(name, text)`` against ``tests/golden/<area>/<name>.txt``."""

    def check(name: str, text: str) -> None:
        if newline and not text.endswith("\n"):
            text += "\n"
        check_golden_file(GOLDEN / area / f"{name}.txt", text)

    return check


def utc_connection():
    """An in-memory DuckDB connection with the session pinned to UTC, as the engine runs it."""
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    return con


class RecordingConnection:
    """A DuckDB connection that appends the SQL it runs (``execute`` and ``sql``) to ``statements``:
    to tell which way a check went, by the queries it issued."""

    def __init__(self, con, statements: list[str] | None = None) -> None:
        self._con = con
        self.statements = [] if statements is None else statements

    def __getattr__(self, name):
        return getattr(self._con, name)

    def execute(self, sql, *args, **kwargs):
        self.statements.append(sql)
        return self._con.execute(sql, *args, **kwargs)

    def sql(self, sql, *args, **kwargs):
        self.statements.append(sql)
        return self._con.sql(sql, *args, **kwargs)


def edit_file(root: Path, old: str, new: str, rel: str = "specs/project.yaml") -> None:
    """Replace the first ``old`` in ``root/rel`` with ``new``; the test fails if ``old`` is not there."""
    path = root / rel
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def applied_tips(tmp_path_factory, name: str) -> Path:
    """The `engine init` tips project, applied once (the module's shared starting point)."""
    from engine.scaffold import init_project
    from tests.conftest import run_engine

    root = tmp_path_factory.mktemp(name) / "tips"
    init_project(root, "tips")
    code, out, err = run_engine("apply", str(root))
    assert code == 0, out + err
    return root


def private_copy(root: Path, tmp_path: Path) -> Path:
    """A copy of an applied project, workspace included, for one test to change."""
    import shutil

    dest = tmp_path / root.name
    shutil.copytree(root, dest, symlinks=True)
    return dest
