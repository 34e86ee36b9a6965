"""ModelRegistry contract: register, resolve every selector, load identical predictions,
idempotent registration, aliases, ordering and integrity (RELIABILITY G5, I3). Runs once per
registry implementation; tiny scikit-learn and XGBoost models, as in tests/registry.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import EngineError, UsageError
from engine.registry.base import ModelRegistry, ModelVersion
from tests.registry.test_registry import _X as _data
from tests.registry.test_registry import _manifest, _model


@pytest.mark.parametrize("kind", ["logreg", "xgb"])
def test_register_get_and_load_predict_identically(registry, kind) -> None:
    assert isinstance(registry, ModelRegistry)
    model = _model(kind)
    mv = registry.register("delay_model", "fp-1", _manifest(roc_auc=0.8), model)
    assert isinstance(mv, ModelVersion)
    assert (mv.name, mv.version, mv.fingerprint, mv.aliases) == ("delay_model", 1, "fp-1", ())
    assert mv.ref == "model:delay_model@1" and mv.created_at
    assert mv.manifest["metrics"]["test"] == {"roc_auc": 0.8} and mv.manifest["feature_view"] == "delays"
    for selector in (None, "latest", 1, "1"):
        assert registry.get("delay_model", selector) == mv
    X, _ = _data(7)
    loaded = registry.load(registry.get("delay_model"))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_versions_count_up_and_list_orders_by_name_then_version(registry) -> None:
    for i in range(3):
        registry.register("delay_model", f"fp-{i}", _manifest(), _model(seed=i))
    registry.register("churn", "fp-x", _manifest(), _model(seed=9))
    assert [(mv.name, mv.version) for mv in registry.list()] == [("churn", 1), ("delay_model", 1), ("delay_model", 2), ("delay_model", 3)]
    assert [mv.version for mv in registry.list("delay_model")] == [1, 2, 3]
    assert registry.list("nothing") == []
    assert registry.get("delay_model").version == 3
    assert registry.get("delay_model", 2).fingerprint == "fp-1"


def test_same_fingerprint_registers_nothing_new(registry) -> None:
    first = registry.register("m", "fp-1", _manifest(roc_auc=0.8), _model())
    again = registry.register("m", "fp-1", _manifest(roc_auc=0.1), _model(seed=5))
    assert again == first
    assert [mv.version for mv in registry.list()] == [1]
    assert registry.find_by_fingerprint("m", "fp-1") == first
    assert registry.find_by_fingerprint("m", "fp-2") is None
    assert registry.find_by_fingerprint("other", "fp-1") is None


def test_best_by_metric_respects_direction(registry) -> None:
    """Higher is better for roc_auc; lower for log_loss and rmse; versions without it are skipped;
    ties go to the newest."""
    registry.register("m", "a", _manifest(roc_auc=0.70, log_loss=0.40, rmse=3.0, accuracy=0.5), _model(seed=0))
    registry.register("m", "b", _manifest(roc_auc=0.90, log_loss=0.55, accuracy=0.5), _model(seed=1))
    registry.register("m", "c", _manifest(roc_auc=0.80, log_loss=0.35), _model(seed=2))
    registry.register("m", "d", _manifest(), _model(seed=3))
    assert registry.get("m", "best:roc_auc").version == 2
    assert registry.get("m", "best:log_loss").version == 3
    assert registry.get("m", "best:rmse").version == 1
    assert registry.get("m", "best:accuracy").version == 2


def test_aliases_point_at_one_version_and_move(registry) -> None:
    for i in range(3):
        registry.register("m", f"fp-{i}", _manifest(), _model(seed=i))
    registry.set_alias("m", "production", 1)
    registry.set_alias("m", "staging", 3)
    assert registry.get("m", "production").version == 1
    registry.set_alias("m", "production", 2)
    assert registry.get("m", "production").version == 2
    assert [mv.aliases for mv in registry.list("m")] == [(), ("production",), ("staging",)]


UNKNOWN = {
    "model": lambda r: r.get("delay_modle"),
    "version": lambda r: r.get("delay_model", 9),
    "alias": lambda r: r.get("delay_model", "canary"),
    "metric": lambda r: r.get("delay_model", "best:f1"),
    "alias on an unknown version": lambda r: r.set_alias("delay_model", "production", 5),
    "reserved alias": lambda r: r.set_alias("delay_model", "latest", 1),
}


@pytest.mark.parametrize("case", sorted(UNKNOWN))
def test_unknown_names_versions_aliases_and_metrics_are_usage_errors(registry, case) -> None:
    registry.register("delay_model", "fp-1", _manifest(roc_auc=0.8), _model())
    registry.set_alias("delay_model", "production", 1)
    with pytest.raises(UsageError):
        UNKNOWN[case](registry)
    assert registry.get("delay_model", "production").version == 1


def test_an_empty_registry_knows_no_model(registry) -> None:
    assert registry.list() == []
    with pytest.raises(UsageError, match="delay_model"):
        registry.get("delay_model")


def test_G5_I3_check_is_empty_when_healthy_and_reports_a_tampered_artifact(registry, registry_impl) -> None:
    registry.register("m", "fp-1", _manifest(), _model())
    second = registry.register("m", "fp-2", _manifest(), _model(seed=1))
    assert registry.check() == [] and registry.gc() == []
    registry_impl.tamper(registry, second)
    problems = registry.check()
    assert len(problems) == 1 and "model:m@2" in problems[0]
    with pytest.raises(EngineError):
        registry.load(second)
    X, _ = _data()
    np.testing.assert_array_equal(registry.load(registry.get("m", 1)).predict(X), _model().predict(X))
