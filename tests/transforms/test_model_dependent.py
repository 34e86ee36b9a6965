"""Model-dependent transforms: sklearn/hand oracles, train-only fitting, JSON state, batch == online (no skew)."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

from engine.transforms.model_dependent import (
    MAX_ONE_HOT_CATEGORIES,
    TRANSFORMERS,
    FittedColumn,
    FittedTransforms,
    fit_transforms,
)
from tests.conftest import check_golden

NUMBERS = [3.0, np.nan, -1.5, 10.0, 4.25, np.nan, 0.0, 7.0, 7.0, 100.0]


def _col(frame: pd.DataFrame, transformer: str, column: str = "x") -> np.ndarray:
    fitted = fit_transforms(frame, [column], {column: transformer})
    return fitted.transform(frame)[column].to_numpy()


def _bits(values) -> list:
    """Exact float identity, any NaN counted equal to any NaN."""
    return ["nan" if math.isnan(v) else struct.pack("<d", v) for v in values]


# ---------------------------------------------------------------- numerics vs scikit-learn


@pytest.mark.parametrize(
    "name, estimator",
    [("standard_scaler", StandardScaler), ("min_max_scaler", MinMaxScaler), ("robust_scaler", RobustScaler)],
)
def test_scalers_match_sklearn_and_keep_nan(name, estimator):
    frame = pd.DataFrame({"x": NUMBERS})
    ours = _col(frame, name)
    theirs = estimator().fit_transform(frame[["x"]].to_numpy())[:, 0]
    assert np.allclose(ours, theirs, equal_nan=True)
    assert np.isnan(ours).tolist() == frame["x"].isna().tolist()


@pytest.mark.parametrize("name", ["standard_scaler", "min_max_scaler", "robust_scaler"])
def test_constant_column_divides_by_one(name):
    frame = pd.DataFrame({"x": [0.1, 0.1, 0.1, None]})
    fitted = fit_transforms(frame, ["x"], {"x": name})
    assert fitted.columns[0].state["scale"] == 1.0
    assert fitted.transform(frame)["x"].tolist()[:3] == [0.0, 0.0, 0.0]
    assert fitted.transform_row({"x": 1.1}) == [(1.1 - 0.1) / 1.0]


def test_robust_scaler_zero_iqr_divides_by_one():
    frame = pd.DataFrame({"x": [5.0] * 8 + [1.0, 9.0]})
    assert fit_transforms(frame, ["x"], {"x": "robust_scaler"}).columns[0].state == {"median": 5.0, "scale": 1.0}


def test_imputers_match_hand_oracle():
    x = pd.Series(NUMBERS)
    present = x.dropna()
    frame = pd.DataFrame({"x": x})
    assert np.array_equal(_col(frame, "impute_mean"), x.fillna(present.mean()).to_numpy())
    assert np.array_equal(_col(frame, "impute_median"), x.fillna(present.median()).to_numpy())
    assert np.array_equal(_col(frame, "impute_most_frequent"), x.fillna(7.0).to_numpy())
    assert np.array_equal(_col(frame, "impute_constant"), x.fillna(0.0).to_numpy())


def test_most_frequent_ties_pick_the_smallest():
    numbers = pd.DataFrame({"x": pd.array([5, 2, 5, 2, None, 9], dtype="Int64")})
    assert fit_transforms(numbers, ["x"], {"x": "impute_most_frequent"}).columns[0].state["value"] == 2.0
    words = pd.DataFrame({"x": ["pear", "fig", "pear", "fig", None, "kiwi"]})
    fitted = fit_transforms(words, ["x"], {"x": "impute_most_frequent"})
    assert fitted.columns[0].state == {"value": "fig", "categories": ["fig", "kiwi", "pear"]}
    # a string column is label-encoded after imputing: NULL -> code of 'fig'
    assert fitted.transform(words)["x"].tolist() == [2.0, 0.0, 2.0, 0.0, 0.0, 1.0]


# ---------------------------------------------------------------- encoders


def test_label_encoder_sorted_categories_unseen_and_null_are_minus_one():
    train = pd.DataFrame({"c": pd.Series(["b", "a", None, "c", "a"], dtype="str")})
    fitted = fit_transforms(train, ["c"], {"c": "label_encoder"})
    assert fitted.columns[0].state == {"categories": ["a", "b", "c"]}
    test = pd.DataFrame({"c": pd.Series(["c", "zzz", None, "a"], dtype="str")})
    assert fitted.transform(test)["c"].tolist() == [2.0, -1.0, -1.0, 0.0]
    assert [fitted.transform_row({"c": v})[0] for v in ["c", "zzz", None, float("nan"), "a"]] == [2, -1, -1, -1, 0]


def test_one_hot_encoder_outputs_and_unseen_all_zero():
    train = pd.DataFrame({"c": pd.Categorical(["red", "blue", None, "red"])})
    fitted = fit_transforms(train, ["c"], {"c": "one_hot_encoder"})
    assert fitted.output_columns == ("c=blue", "c=red")
    out = fitted.transform(pd.DataFrame({"c": ["red", "green", None]}))
    assert out.to_numpy().tolist() == [[0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]
    assert fitted.transform_row({"c": "blue"}) == [1.0, 0.0]
    assert fitted.transform_row({"c": "green"}) == [0.0, 0.0]


def test_category_keys_ignore_json_int_float_ambiguity():
    """A float training column seen online as a JSON int is the same category (no skew)."""
    train = pd.DataFrame({"z": [94105.0, 10001.0, 2.5]})
    fitted = fit_transforms(train, ["z"], {"z": "label_encoder"})
    assert fitted.columns[0].state["categories"] == ["10001", "2.5", "94105"]
    assert fitted.transform_row({"z": 94105}) == fitted.transform_row({"z": 94105.0}) == [2.0]
    assert fitted.transform(pd.DataFrame({"z": pd.array([94105, None], dtype="Int64")}))["z"].tolist() == [2.0, -1.0]


# ---------------------------------------------------------------- automatic kinds (Y: a spec without transforms trains)


def test_features_without_transforms_get_automatic_kinds():
    frame = pd.DataFrame(
        {
            "n": pd.array([1, None, 3], dtype="Int64"),
            "f": [1.5, np.nan, 2.0],
            "b": pd.array([True, None, False], dtype="boolean"),
            "s": pd.Series(["y", "x", None], dtype="str"),
            "o": pd.Series([True, False, None], dtype=object),
        }
    )
    fitted = fit_transforms(frame, list(frame.columns), {})
    assert [c.kind for c in fitted.columns] == [
        "passthrough", "passthrough", "bool_to_int", "auto_label_encoder", "bool_to_int"
    ]
    out = fitted.transform(frame)
    assert out.dtypes.tolist() == [np.dtype("float64")] * 5
    assert np.array_equal(
        out.to_numpy(),
        np.array([[1, 1.5, 1, 1, 1], [np.nan, np.nan, np.nan, 0, 0], [3, 2.0, 0, -1, np.nan]]),
        equal_nan=True,
    )


def test_fit_uses_only_the_given_frame_and_apply_follows_stored_state():
    train = pd.DataFrame({"x": [0.0, 10.0, 5.0], "c": ["a", "b", "a"]})
    fitted = fit_transforms(train, ["x", "c"], {"x": "min_max_scaler", "c": "one_hot_encoder"})
    test = pd.DataFrame({"x": [20.0, -10.0], "c": ["new", "b"]}, index=[7, 3])
    out = fitted.transform(test)
    assert out.index.tolist() == [7, 3]
    # out-of-range values scale past [0, 1]; an unseen category is all zeros, no new column
    assert out.to_dict("list") == {"x": [2.0, -1.0], "c=a": [0.0, 0.0], "c=b": [0.0, 1.0]}


# ---------------------------------------------------------------- JSON state (V19: no pickle in model versions)


def test_json_round_trip_is_exact_and_plain():
    frame = pd.DataFrame({"x": NUMBERS, "c": list("abcabcabca"), "k": pd.array([1, 2, None] * 3 + [4], dtype="Int64")})
    fitted = fit_transforms(
        frame, ["x", "c", "k"], {"x": "standard_scaler", "c": "one_hot_encoder", "k": "impute_median"}
    )
    text = json.dumps(fitted.to_dict(), allow_nan=False)
    again = FittedTransforms.from_dict(json.loads(text))
    assert again == fitted
    assert again.transform(frame).equals(fitted.transform(frame))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["columns"][0]["state"].pop("scale"),
        lambda d: d["columns"][0]["state"].update(mean=None),
        lambda d: d["columns"][0].update(kind="pickle"),
        lambda d: d["columns"][1]["state"].update(categories=["b", "a"]),
        lambda d: d["columns"][1].update(outputs=["c=a"]),
        lambda d: d.update(format=99),
        lambda d: d["columns"].append(d["columns"][0]),
    ],
)
def test_from_dict_refuses_inconsistent_state(mutate):
    frame = pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"]})
    data = fit_transforms(frame, ["x", "c"], {"x": "standard_scaler", "c": "one_hot_encoder"}).to_dict()
    mutate(data)
    with pytest.raises(ValueError):
        FittedTransforms.from_dict(data)


# ---------------------------------------------------------------- errors a user sees


def _error(frame, features, transforms) -> str:
    with pytest.raises(ValueError) as info:
        fit_transforms(frame, features, transforms)
    return str(info.value)


def test_timestamp_feature_is_refused_naming_it():
    frame = pd.DataFrame({"x": pd.to_datetime(["2024-01-01", "2024-02-01"], utc=True)})
    message = _error(frame, ["x"], {})
    assert message == "feature 'x' is a timestamp; derive a numeric feature from it"
    assert _error(frame, ["x"], {"x": "standard_scaler"}) == message
    check_golden("transforms/timestamp_feature.txt", message + "\n")


def test_unknown_transformer_is_refused_with_a_hint():
    message = _error(pd.DataFrame({"x": [1.0]}), ["x"], {"x": "standard_scalar"})
    assert "unknown transformer 'standard_scalar' for feature 'x'" in message
    assert "did you mean 'standard_scaler'?" in message
    check_golden("transforms/unknown_transformer.txt", message + "\n")


def test_too_many_one_hot_categories_suggests_label_encoder():
    frame = pd.DataFrame({"c": [f"v{i}" for i in range(MAX_ONE_HOT_CATEGORIES + 1)]})
    message = _error(frame, ["c"], {"c": "one_hot_encoder"})
    assert "1001 categories" in message and "use label_encoder" in message
    check_golden("transforms/too_many_categories.txt", message + "\n")
    assert len(fit_transforms(frame.iloc[:MAX_ONE_HOT_CATEGORIES], ["c"], {"c": "one_hot_encoder"}).output_columns) == 1000


@pytest.mark.parametrize(
    "frame, transforms, needle",
    [
        (pd.DataFrame({"x": ["a", "b"]}), {"x": "standard_scaler"}, "not numeric"),
        (pd.DataFrame({"x": [np.nan, np.nan]}), {"x": "impute_mean"}, "no non-null"),
        (pd.DataFrame({"x": [1.0, np.inf]}), {"x": "min_max_scaler"}, "infinite"),  # F5
        (pd.DataFrame({"x": [1.0]}), {"y": "label_encoder"}, "not a feature"),
        (pd.DataFrame({"x": pd.to_timedelta([1, 2], unit="s")}), {}, "duration"),
    ],
)
def test_unfittable_inputs_are_refused(frame, transforms, needle):
    assert needle in _error(frame, ["x"], transforms)


def test_transform_row_names_a_missing_feature_and_refuses_strings_for_numbers():
    fitted = fit_transforms(pd.DataFrame({"x": [1.0, 2.0]}), ["x"], {"x": "standard_scaler"})
    with pytest.raises(ValueError, match="no feature 'x'"):
        fitted.transform_row({})
    with pytest.raises(ValueError, match="numeric"):
        fitted.transform_row({"x": "1.5"})


def test_every_declared_transformer_is_handled():
    frame = pd.DataFrame({"x": [1.0, 2.0, None, 2.0]})
    for name in TRANSFORMERS:
        fitted = fit_transforms(frame, ["x"], {"x": name})
        assert isinstance(fitted.columns[0], FittedColumn) and fitted.columns[0].kind == name
        assert _bits(fitted.transform(frame).to_numpy().ravel()) == _bits(
            [v for r in frame.to_dict("records") for v in fitted.transform_row(r)]
        )


# ---------------------------------------------------------------- no skew: batch == online, bit for bit


finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, width=64)
maybe_float = st.one_of(st.none(), st.just(float("nan")), finite)
online_float = st.one_of(maybe_float, st.sampled_from([float("inf"), -float("inf"), 1e300]))
maybe_int = st.one_of(st.none(), st.integers(min_value=-(2**62), max_value=2**62))
maybe_bool = st.one_of(st.none(), st.booleans())
maybe_word = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "é", "a b", "10", "9"]))
# an object column mixing strings, 1 / 1.0 / True (equal under hashing), NaN and pd.NA
maybe_thing = st.one_of(maybe_word, st.sampled_from([1, 1.0, True, False, 0, 2.5, 10, float("nan"), pd.NA]))

NUMERIC_CHOICES = [None, "standard_scaler", "min_max_scaler", "robust_scaler", "label_encoder",
                   "impute_mean", "impute_median", "impute_most_frequent", "impute_constant"]
WORD_CHOICES = [None, "label_encoder", "one_hot_encoder", "impute_most_frequent"]


def _frame(rows) -> pd.DataFrame:
    f, i, b, s, o = zip(*rows) if rows else ((),) * 5
    return pd.DataFrame(
        {
            "f": pd.Series(f, dtype="float64"),
            "i": pd.array(i, dtype="Int64"),
            "b": pd.array(b, dtype="boolean"),
            "s": pd.Series(s, dtype="str"),
            "o": pd.Series(o, dtype=object),
        }
    )


@settings(max_examples=60, deadline=None)
@given(
    train_rows=st.lists(st.tuples(maybe_float, maybe_int, maybe_bool, maybe_word, maybe_thing), max_size=12),
    test_rows=st.lists(st.tuples(online_float, maybe_int, maybe_bool, maybe_word, maybe_thing), max_size=12),
    choice=st.tuples(
        st.sampled_from(NUMERIC_CHOICES), st.sampled_from(NUMERIC_CHOICES), st.sampled_from([None, "standard_scaler"]),
        st.sampled_from(WORD_CHOICES), st.sampled_from(WORD_CHOICES),
    ),
)
def test_transform_row_equals_transform_bit_for_bit(train_rows, test_rows, choice):
    """The no-skew promise: for every row, the online vector is the batch row, float for float."""
    anchor = (1.5, 7, True, "b", "c")  # every column has a non-null training value
    train = _frame([anchor, *train_rows])
    transforms = {c: t for c, t in zip("fibso", choice) if t}
    fitted = fit_transforms(train, list("fibso"), transforms)
    fitted = FittedTransforms.from_dict(json.loads(json.dumps(fitted.to_dict())))
    for frame in (train, _frame(test_rows)):
        batch = fitted.transform(frame)
        assert list(batch.columns) == list(fitted.output_columns)
        assert (batch.dtypes == "float64").all()
        records = frame.to_dict("records")
        json_like = [{k: (None if v is pd.NA else v) for k, v in r.items()} for r in records]
        for i, (record, plain) in enumerate(zip(records, json_like)):
            expected = _bits(batch.iloc[i].tolist())
            assert _bits(fitted.transform_row(record)) == expected
            assert _bits(fitted.transform_row(plain)) == expected
