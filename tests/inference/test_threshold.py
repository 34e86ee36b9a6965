"""A per-model decision threshold (issue 11, item 5): declared or tuned on the validation split,
stored with the version, and applied by the metrics and by every scoring path (batch here, online
through the same LoadedModel.predict_matrix)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine import api
from engine.ids import ModelRef
from engine.serving.scoring import load_model
from engine.session import reading
from engine.state.workspace import Workspace
from engine.training.metrics import tune_threshold
from tests.conftest import run_engine
from tests.inference.conftest import make_project

XGB = 'split: {by: time, test_from: "2024-02-01"}\n    metrics: [roc_auc, accuracy]'
LOGREG = "params: {max_iter: 300}\n    split: {by: time, test_from: \"2024-02-01\"}"


@pytest.fixture(scope="module")
def thresholds(tmp_path_factory) -> Path:
    root = make_project(tmp_path_factory.mktemp("threshold") / "rides")
    spec = root / "specs/rides.yaml"
    text = spec.read_text()
    assert XGB in text and LOGREG in text
    text = text.replace(XGB, XGB + "\n    threshold: 0.3")
    text = text.replace(LOGREG, 'params: {max_iter: 300}\n    split: {by: time, test_from: "2024-02-01", validation_from: "2024-01-20"}\n    threshold: {tune: f1}')
    spec.write_text(text)
    api.apply(root)
    return root


def test_a_declared_threshold_decides_every_batch_prediction(thresholds: Path) -> None:
    scores = api.read_predictions(thresholds, "january")
    assert len(scores) > 0
    assert (scores["prediction"] == (scores["proba_True"] >= 0.3)).all()
    assert ((scores["proba_True"] >= 0.3) != (scores["proba_True"] >= 0.5)).any()  # it made a difference here
    assert api.show_model(thresholds, "tips_xgb")["manifest"]["decision_threshold"] == 0.3


def test_a_tuned_threshold_is_the_best_on_the_validation_split_and_stored(thresholds: Path) -> None:
    manifest = api.show_model(thresholds, "tips_logreg")["manifest"]
    stored = manifest["decision_threshold"]
    validation = api.read_training_data(thresholds, "tips_logreg", split="validation")
    with reading(Workspace.for_project(thresholds)) as stores:
        model = load_model(stores.registry, ModelRef.parse("tips_logreg"))
        p = model.predict_frame(validation)["proba_True"].to_numpy()
    y = validation["tipped"].astype(bool).to_numpy().astype(int)
    assert stored == tune_threshold(y, p, "f1")
    # The validation f1 recorded is the f1 at that threshold.
    from sklearn.metrics import f1_score

    assert np.isclose(manifest["metrics"]["validation"]["f1"], f1_score(y, (p >= stored).astype(int)))
    stream = api.read_predictions(thresholds, "live")
    assert (stream["prediction"] == (stream["proba_True"] >= stored)).all()


def test_a_threshold_on_a_regressor_or_tuned_without_validation_fails_validate(tmp_path: Path) -> None:
    root = make_project(tmp_path / "bad")
    spec = root / "specs/rides.yaml"
    spec.write_text(spec.read_text().replace(XGB, XGB + "\n    threshold: {tune: f1}").replace(
        "estimator: sklearn.linear_model.LogisticRegression", "estimator: sklearn.linear_model.Ridge\n    threshold: 0.4").replace(
        "  tips_logreg:\n    feature_view: tips", "  tips_logreg:\n    feature_view: tips"))
    rc, out, err = run_engine("validate", str(root))
    assert rc == 3, out + err
    assert "models.tips_xgb.threshold.tune" in err and "tuning the threshold needs a validation split, and model 'tips_xgb' has none" in err
    assert "models.tips_logreg.threshold" in err and "a decision threshold applies to classifiers with predicted probabilities; sklearn.linear_model.Ridge is a regressor" in err
    assert "2 problems found." in err, err
