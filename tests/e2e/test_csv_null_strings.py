"""CSV NULLs (issue 11, item 9): an empty unquoted field is NULL, a quoted empty string "" stays
an empty string, unless the source declares ``csv.null_strings``; a quoted "" in a column of
numbers is then a bad value whose message says how to read it as NULL (exit 4, nothing published)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import api
from tests.conftest import run_engine, write

SPEC = """
spec_version: 1
project: nulls
sources:
  people_raw: {{format: csv, path: data/people.csv{csv}}}
feature_groups:
  people:
    primary_key: [id]
    sql: SELECT id, nickname, age FROM people_raw
"""
PEOPLE = 'id,nickname,age\n1,"",30\n2,,40\n3,"ace",\n4,"NA",50\n'


def _project(root: Path, csv: str = "", people: str = PEOPLE) -> Path:
    write(root, "specs/nulls.yaml", SPEC.format(csv=csv))
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "data" / "people.csv").write_text(people)
    return root


def _rows(root: Path) -> dict[int, tuple]:
    code, out, err = run_engine("apply", str(root))
    assert code == 0, out + err
    frame = api.read_feature_group(root, "people")
    import pandas as pd

    return {int(r.id): (None if pd.isna(r.nickname) else r.nickname, None if pd.isna(r.age) else int(r.age)) for r in frame.itertuples()}


def test_a_quoted_empty_string_stays_text_and_an_empty_field_is_null(tmp_path) -> None:
    rows = _rows(_project(tmp_path / "p"))
    assert rows == {1: ("", 30), 2: (None, 40), 3: ("ace", None), 4: ("NA", 50)}


def test_declared_null_strings_are_null_quoted_or_not(tmp_path) -> None:
    rows = _rows(_project(tmp_path / "p", ', csv: {null_strings: ["", NA]}'))
    assert rows == {1: (None, 30), 2: (None, 40), 3: ("ace", None), 4: (None, 50)}


def test_a_quoted_empty_number_is_a_bad_value_that_names_the_fix(tmp_path) -> None:
    root = _project(tmp_path / "p", people='id,nickname,age\n1,"x",30\n2,"y",""\n')
    code, out, err = run_engine("apply", str(root))
    assert code == 4, out + err
    assert 'people.csv line 3 column age: cannot convert the quoted empty string "" to BIGINT' in err
    assert 'declare csv: {null_strings: [""]} on the source to read it as NULL' in err
    fixed = _project(tmp_path / "q", ', csv: {null_strings: [""]}', people='id,nickname,age\n1,"x",30\n2,"y",""\n')
    assert _rows(fixed) == {1: ("x", 30), 2: ("y", None)}


def test_spark_reads_one_null_string_and_validate_says_so(tmp_path) -> None:
    root = _project(tmp_path / "p", ', csv: {null_strings: ["", NA]}')
    code, out, err = run_engine("validate", str(root), "--backend", "spark")
    assert code == 3, out + err
    assert "sources.people_raw.csv.null_strings: the spark backend cannot read more than 1 null string in a CSV source" in out + err


@pytest.mark.parametrize("csv", ["", ', csv: {null_strings: [""]}'])
def test_validate_accepts_both_forms(tmp_path, csv) -> None:
    code, out, err = run_engine("validate", str(_project(tmp_path / "p", csv)))
    assert code == 0, out + err
