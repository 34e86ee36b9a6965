"""Kinds are typed variants (STYLE habit 5): the builder turns ``mode``, ``split.by`` and
``on_bad_rows`` into enums, and each enum fingerprints exactly as the string it replaced, so no
stored step or model changes (STYLE habit 7)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from engine import api
from engine.compiler.fingerprint import _canonical, definition_fingerprint
from engine.model import objects as m
from tests.inference.conftest import make_project


def test_the_builder_makes_enums_of_modes_split_kinds_and_bad_rows(tmp_path: Path, tiny_project: Path) -> None:
    project = api.validate(make_project(tmp_path / "rides")).project
    assert {n: j.mode for n, j in project.inference.items()} == {"january": m.InferenceMode.BATCH, "live": m.InferenceMode.STREAM}
    assert all(type(j.mode) is m.InferenceMode for j in project.inference.values())
    assert all(type(model.split.by) is m.SplitKind and model.split.by is m.SplitKind.TIME for model in project.models.values())
    sources = api.validate(tiny_project).project.sources.values()
    assert all(s.on_bad_rows is m.BadRows.FAIL for s in sources)
    assert all(type(s.format) is str for s in sources)


def test_enums_fingerprint_exactly_as_the_strings_they_replaced() -> None:
    job = m.InferenceJob(name="j", mode=m.InferenceMode.BATCH, model="model_a", range=("2024-01-01", "2024-02-01"))
    assert definition_fingerprint(job) == definition_fingerprint(dataclasses.replace(job, mode="batch"))
    model = m.Model(name="a", feature_view="v", feature_view_version=None, estimator="sklearn.linear_model.LogisticRegression",
                    split=m.Split(by=m.SplitKind.TIME, test_from="2024-01-01"))
    assert definition_fingerprint(model) == definition_fingerprint(dataclasses.replace(model, split=m.Split(by="time", test_from="2024-01-01")))
    # The default split is left out of the fingerprint whether it is spelled as an enum or a string.
    default = dataclasses.replace(model, split=m.Split(by=m.SplitKind.RANDOM, test_size=0.2))
    assert definition_fingerprint(default) == definition_fingerprint(dataclasses.replace(model, split=m.Split(by="random", test_size=0.2)))
    assert "split" not in repr(_canonical(default))
    source = m.Source(name="s", format=m.SourceFormat.CSV, path="data/s.csv", resolved_paths=(), on_bad_rows=m.BadRows.QUARANTINE)
    assert definition_fingerprint(source) == definition_fingerprint(dataclasses.replace(source, on_bad_rows="quarantine"))


def test_enum_members_read_as_their_value_in_messages() -> None:
    assert f"{m.InferenceMode.ONLINE} {m.SplitKind.TIME} {m.BadRows.QUARANTINE}" == "online time quarantine"

