"""The "add a source format" recipe (docs/architecture.md, "… a source format"), followed by a test: a tab-separated
format is registered with the spec (a sniffer) and with the DuckDB backend (a reader), and a project
using ``format: tsv`` validates, applies and reads back. A format the spec knows but the backend cannot
read fails ``engine validate`` (exit 3) on the source's ``format`` key."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import api, backends
from engine.backends.duckdb import sources as duckdb_sources
from engine.errors import ExitCode, SpecError
from engine.model import formats
from engine.model.objects import Source
from engine.spec.schema import load_schema
from tests.conftest import write

TSV_SPEC = """
spec_version: 1
project: tabs
sources:
  trips_raw: {format: tsv, path: data/trips.tsv}
feature_groups:
  trips:
    primary_key: [trip_id]
    event_time: started_at
    sql: |
      SELECT trip_id, city, CAST(fare AS DOUBLE) AS fare, CAST(started_at AS TIMESTAMP) AS started_at
      FROM trips_raw
"""

TRIPS_TSV = "trip_id\tcity\tfare\tstarted_at\n1\tOslo\t12.5\t2024-01-01 08:00:00\n2\tBergen\t7.0\t2024-01-02 09:30:00\n"


def tsv_columns(path: Path, source: Source) -> dict[str, str] | None:
    """Step 1 of the recipe: how ``engine validate`` reads a file's columns without a database."""
    with formats.open_text(path) as fh:
        header = next(csv.reader(fh, delimiter="\t"), None)
    return {name: "UNKNOWN" for name in header} if header else None


def read_tsv(source: Source) -> tuple[str, list[object]]:
    """Step 2 of the recipe: the DuckDB SELECT that reads the files (paths travel as a parameter)."""
    return "SELECT * FROM read_csv(?, delim='\t', header=true, union_by_name=true)", [[str(p) for p in source.resolved_paths]]


@pytest.fixture
def tsv_format() -> Iterator[None]:
    """``tsv`` known to the spec only (no backend reader yet)."""
    formats.register_format(formats.SourceFormatSpec("tsv", tsv_columns))
    try:
        yield
    finally:
        formats.unregister_format("tsv")


@pytest.fixture
def tsv_reader(tsv_format: None) -> Iterator[None]:
    """``tsv`` known to the spec and read by the DuckDB backend."""
    duckdb_sources.register_reader("tsv", read_tsv)
    try:
        yield
    finally:
        duckdb_sources.unregister_reader("tsv")


@pytest.fixture
def tsv_project(tmp_path: Path) -> Path:
    root = tmp_path / "tabs"
    write(root, "specs/tabs.yaml", TSV_SPEC)
    (root / "data").mkdir()
    (root / "data/trips.tsv").write_text(TRIPS_TSV, encoding="utf-8")
    return root


def test_the_schema_file_lists_exactly_the_registered_formats() -> None:
    """Step 3 of the recipe: the shipped schema's enum (what editors see) equals the registry."""
    assert load_schema()["$defs"]["source_format"]["enum"] == list(formats.format_names())
    assert load_schema(formats.format_names()) is load_schema()
    assert set(formats.format_names()) == backends.capabilities().source_formats


def test_a_registered_format_validates_applies_and_reads_back(tsv_reader: None, tsv_project: Path) -> None:
    assert "tsv" in load_schema(formats.format_names())["$defs"]["source_format"]["enum"]
    assert "tsv" in backends.capabilities().source_formats
    checked = api.validate(tsv_project)
    assert checked.columns["trips_raw"] == {"trip_id": "UNKNOWN", "city": "UNKNOWN", "fare": "UNKNOWN", "started_at": "UNKNOWN"}
    result = api.apply(tsv_project)
    assert result.run is not None and result.run.ran == 2  # the source and the feature group
    frame = api.read_feature_group(tsv_project, "trips").sort_values("trip_id").reset_index(drop=True)
    assert frame[["trip_id", "city", "fare"]].to_dict("records") == [
        {"trip_id": 1, "city": "Oslo", "fare": 12.5},
        {"trip_id": 2, "city": "Bergen", "fare": 7.0},
    ]
    assert api.apply(tsv_project).run is None  # unchanged: nothing runs


def test_a_format_the_backend_cannot_read_fails_validate_on_the_format_key(tsv_format: None, tsv_project: Path) -> None:
    assert "tsv" not in backends.capabilities().source_formats
    with pytest.raises(SpecError) as info:
        api.validate(tsv_project)
    assert info.value.exit_code == ExitCode.SPEC_INVALID
    [problem] = info.value.problems
    assert (problem.path, problem.message) == (("sources", "trips_raw", "format"), "the duckdb backend cannot read 'tsv' sources")
    assert problem.file.endswith("tabs.yaml") and problem.line == 4 and problem.hint == "use one of: csv, jsonl, parquet"


def test_an_unregistered_format_is_a_schema_error_with_a_hint(tsv_project: Path) -> None:
    with pytest.raises(SpecError) as info:
        api.validate(tsv_project)
    assert info.value.exit_code == ExitCode.SPEC_INVALID
    assert [(p.path, p.message) for p in info.value.problems] == [(("sources", "trips_raw", "format"), "'tsv' is not one of csv, parquet, jsonl")]
