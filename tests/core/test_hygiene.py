"""Code hygiene that a scan can prove (RELIABILITY J3, C3 static part)."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "engine"

BANNED_CALLS = {
    ("yaml", "load"), ("yaml", "full_load"), ("yaml", "unsafe_load"), ("yaml", "compose"),
    ("pickle", "load"), ("pickle", "loads"), ("joblib", "load"), ("dill", "load"), ("dill", "loads"),
}
BANNED_IMPORTS = {"pickle", "joblib", "dill", "cloudpickle"}


def _modules():
    for path in sorted(ENGINE.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_j3_no_unsafe_loaders_anywhere_in_the_engine():
    found = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
                if (node.func.value.id, node.func.attr) in BANNED_CALLS:
                    found.append(f"{path.relative_to(ENGINE.parent)}:{node.lineno} {node.func.value.id}.{node.func.attr}")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                found += [f"{path.relative_to(ENGINE.parent)}:{node.lineno} import {n}" for n in names if n.split(".")[0] in BANNED_IMPORTS]
            if isinstance(node, ast.keyword) and node.arg == "Loader" and "Loader" in ast.unparse(node.value) and "Safe" not in ast.unparse(node.value):
                found.append(f"{path.relative_to(ENGINE.parent)}:{node.lineno} Loader={ast.unparse(node.value)}")
    assert found == []


def test_c3_engine_never_opens_the_database_file_itself():
    """V8: an open()/close() of the .duckdb file in the holding process drops DuckDB's lock."""
    found = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                text = ast.unparse(node)
                is_open = isinstance(node.func, ast.Name) and node.func.id == "open" or text.startswith(("os.open(", "shutil.copy"))
                if is_open and ("duckdb" in text or ".database" in text):
                    found.append(f"{path.relative_to(ENGINE.parent)}:{node.lineno} {text[:80]}")
    assert found == []


def test_dependency_floors_in_pyproject():
    """J3: floors that exclude known-unsafe releases."""
    import tomllib

    deps = tomllib.loads((ENGINE.parent / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = {d.split(">=")[0]: d.split(">=")[1] for d in deps if ">=" in d}
    assert tuple(map(int, floors["pyyaml"].split("."))) >= (5, 4)
    assert tuple(map(int, floors["skops"].split("."))) >= (0, 13)
    assert tuple(map(int, floors["jsonschema"].split("."))) >= (4, 18)
