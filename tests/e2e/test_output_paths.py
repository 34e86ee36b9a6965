"""A batch output may never replace what the project reads (issue 13, item 3; I4): not a declared
source's files (any file its path or glob matches, or could match once created), nor a spec file, a
SQL file or a Python module of the project. `engine validate` refuses such an output path (exit 3,
positioned on ``inference.<job>.output.path``), and the writer checks again before anything is
written (the filesystem may have changed since, or validate's check may have been bypassed)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from engine import api
from engine.errors import SpecError
from tests.conftest import run_engine, write
from tests.inference.conftest import make_project, spec_text

DEFAULT_OUTPUT = "path: out/january.parquet"


def _project(tmp_path: Path, output: str, *, edit=None) -> Path:
    root = make_project(tmp_path / "rides")
    text = spec_text().replace(DEFAULT_OUTPUT, f"path: {output}")
    if edit:
        text = edit(root, text)
    write(root, "specs/rides.yaml", text)
    return root


def _glob_source(root: Path, text: str) -> str:
    return text.replace("trips_raw: {format: csv, path: data/trips.csv}", 'trips_raw: {format: csv, path: "data/trips*.csv"}')


def _linked_data(root: Path, text: str) -> str:
    os.symlink(root / "data", root / "linked")
    return text


def _sql_file(root: Path, text: str) -> str:
    write(root, "queries/drivers.csv", "SELECT driver_id, rating, years FROM drivers_raw\n")
    return text.replace("sql: SELECT driver_id, rating, years FROM drivers_raw", "sql_file: queries/drivers.csv")


REFUSED = [
    ("source_file", "data/trips.csv", None, "source 'trips_raw'"),
    ("source_file_dotted", "./data/../data/trips.csv", None, "source 'trips_raw'"),
    ("other_source", "data/drivers.csv", None, "source 'drivers_raw'"),
    ("glob_could_match", "data/trips_scored.csv", _glob_source, "source 'trips_raw'"),
    ("through_a_link", "linked/drivers.csv", _linked_data, "source 'drivers_raw'"),
    ("sql_file", "queries/drivers.csv", _sql_file, "SQL file"),
]


@pytest.mark.parametrize(("case", "output", "edit", "what"), REFUSED, ids=[c[0] for c in REFUSED])
def test_validate_refuses_an_output_over_a_file_the_project_reads(tmp_path: Path, case: str, output: str, edit, what: str):
    root = _project(tmp_path, output, edit=edit)
    rc, _, err = run_engine("validate", str(root))
    assert rc == 3, err
    assert "inference.january.output.path: " in err and f"output path '{output}' would overwrite" in err and what in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("output", ["out/january.csv", "data/scores.csv", "predictions.jsonl"])
def test_validate_accepts_outputs_no_source_can_read(tmp_path: Path, output: str):
    root = _project(tmp_path, output)
    rc, _, err = run_engine("validate", str(root))
    assert rc == 0, err


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_writer_refuses_too_before_writing_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Defence in depth: with validate's check bypassed, the apply still refuses before any byte
    of the predictions is written, and the source data is untouched (I4)."""
    from engine.compiler import semantics

    monkeypatch.setattr(semantics._Checker, "check_output_path", lambda self, path, text: None)
    root = _project(tmp_path, "data/trips.csv")
    before = _sha(root / "data/trips.csv")
    with pytest.raises(SpecError, match=r"output path 'data/trips\.csv' would overwrite source 'trips_raw'"):
        api.apply(root)
    assert _sha(root / "data/trips.csv") == before
    assert not [p for p in (root / "data").iterdir() if p.name.startswith(".tmp-")]


def test_output_file_applies_the_rule_given_what_the_project_reads(tmp_path: Path):
    from engine.compiler.semantics import project_reads
    from engine.serving.outputs import output_file

    root = _project(tmp_path, "out/january.parquet", edit=_glob_source)
    reads = project_reads(api.validate(root).project)
    assert output_file(root, "out/january.parquet", reads=reads) == root.resolve() / "out/january.parquet"
    for text in ("data/trips.csv", "data/trips_2.csv", "data/drivers.csv"):
        with pytest.raises(SpecError, match="would overwrite source"):
            output_file(root, text, reads=reads)
