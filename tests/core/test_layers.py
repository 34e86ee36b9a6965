"""The layers are enforced: import-linter's contracts (pyproject.toml) hold on the package, and each
one breaks when a forbidden import is added — inside a function, where a cycle likes to hide.

The mutation runs on a copy of the package in tmp_path, so the working tree is never touched.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"]


def _lint(root: Path, *contracts: str) -> subprocess.CompletedProcess:
    args = [arg for c in contracts for arg in ("--contract", c)]
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    return subprocess.run([*LINT, "--no-cache", *args], cwd=root, capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def copy_of_engine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("layers")
    shutil.copytree(REPO / "engine", root / "engine", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def test_every_contract_is_kept() -> None:
    proc = _lint(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "6 kept, 0 broken" in proc.stdout


# (contract id, file that gets the import, the import statement, what the report names)
MUTATIONS = [
    ("duckdb-in-backend", "engine/store/offline.py", "import duckdb", "duckdb"),
    ("deltalake-in-lake", "engine/backends/duckdb/backend.py", "import deltalake", "deltalake"),
    ("layers", "engine/store/quality.py", "from engine.training import train", "engine.training.train"),
    ("layers", "engine/model/builder.py", "from engine.compiler import planner", "engine.compiler.planner"),
    ("serving-is-a-library", "engine/serving/scoring.py", "from engine.runtime import executor", "engine.runtime.executor"),
    ("no-cycles", "engine/runtime/handlers.py", "from engine.runtime import executor", ".handlers -> .executor"),
]


@pytest.mark.parametrize(("contract", "target", "statement", "reached"), MUTATIONS, ids=[f"{m[0]}:{m[1]}" for m in MUTATIONS])
def test_a_forbidden_import_inside_a_function_breaks_its_contract(copy_of_engine: Path, contract: str, target: str, statement: str, reached: str) -> None:
    path = copy_of_engine / target
    original = path.read_text(encoding="utf-8")
    try:
        path.write_text(original + f"\n\ndef _sneaky():\n    {statement}\n", encoding="utf-8")
        proc = _lint(copy_of_engine, contract)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "BROKEN" in proc.stdout and reached in proc.stdout, proc.stdout
    finally:
        path.write_text(original, encoding="utf-8")
    assert _lint(copy_of_engine, contract).returncode == 0
