"""PCA built-in: agrees with scikit-learn on standardised data, deterministic, stored fit round-trips."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import DataError
from engine.model.objects import Pca
from engine.transforms.pca import PcaFit, apply_pca, fit_pca


def _frame(seed: int, n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 2))
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "a": base[:, 0] * 3 + 1,
            "b": base[:, 0] - base[:, 1] * 0.5,
            "c": rng.normal(size=n) * 10,
            "d": base[:, 1] * 2 + rng.normal(size=n) * 0.1,
        }
    )


PCA = Pca(columns=("a", "b", "c", "d"), n_components=3, prefix="pc_")


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 4))
def test_matches_sklearn_on_standardised_data_up_to_sign(seed, k) -> None:
    from sklearn.decomposition import PCA as SkPCA
    from sklearn.preprocessing import StandardScaler

    frame = _frame(seed)
    spec = Pca(columns=PCA.columns, n_components=k)
    fit = fit_pca(frame, spec)
    out = apply_pca(frame, fit, spec)
    z = StandardScaler().fit_transform(frame[list(spec.columns)])
    ref = SkPCA(n_components=k, svd_solver="full").fit(z)
    want = ref.transform(z)
    assert list(out.columns) == [f"pc_{i}" for i in range(1, k + 1)]
    for i in range(k):
        sign = np.sign(np.dot(out.iloc[:, i], want[:, i]))
        np.testing.assert_allclose(out.iloc[:, i].to_numpy(), sign * want[:, i], atol=1e-8)
    np.testing.assert_allclose(fit.explained_variance_ratio, ref.explained_variance_ratio_, atol=1e-12)
    for row in fit.components:  # deterministic sign: largest-|value| loading is positive
        assert row[int(np.argmax(np.abs(row)))] > 0


def test_fit_is_deterministic_and_independent_of_row_order() -> None:
    frame = _frame(3)
    one = fit_pca(frame, PCA)
    again = fit_pca(frame, PCA)
    shuffled = fit_pca(frame.sample(frac=1.0, random_state=1), PCA)
    assert one == again
    np.testing.assert_allclose(np.array(one.components), np.array(shuffled.components), atol=1e-10)


def test_to_dict_round_trips_through_json() -> None:
    fit = fit_pca(_frame(5), PCA)
    stored = json.loads(json.dumps(fit.to_dict(), allow_nan=False))
    assert PcaFit.from_dict(stored) == fit


def test_from_dict_refuses_inconsistent_shapes() -> None:
    data = fit_pca(_frame(5), PCA).to_dict()
    data["means"] = data["means"][:-1]
    with pytest.raises(ValueError):
        PcaFit.from_dict(data)


def test_rows_with_nulls_are_excluded_from_fit_and_get_nan() -> None:
    frame = _frame(7)
    holes = frame.copy()
    holes.loc[[0, 5], "b"] = np.nan
    holes["c"] = holes["c"].astype("Float64")
    holes.loc[9, "c"] = pd.NA
    fit = fit_pca(holes, PCA)
    assert fit == fit_pca(frame.drop(index=[0, 5, 9]), PCA)
    out = apply_pca(holes, fit, PCA)
    assert out.loc[[0, 5, 9]].isna().all().all()
    assert out.drop(index=[0, 5, 9]).notna().all().all()
    assert list(out.index) == list(holes.index)


def test_apply_on_new_rows_uses_the_stored_fit() -> None:
    fit = fit_pca(_frame(11), PCA)
    new = _frame(12, n=5) * 2.0  # different distribution: a refit would give other scores
    out = apply_pca(new, PcaFit.from_dict(fit.to_dict()), PCA)
    z = (new[list(PCA.columns)].to_numpy() - np.array(fit.means)) / np.array(fit.scales)
    np.testing.assert_allclose(out.to_numpy(), z @ np.array(fit.components).T, atol=1e-12)
    assert not np.allclose(out.to_numpy(), apply_pca(new, fit_pca(new, PCA), PCA).to_numpy())


def test_constant_column_gets_unit_scale() -> None:
    frame = _frame(2)
    frame["d"] = 4.0
    fit = fit_pca(frame, PCA)
    assert fit.scales[3] == 1.0
    assert np.isfinite(apply_pca(frame, fit, PCA).to_numpy()).all()


def test_too_few_complete_rows_is_a_data_error() -> None:
    frame = _frame(1, n=4)
    frame.loc[[0, 1, 2], "a"] = np.nan
    with pytest.raises(DataError, match="needs at least 3 rows"):
        fit_pca(frame, PCA)
