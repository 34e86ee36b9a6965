"""Promotion gates, `engine show models` and `engine compare` end to end (issue 10, item 5): an
alias moves to a retrained version only when its gate holds; the apply says why it stayed; a gate
on a metric the model does not compute is exit 3 at validate, positioned on the gate."""

from __future__ import annotations

import json
from pathlib import Path

from engine import api
from tests.conftest import run_engine
from tests.e2e.test_training import SPEC, rides  # noqa: F401 (the fixture)

XGB = """    params: {n_estimators: 20, max_depth: 3}
    split: {by: time, test_from: "2024-02-01"}
    metrics: [roc_auc, accuracy]
    aliases: [production]
"""


def _gated(root: Path, aliases: str, params: str = "{n_estimators: 20, max_depth: 3}") -> None:
    spec = root / "specs/rides.yaml"
    body = XGB.replace("aliases: [production]", aliases).replace("{n_estimators: 20, max_depth: 3}", params)
    spec.write_text(SPEC.lstrip().replace(XGB, body))


def _holders(root: Path) -> dict[str, int]:
    return {alias: m["version"] for m in api.list_models(root) if m["name"] == "tips_xgb" for alias in m["aliases"]}


def _auc(root: Path, version: int) -> float:
    return next(m for m in api.list_models(root) if m["name"] == "tips_xgb" and m["version"] == version)["metrics"]["test"]["roc_auc"]


def test_an_alias_moves_only_when_its_gate_holds(rides: Path) -> None:  # noqa: F811
    aliases = """aliases:
      production: {when: roc_auc >= current}
      staging:
      never: {when: [roc_auc >= 2, accuracy >= 0]}
      leap: {when: roc_auc >= current + 2}
      always: {when: roc_auc >= current - 2}"""
    _gated(rides, aliases)
    rc, out, err = run_engine("apply", str(rides))
    assert rc == 0, err
    # The first version: nothing to beat yet, except a fixed bar no AUC reaches.
    assert _holders(rides) == {"production": 1, "staging": 1, "leap": 1, "always": 1}
    assert "alias 'never' names no version yet: test roc_auc" in err and "< 2;" in err

    _gated(rides, aliases, params="{n_estimators: 2, max_depth: 1}")  # a retrained, different model
    rc, out, err = run_engine("apply", str(rides), "--format", "json")
    assert rc == 0, err
    step = next(s for s in json.loads(out)["steps"] if s["id"] == "model:tips_xgb")
    better = _auc(rides, 2) >= _auc(rides, 1)  # the oracle: the gate's comparison, done here
    assert _holders(rides) == {"production": 2 if better else 1, "staging": 2, "leap": 1, "always": 2}
    notes = step["notes"]
    assert any(n.startswith("alias 'never' names no version yet") for n in notes)
    assert any(n.startswith("alias 'leap' stays on model:tips_xgb@1: test roc_auc") and "+ 2" in n for n in notes)
    if not better:
        assert f"alias 'production' stays on model:tips_xgb@1: test roc_auc {_auc(rides, 2):.4g} < model:tips_xgb@1's {_auc(rides, 1):.4g}" in notes

    # `engine compare` shows the two side by side; the deltas are b - a, and "better" follows the
    # metric's direction.
    rc, out, err = run_engine("compare", str(rides), "tips_xgb@1", "@2", "--format", "json")
    assert rc == 0, err
    doc = json.loads(out)
    assert (doc["a"]["version"], doc["b"]["version"]) == (1, 2)
    params = {p["name"]: p for p in doc["params"]}
    assert params["n_estimators"] == {"name": "n_estimators", "a": 20, "b": 2, "same": False}
    auc = next(m for m in doc["metrics"] if (m["split"], m["metric"]) == ("test", "roc_auc"))
    assert auc["delta"] == auc["b"] - auc["a"]
    assert auc["better"] == (None if auc["delta"] == 0 else "b" if auc["delta"] > 0 else "a")
    rc, text, err = run_engine("compare", "tips_xgb@1", "tips_xgb@latest", "--project", str(rides))
    assert rc == 0, err
    assert "a: model:tips_xgb@1" in text and "b: model:tips_xgb@2" in text and "n_estimators" in text and "*" in text

    rc, text, err = run_engine("show", "models", "--project", str(rides))
    assert rc == 0, err
    assert "params" in text and "n_estimators=2" in text and "n_estimators=20" in text


def test_a_gate_on_a_metric_the_model_does_not_compute_fails_validate_on_the_gate(rides: Path) -> None:  # noqa: F811
    _gated(rides, """aliases:
      production: {when: log_loss <= current}
      staging: {when: validation.roc_auc >= current}""")
    rc, out, err = run_engine("validate", str(rides))
    assert rc == 3, out + err
    spec = (rides / "specs/rides.yaml").read_text().splitlines()
    line = next(i for i, text in enumerate(spec, 1) if "log_loss <= current" in text)
    assert f"specs/rides.yaml:{line}:" in err
    assert "models.tips_xgb.aliases.production.when" in err
    assert "needs 'log_loss', which model 'tips_xgb' does not compute (its metrics: roc_auc, accuracy)" in err
    assert "reads the validation split, and model 'tips_xgb' has none" in err
    assert "2 problems found." in err
    assert not (rides / ".engine").exists()

    _gated(rides, """aliases:
      canary: {when: [roc_auc >= current, roc_auc >> current]}""")
    rc, out, err = run_engine("validate", str(rides))
    assert rc == 3, out + err
    assert "models.tips_xgb.aliases.canary.when[1]" in err or "models.tips_xgb.aliases.canary.when.1" in err, err
    assert "cannot read the condition 'roc_auc >> current'" in err

    # 'latest' is a selector (model@latest), never an alias: refused at validate, not after training.
    for aliases, key in (("aliases: [production, latest]", "aliases[1]"), ("aliases:\n      latest: {when: roc_auc >= current}", "aliases.latest")):
        _gated(rides, aliases)
        rc, out, err = run_engine("validate", str(rides))
        assert rc == 3, out + err
        assert f"models.tips_xgb.{key}: 'latest' cannot be an alias: model@latest already selects the newest version" in err, err


def test_adding_a_gate_moves_no_alias_and_trains_no_new_version(rides: Path) -> None:  # noqa: F811
    rc, _, err = run_engine("apply", str(rides))
    assert rc == 0, err
    _gated(rides, """aliases:
      production: {when: roc_auc >= current + 2}""")
    rc, out, err = run_engine("apply", str(rides))
    assert rc == 0, err
    assert [(m["name"], m["version"], m["aliases"]) for m in api.list_models(rides) if m["name"] == "tips_xgb"] == [("tips_xgb", 1, ["production"])]
