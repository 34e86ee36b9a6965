"""The specs agree with the code and data: files exist, references resolve, expectations hold."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

SCHEMA_LINE = "# yaml-language-server: $schema=../../../schemas/engine.schema.json"


def _spec_files(root: Path) -> list[Path]:
    return sorted((root / "specs").glob("*.yaml"))


@pytest.fixture(scope="module")
def specs(project_root) -> dict[str, dict]:
    """Every spec file, parsed (plain safe_load is fine for our own trusted files)."""
    return {p.name: yaml.safe_load(p.read_text(encoding="utf-8")) for p in _spec_files(project_root)}


@pytest.fixture(scope="module")
def groups(specs) -> dict[str, dict]:
    merged: dict[str, dict] = {}
    for doc in specs.values():
        for name, body in (doc.get("feature_groups") or {}).items():
            assert name not in merged, f"feature group {name} declared twice"
            merged[name] = body
    return merged


def test_spec_files_start_with_schema_line_and_declare_project_once(project_root, specs) -> None:
    for path in _spec_files(project_root):
        assert path.read_text(encoding="utf-8").splitlines()[0] == SCHEMA_LINE, path.name
    assert [doc.get("project") for doc in specs.values() if "project" in doc] == ["flights"]
    assert all(doc.get("spec_version") == 1 for doc in specs.values())
    # Training lives in its own file, so feature pipelines can be reviewed on their own.
    assert [name for name, doc in specs.items() if {"feature_views", "models"} & set(doc)] == ["training.yaml"]


def test_sources_match_data_files(project_root, specs, sources) -> None:
    declared = specs["sources.yaml"]["sources"]
    assert set(declared) == set(sources)
    for name, body in declared.items():
        assert list(project_root.glob(body["path"])), name
    assert declared["flights_raw"]["timezone"] == "America/New_York"


def test_sql_groups_are_the_sql_files(project_root, groups, sql_groups) -> None:
    by_file = {name: body["sql_file"] for name, body in groups.items() if "sql_file" in body}
    assert set(by_file) == set(sql_groups)
    for name, file in by_file.items():
        assert file == f"sql/{name}.sql" and (project_root / file).is_file()


def test_python_references_resolve(specs, groups) -> None:
    refs = [body["python"] for body in groups.values() if "python" in body]
    for doc in specs.values():
        refs += [body["python"] for body in (doc.get("functions") or {}).values()]
    assert len(refs) >= 6
    for ref in refs:
        module, function = ref.split(":")
        assert callable(getattr(importlib.import_module(module), function)), ref


def test_function_inputs_are_flights_columns(con, specs) -> None:
    columns = {row[0] for row in con.sql("DESCRIBE flights").fetchall()}
    for name, body in specs["functions.yaml"]["functions"].items():
        assert set(body["inputs"]) <= columns, name


def _table_columns(con, name: str) -> set[str]:
    return {row[0] for row in con.sql(f"DESCRIBE {name}").fetchall()}


def test_keys_event_times_and_aggregated_columns_exist(con, groups, sql_groups) -> None:
    for name, body in groups.items():
        table = body.get("from", name)
        if table not in set(sql_groups):
            continue  # python group (checked with data below)
        columns = _table_columns(con, table)
        assert set(body["primary_key"]) <= columns, name
        assert body.get("event_time") is None or body["event_time"] in columns, name
        for agg in body.get("aggregations", []):
            assert agg["column"] in columns, (name, agg)
        for bin_ in body.get("binning", []):
            assert bin_["column"] in columns, (name, bin_)
        if "pca" in body:
            assert set(body["pca"]["columns"]) | set(body["pca"]["keep"]) <= columns


def _failures(con, table: str, expectation: dict) -> int:
    """Rows (or 1 for a table-level check) violating one expectation, computed in DuckDB."""
    if "row_count" in expectation:
        (n,) = con.sql(f"SELECT count(*) FROM {table}").fetchall()[0]
        low, high = expectation["row_count"].get("min"), expectation["row_count"].get("max")
        return int((low is not None and n < low) or (high is not None and n > high))
    column = f'"{expectation["column"]}"'
    if expectation.get("not_null"):
        where = f"{column} IS NULL"
    elif expectation.get("unique"):
        return con.sql(f"SELECT count({column}) - count(DISTINCT {column}) FROM {table}").fetchall()[0][0]
    elif "between" in expectation:
        low, high = expectation["between"]
        parts = ([f"{column} < {low}"] if low is not None else []) + (
            [f"{column} > {high}"] if high is not None else []
        )
        where = " OR ".join(parts)
    elif "in_set" in expectation:
        values = ", ".join(repr(v) for v in expectation["in_set"])
        where = f"{column} NOT IN ({values})"
    elif "regex" in expectation:
        where = f"NOT regexp_full_match({column}, '{expectation['regex']}')"
    else:
        raise AssertionError(f"unknown expectation {expectation}")
    return con.sql(f"SELECT count(*) FROM {table} WHERE {where}").fetchall()[0][0]


def test_expectations_hold_on_committed_data(con, groups, project_root, sql_groups) -> None:
    """F-block guard for the example itself: a fresh apply must not stop on a data check."""
    import pandas as pd

    from flight_features.planes import plane_features

    planes = plane_features(pd.read_parquet(project_root / "data" / "planes.parquet"))
    con.register("planes", planes)
    checked = 0
    for name, body in groups.items():
        if name not in set(sql_groups) | {"planes"}:
            continue  # built-in outputs are the engine's to test
        for expectation in body.get("expectations", []):
            assert _failures(con, name, expectation) == 0, (name, expectation)
            checked += 1
    assert checked >= 25


def test_a_broken_expectation_is_detected(con) -> None:
    """The checker above can fail: origin outside the three NYC airports is caught."""
    assert _failures(con, "flights", {"column": "origin", "in_set": ["EWR", "JFK"]}) > 100_000
    assert _failures(con, "flights", {"column": "tailnum", "regex": "^N[0-9A-Z]+$"}) > 0


def test_engine_accepts_the_project(project_root) -> None:
    """The engine's whole validation (schema, files, model, semantic checks) passes."""
    from engine import api

    project = api.validate(project_root).project
    names = set(project.feature_groups)
    assert {"flights", "weather", "weather_windows", "planes", "route_delay_history"} <= names
