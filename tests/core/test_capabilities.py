"""A spec that needs a capability the chosen backend lacks fails `engine validate` (exit 3),
positioned on the key that needs it, before anything runs (issue 7, STYLE habit 9)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine import api, backends
from engine.errors import ExitCode, SpecError


def _limited(**flags):
    return dataclasses.replace(backends.capabilities("duckdb"), **flags)


def _problems(monkeypatch: pytest.MonkeyPatch, root: Path, **flags) -> list:
    monkeypatch.setattr("engine.project._capabilities", lambda name: _limited(**flags))
    with pytest.raises(SpecError) as info:
        api.validate(root)
    assert info.value.exit_code == ExitCode.SPEC_INVALID
    return info.value.problems


def test_the_default_backend_can_do_everything_the_tiny_project_needs(tiny_project: Path) -> None:
    assert api.validate(tiny_project).project.name == "shop"
    assert {"csv", "parquet", "jsonl"} <= backends.capabilities().source_formats


def test_a_source_format_the_backend_cannot_read_is_positioned_on_format(tiny_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    problems = _problems(monkeypatch, tiny_project, source_formats=frozenset({"parquet"}))
    assert [(p.path, p.message) for p in problems] == [
        (("sources", "orders_raw", "format"), "the duckdb backend cannot read 'csv' sources"),
        (("sources", "users_raw", "format"), "the duckdb backend cannot read 'csv' sources"),
    ]
    assert all(p.file.endswith("shop.yaml") and p.line > 0 for p in problems)
    assert problems[0].hint == "use one of: parquet"


def test_python_feature_functions_need_python_transforms(tiny_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    problems = _problems(monkeypatch, tiny_project, python_transforms=False)
    assert [(p.path, p.message) for p in problems] == [
        (("feature_groups", "users", "python"), "the duckdb backend cannot run Python feature functions"),
    ]


def test_quarantine_needs_quarantine_rows(tiny_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tiny_project / "specs/shop.yaml"
    text = spec.read_text()
    spec.write_text(text.replace("orders_raw: {format: csv, path: data/orders.csv, timezone: America/New_York}", "orders_raw: {format: csv, path: data/orders.csv, timezone: America/New_York, on_bad_rows: quarantine}"))
    assert "on_bad_rows: quarantine" in spec.read_text()
    problems = _problems(monkeypatch, tiny_project, quarantine_rows=False)
    assert [(p.path, p.message, p.hint) for p in problems] == [
        (("sources", "orders_raw", "on_bad_rows"), "the duckdb backend cannot quarantine bad rows", "use on_bad_rows: fail"),
    ]


def test_unknown_backend_is_a_usage_error() -> None:
    from engine.errors import UsageError

    with pytest.raises(UsageError, match="unknown backend 'duckbd' \\(did you mean 'duckdb'\\?\\)"):
        backends.load("duckbd")
