"""Project discovery and multi-file merging: layout rules, E6/Y4 duplicates across files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.errors import SpecError
from engine.spec.project_files import discover, load_spec

from .conftest import rendered


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder that is also the current directory (stable relative names)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def load_problems(path: Path | str) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return info.value


# --- discovery -----------------------------------------------------------------------------


def test_discover_file_in_plain_folder(project: Path) -> None:
    spec = write(project / "spec.yaml", "project: p\n")
    assert discover(spec) == (project.resolve(), (spec.resolve(),))


def test_discover_file_inside_specs_folder_roots_above_it(project: Path) -> None:
    spec = write(project / "specs" / "features.yaml", "project: p\n")
    write(project / "specs" / "other.yaml", "sources: {}\n")
    assert discover("specs/features.yaml") == (project.resolve(), (spec.resolve(),))


def test_discover_project_folder_with_specs(project: Path) -> None:
    b = write(project / "specs" / "b.yml", "")
    a = write(project / "specs" / "a.yaml", "")
    nested = write(project / "specs" / "sub" / "c.yaml", "")
    write(project / "specs" / ".hidden" / "x.yaml", "")
    write(project / "specs" / ".dotfile.yaml", "")
    write(project / "specs" / "notes.txt", "")
    write(project / "elsewhere.yaml", "")  # outside specs/: not part of the project
    root, files = discover(project)
    assert root == project.resolve()
    assert files == (a.resolve(), b.resolve(), nested.resolve())


def test_discover_specs_folder_itself(project: Path) -> None:
    a = write(project / "specs" / "a.yaml", "")
    assert discover(project / "specs") == (project.resolve(), (a.resolve(),))


def test_discover_plain_folder_skips_hidden_and_workspace(project: Path) -> None:
    a = write(project / "a.yaml", "")
    deep = write(project / "conf" / "z.yml", "")
    write(project / ".engine" / "state.yaml", "")
    write(project / ".github" / "workflows" / "ci.yml", "")
    root, files = discover(".")
    assert root == project.resolve()
    assert files == (a.resolve(), deep.resolve())


def test_discover_nothing_found(project: Path) -> None:
    (project / "empty").mkdir()
    write(project / "empty" / "readme.md", "")
    with pytest.raises(SpecError) as info:
        discover(project / "empty")
    assert "no spec files (*.yaml, *.yml) found in empty" in info.value.problems[0].message


def test_discover_missing_path(project: Path) -> None:
    with pytest.raises(SpecError) as info:
        discover(project / "nope.yaml")
    assert info.value.problems[0].message == "no such file or directory"


# --- merging -------------------------------------------------------------------------------


def test_merge_sections_across_files_with_source_map(project: Path) -> None:
    write(project / "specs" / "a.yaml", "spec_version: 1\nproject: flights\nsources:\n  raw: {format: csv}\n")
    write(project / "specs" / "b.yaml", "spec_version: 1\nsources:\n  more: {format: csv}\nmodels:\n  m: {}\nextra: 1\n")
    spec = load_spec(project)
    assert spec.root == project.resolve()
    assert [f.name for f in spec.files] == ["a.yaml", "b.yaml"]
    assert spec.data == {
        "spec_version": 1, "project": "flights",
        "sources": {"raw": {"format": "csv"}, "more": {"format": "csv"}},
        "models": {"m": {}}, "extra": 1,
    }
    raw = spec.source_map.locate(("sources", "raw", "format"))
    assert (raw.file, raw.line, raw.column) == ("specs/a.yaml", 4, 9)
    more = spec.source_map.locate(("sources", "more"))
    assert (more.file, more.line, more.column) == ("specs/b.yaml", 3, 3)
    assert spec.source_map.locate(("extra",)).file == "specs/b.yaml"
    assert spec.source_map.locate(()).file == "specs/a.yaml"


def test_e6_same_object_in_two_files(project: Path, golden) -> None:
    write(project / "specs" / "a.yaml", "feature_groups:\n  weather: {primary_key: [origin]}\n")
    write(project / "specs" / "b.yaml", "spec_version: 1\nfeature_groups:\n  weather: {primary_key: [x]}\n")
    error = load_problems(project)
    assert [p.render() for p in error.problems] == [
        "specs/b.yaml:3:3: feature_groups.weather: feature_group 'weather' is defined twice "
        "(also at specs/a.yaml:2:3) (rename one of them)"
    ]
    golden("e6_same_object_two_files", rendered(error))


def test_e6_same_name_in_two_kinds_case_folded(project: Path, golden) -> None:
    write(project / "specs" / "a.yaml", "sources:\n  weather: {format: csv}\n")
    write(project / "specs" / "b.yaml", "feature_groups:\n  Weather: {}\nmodels:\n  WEATHER: {}\n")
    error = load_problems(project)
    messages = [(p.file, p.line, p.message) for p in error.problems]
    assert messages == [
        ("specs/b.yaml", 2, "name 'Weather' is already used by source 'weather' at specs/a.yaml:2:3"),
        ("specs/b.yaml", 4, "name 'WEATHER' is already used by source 'weather' at specs/a.yaml:2:3"),
    ]
    golden("e6_name_used_by_other_kind", rendered(error))


def test_scalar_keys_must_agree(project: Path, golden) -> None:
    write(project / "specs" / "a.yaml", "spec_version: 1\nproject: flights\ndescription: same\n")
    write(project / "specs" / "b.yaml", "spec_version: true\nproject: planes\ndescription: same\n")
    error = load_problems(project)
    assert [(p.file, p.line, p.path) for p in error.problems] == [
        ("specs/b.yaml", 1, ("spec_version",)),
        ("specs/b.yaml", 2, ("project",)),
    ]
    assert "'planes' conflicts with 'flights' at specs/a.yaml:2:10" in error.problems[1].message
    golden("scalar_keys_conflict", rendered(error))


def test_top_level_must_be_mapping(project: Path, golden) -> None:
    write(project / "specs" / "list.yaml", "- a\n- b\n")
    write(project / "specs" / "empty.yaml", "# nothing\n")
    error = load_problems(project)
    assert len(error.problems) == 2
    assert all("must be a mapping at the top level" in p.message for p in error.problems)
    golden("top_level_not_mapping", rendered(error))


def test_non_mapping_section_is_kept_for_the_schema_step(project: Path) -> None:
    write(project / "specs" / "a.yaml", "sources:\n  raw: {format: csv}\n")
    write(project / "specs" / "b.yaml", "sources: [oops]\nmodels: 3\n")
    spec = load_spec(project)
    assert spec.data["sources"] == ["oops"]
    assert spec.data["models"] == 3
    assert spec.source_map.locate(("sources",)).file == "specs/b.yaml"


def test_problems_collected_across_files(project: Path) -> None:
    write(project / "specs" / "a.yaml", "sources:\n  a: 1\n  a: 2\n")
    write(project / "specs" / "b.yaml", "sources: [unclosed\n")
    write(project / "specs" / "c.yaml", "models: {x: !!python/name:os.system }\n")
    error = load_problems(project)
    assert [p.file for p in error.problems] == ["specs/a.yaml", "specs/b.yaml", "specs/c.yaml"]


def test_large_file_rejected_without_reading(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(project / "specs" / "ok.yaml", "project: p\n")
    big = project / "specs" / "big.yaml"
    with big.open("wb") as handle:
        handle.truncate(2 << 20)
    real_open = Path.open

    def guarded_open(self: Path, *args, **kwargs):
        assert self.name != "big.yaml", "a file over the cap was opened"
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", guarded_open)
    error = load_problems(project)
    assert [(p.file, p.message) for p in error.problems] == [("specs/big.yaml", "file larger than 1 MiB")]


def test_file_names_outside_cwd_are_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = write(tmp_path / "proj" / "spec.yaml", "a: 1\na: 2\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    error = load_problems(spec)
    assert error.problems[0].file == str(spec.resolve())
    assert os.path.isabs(error.problems[0].file)
