"""Model-dependent transforms (scalers, encoders, imputers): fit, JSON state, batch and row apply. No storage.

A feature view's ``transforms: {column: transformer}`` are fitted here on the training split
(the caller passes only that split), stored as plain JSON with the model version, and applied
with the stored state in batch (``FittedTransforms.transform``) and online
(``FittedTransforms.transform_row``). The two paths give bit-identical float64 numbers for the
same inputs: that is the no-skew promise between training, batch and online inference.

Contracts
---------
* **Fit on the given frame only.** Nothing is refitted at apply time: unseen categories and
  out-of-range values follow the stored state.
* **Features without an explicit transform:** numeric -> ``passthrough`` (float64; NULL/NaN stays
  NaN — XGBoost handles it, scikit-learn estimators may not: choosing an imputer is the user's
  call); boolean -> ``bool_to_int`` (1.0/0.0, NULL -> NaN); string, categorical or object ->
  ``auto_label_encoder`` (same as ``label_encoder``), so a spec without transforms still trains;
  timestamps and durations -> ``ValueError`` naming the feature. An unknown transformer name is a
  ``ValueError``.
* **Category keys.** Categorical values are compared as strings: ``str`` as is, booleans as
  ``"True"``/``"False"``, integral numbers as ``str(int(x))`` (so ``1`` and ``1.0`` are the same
  category, whatever JSON made of them), other floats as ``str(float(x))``. NULL/NaN/pd.NA is no
  category.
* ``standard_scaler``: ``(x - mean) / std`` with the population std (ddof=0, as scikit-learn's
  ``StandardScaler``) over non-null training values; a constant column gets scale 1.
* ``min_max_scaler``: ``(x - min) / (max - min)``; a zero range divides by 1.
* ``robust_scaler``: ``(x - median) / (q75 - q25)`` with numpy's linear interpolation (as
  ``RobustScaler``); a zero IQR divides by 1.
* Scalers keep NULL/NaN as NaN and need at least one non-null, finite training value.
* ``label_encoder``: categories are the sorted distinct non-null training keys; a value becomes
  its index; unseen values and NULL become -1.
* ``one_hot_encoder``: one output ``f"{column}={category}"`` per sorted training category,
  1.0/0.0; unseen and NULL give all zeros. More than 1000 categories is a ``ValueError``.
* ``impute_mean`` / ``impute_median`` / ``impute_constant`` (value 0.0): numeric columns only;
  NULL/NaN becomes the stored value, other values pass through.
* ``impute_most_frequent``: numeric columns: NULL becomes the most frequent training value
  (ties -> the smallest). String columns: NULL becomes the most frequent key (ties -> the
  smallest string) and the column is then label-encoded with the training categories, because
  the model matrix is numeric.
* ``log1p``: ``log(1 + x)`` (``math.log1p`` in both paths); needs training values > -1; a value
  <= -1 later gives NaN.
* **Chains** (``[impute: median, log1p, standard_scaler]``, ``chain`` kind): numeric steps
  applied in order, each fitted on the training split's output of the steps before it. Steps:
  the numeric transformers above, ``log1p``, ``clip`` (declared bounds: values outside become
  the bound; NaN stays NaN) and ``kbins`` (N equal-frequency bins: edges are the training
  quantiles, deduplicated; a value becomes the index of its bin, ``bisect_right`` of the edges;
  NaN stays NaN). One output column.
* All state is JSON-safe (str, float, int, lists); NaN and infinities are never stored.
* ``transform_row`` is pure Python over lookups built once per fitted object (do not mutate a
  ``FittedColumn.state`` after building one).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from engine.transforms.column_values import category_codes, category_key, key_counts, numeric_array, to_float

if TYPE_CHECKING:
    import numpy
    import pandas

TRANSFORMERS = ("standard_scaler", "min_max_scaler", "robust_scaler", "label_encoder", "one_hot_encoder",
                "impute_mean", "impute_median", "impute_most_frequent", "impute_constant", "log1p")
AUTO_KINDS = ("passthrough", "bool_to_int", "auto_label_encoder")
CHAIN_STEPS = ("standard_scaler", "min_max_scaler", "robust_scaler", "impute_mean", "impute_median", "impute_constant",
               "impute_most_frequent", "log1p", "clip", "kbins")
MAX_ONE_HOT_CATEGORIES = 1000
FORMAT_VERSION = 1

_NUMERIC_ONLY = frozenset(TRANSFORMERS[:3] + ("impute_mean", "impute_median", "impute_constant"))
_STATE_KEYS: dict[str, frozenset[str]] = {
    **dict.fromkeys(("passthrough", "bool_to_int"), frozenset()),
    "standard_scaler": frozenset({"mean", "scale"}),
    "min_max_scaler": frozenset({"min", "scale"}),
    "robust_scaler": frozenset({"median", "scale"}),
    **dict.fromkeys(("label_encoder", "auto_label_encoder", "one_hot_encoder"), frozenset({"categories"})),
    **dict.fromkeys(("impute_mean", "impute_median", "impute_constant"), frozenset({"value"})),
    "impute_most_frequent": frozenset({"value", "categories"}),  # categories: None for numbers
    "log1p": frozenset(),
    "clip": frozenset({"min", "max"}),
    "kbins": frozenset({"edges"}),
    "chain": frozenset({"steps"}),
}
_NAN = float("nan")

RowStep = Callable[[object, Callable[[float], None], Callable[[list[float]], None]], None]


@dataclass(frozen=True)
class FittedColumn:
    """One feature's fitted state (JSON-safe) and the model-matrix columns it produces."""

    column: str
    kind: str  # a name from TRANSFORMERS or AUTO_KINDS
    state: dict[str, Any]
    outputs: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data."""
        state = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in self.state.items()}
        if self.kind == "chain":
            state = {"steps": [{"kind": st["kind"], "state": {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in st["state"].items()}} for st in self.state["steps"]]}
        return {"column": self.column, "kind": self.kind, "state": state, "outputs": list(self.outputs)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FittedColumn:
        """Rebuild and validate one stored column; ``ValueError`` on any inconsistency."""
        if not isinstance(data, Mapping) or set(data) != {"column", "kind", "state", "outputs"}:
            raise ValueError(f"stored transform entry must have column, kind, state, outputs: {data!r}")
        column, kind, raw_state = data["column"], data["kind"], data["state"]
        if not isinstance(column, str) or not column:
            raise ValueError(f"stored transform column must be a non-empty string: {column!r}")
        if kind not in _STATE_KEYS:
            raise ValueError(f"stored transform for '{column}' has unknown kind {kind!r}")
        if not isinstance(raw_state, Mapping) or set(raw_state) != _STATE_KEYS[kind]:
            raise ValueError(
                f"stored {kind} state for '{column}' must have keys {sorted(_STATE_KEYS[kind])}, got {raw_state!r}"
            )
        state = {k: _valid_state_value(column, kind, k, v) for k, v in raw_state.items()}
        fitted = _make_column(column, kind, state)
        if list(data["outputs"]) != list(fitted.outputs):
            raise ValueError(f"stored outputs of '{column}' do not match its {kind} state")
        return fitted


def _valid_state_value(column: str, kind: str, key: str, value: Any) -> Any:
    if key == "steps":
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"stored chain of '{column}' must be a non-empty list of steps")
        steps = []
        for step in value:
            if not isinstance(step, Mapping) or set(step) != {"kind", "state"} or step["kind"] not in CHAIN_STEPS:
                raise ValueError(f"stored chain step of '{column}' must be {{kind, state}} with a numeric kind: {step!r}")
            if not isinstance(step["state"], Mapping) or set(step["state"]) != _STATE_KEYS[step["kind"]]:
                raise ValueError(f"stored {step['kind']} state in the chain of '{column}' has the wrong keys: {step['state']!r}")
            if step["kind"] == "impute_most_frequent" and step["state"]["categories"] is not None:
                raise ValueError(f"stored chain of '{column}' imputes categories; chains are numeric")
            steps.append({"kind": step["kind"], "state": {k: _valid_state_value(column, step["kind"], k, v) for k, v in step["state"].items()}})
        return steps
    if key == "edges":
        if not isinstance(value, (list, tuple)) or not all(isinstance(e, (int, float)) and not isinstance(e, bool) and math.isfinite(e) for e in value):
            raise ValueError(f"stored kbins edges of '{column}' must be a list of finite numbers")
        if list(value) != sorted(set(value)):
            raise ValueError(f"stored kbins edges of '{column}' must be increasing")
        return [float(e) for e in value]
    if key == "categories":
        if value is None and kind == "impute_most_frequent":
            return None
        if not isinstance(value, (list, tuple)) or not all(isinstance(c, str) for c in value):
            raise ValueError(f"stored categories of '{column}' must be a list of strings")
        if list(value) != sorted(set(value)):
            raise ValueError(f"stored categories of '{column}' must be sorted and distinct")
        return list(value)
    if key == "value" and kind == "impute_most_frequent" and isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"stored {kind} {key} of '{column}' must be a finite number, got {value!r}")
    if key == "scale" and value <= 0:
        raise ValueError(f"stored {kind} scale of '{column}' must be positive")
    return float(value)


def _make_column(column: str, kind: str, state: dict[str, Any]) -> FittedColumn:
    if kind == "impute_most_frequent":
        cats = state["categories"]
        if (cats is None) != (not isinstance(state["value"], str)):
            raise ValueError(f"stored impute_most_frequent state of '{column}' mixes string and number")
        if cats is not None and state["value"] not in cats:
            raise ValueError(f"stored impute_most_frequent value of '{column}' is not one of its categories")
    outputs = tuple(f"{column}={c}" for c in state["categories"]) if kind == "one_hot_encoder" else (column,)
    return FittedColumn(column=column, kind=kind, state=state, outputs=outputs)


@dataclass(frozen=True)
class FittedTransforms:
    """The fitted transforms of a feature view, in feature order; apply them with the stored state."""

    columns: tuple[FittedColumn, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for out in self.output_columns:
            if out in seen:
                raise ValueError(f"model matrix column '{out}' would appear twice; rename a feature")
            seen.add(out)

    @property
    def output_columns(self) -> tuple[str, ...]:
        """The model-matrix column names, in order."""
        return tuple(out for fc in self.columns for out in fc.outputs)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data for the model version's manifest."""
        return {"format": FORMAT_VERSION, "columns": [fc.to_dict() for fc in self.columns]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FittedTransforms:
        """Rebuild stored transforms; ``ValueError`` if the shapes are inconsistent."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT_VERSION:
            raise ValueError(f"stored transforms must be a mapping with format {FORMAT_VERSION}")
        if set(data) != {"format", "columns"} or not isinstance(data["columns"], list):
            raise ValueError("stored transforms must have exactly 'format' and a list of 'columns'")
        return cls(columns=tuple(FittedColumn.from_dict(c) for c in data["columns"]))

    def transform(self, frame: pandas.DataFrame) -> pandas.DataFrame:
        """The float64 model matrix of ``frame``: columns ``output_columns``, same index."""
        import numpy as np
        import pandas as pd

        missing = [fc.column for fc in self.columns if fc.column not in frame.columns]
        if missing:
            raise ValueError(f"frame has no feature(s) {missing}")
        matrix = np.empty((len(frame), len(self.output_columns)), dtype="float64")
        at = 0
        for fc in self.columns:
            block = _apply_column(fc, frame[fc.column])
            width = block.shape[1] if block.ndim == 2 else 1
            matrix[:, at : at + width] = block if block.ndim == 2 else block[:, None]
            at += width
        return pd.DataFrame(matrix, index=frame.index, columns=list(self.output_columns))

    def transform_row(self, row: Mapping[str, object]) -> list[float]:
        """The online path: one feature dict -> one model vector, numbers identical to ``transform``."""
        out: list[float] = []
        append, extend = out.append, out.extend
        try:
            for column, step in self._row_steps:
                step(row[column], append, extend)
        except KeyError as err:
            raise ValueError(f"row has no feature {err.args[0]!r}") from None
        return out

    @cached_property
    def _row_steps(self) -> tuple[tuple[str, RowStep], ...]:
        return tuple((fc.column, _row_step(fc)) for fc in self.columns)


def _index(categories: Sequence[str]) -> dict[str, int]:
    return {c: i for i, c in enumerate(categories)}


def _apply_column(fc: FittedColumn, series: pandas.Series) -> numpy.ndarray:
    import numpy as np

    kind, state = fc.kind, fc.state
    if kind in ("label_encoder", "auto_label_encoder", "one_hot_encoder") or (
        kind == "impute_most_frequent" and state["categories"] is not None
    ):
        index = _index(state["categories"])
        codes, missing = category_codes(series, index)
        if kind == "impute_most_frequent":
            codes[missing] = index[state["value"]]
        if kind != "one_hot_encoder":
            return codes.astype("float64")
        block = np.zeros((len(series), len(index)), dtype="float64")
        hit = codes >= 0
        block[np.flatnonzero(hit), codes[hit]] = 1.0
        return block
    x = numeric_array(series, fc.column)
    if kind == "chain":
        for step in state["steps"]:
            x = _apply_numeric(step["kind"], step["state"], x)
        return x
    if kind in ("passthrough", "bool_to_int"):
        return x
    return _apply_numeric(kind, state, x)  # scalers, numeric imputers, log1p, clip, kbins: one arithmetic


def _apply_numeric(kind: str, state: Mapping[str, Any], x: numpy.ndarray) -> numpy.ndarray:
    """One numeric step over a float64 array (NaN is missing); ``_scalar_step`` mirrors it."""
    import numpy as np

    if kind == "standard_scaler":
        return (x - state["mean"]) / state["scale"]
    if kind == "min_max_scaler":
        return (x - state["min"]) / state["scale"]
    if kind == "robust_scaler":
        return (x - state["median"]) / state["scale"]
    if kind.startswith("impute_"):
        return np.where(np.isnan(x), state["value"], x)
    if kind == "clip":
        return np.where(np.isnan(x), x, np.minimum(np.maximum(x, state["min"]), state["max"]))
    if kind == "log1p":  # math.log1p element by element: the online path computes the same bits
        return np.fromiter((math.log1p(v) if v > -1.0 else _NAN for v in x.tolist()), dtype="float64", count=len(x))
    if kind == "kbins":
        edges = np.asarray(state["edges"], dtype="float64")
        return np.where(np.isnan(x), x, np.searchsorted(edges, x, side="right").astype("float64"))
    raise ValueError(f"unknown numeric step {kind!r}")


def _scalar_step(kind: str, state: Mapping[str, Any]) -> Callable[[float], float]:
    """One numeric step over one float (NaN is missing); the same numbers as ``_apply_numeric``."""
    import bisect

    if kind in ("standard_scaler", "min_max_scaler", "robust_scaler"):
        center = state["mean" if kind == "standard_scaler" else "min" if kind == "min_max_scaler" else "median"]
        scale = state["scale"]
        return lambda x: (x - center) / scale
    if kind.startswith("impute_"):
        fill = state["value"]
        return lambda x: fill if x != x else x
    if kind == "clip":
        low, high = state["min"], state["max"]
        return lambda x: x if x != x else min(max(x, low), high)
    if kind == "log1p":
        return lambda x: math.log1p(x) if x > -1.0 else _NAN
    if kind == "kbins":
        edges = list(state["edges"])
        return lambda x: x if x != x else float(bisect.bisect_right(edges, x))
    raise ValueError(f"unknown numeric step {kind!r}")


def _row_step(fc: FittedColumn) -> RowStep:
    """A closure applying one column to one value; mirrors ``_apply_column`` operation for operation."""
    kind, state, col = fc.kind, fc.state, fc.column
    if kind in ("chain", "log1p", "clip", "kbins"):
        steps = [_scalar_step(st["kind"], st["state"]) for st in state["steps"]] if kind == "chain" else [_scalar_step(kind, state)]

        def chained(v: object, append: Callable, extend: Callable) -> None:
            x = v if type(v) is float else to_float(v, col)
            for step in steps:
                x = step(x)
            append(x)

        return chained
    if kind in ("label_encoder", "auto_label_encoder"):
        codes = {c: float(i) for i, c in enumerate(state["categories"])}

        def label(v: object, append: Callable, extend: Callable) -> None:
            append(codes.get(v if type(v) is str else category_key(v), -1.0))  # type: ignore[arg-type]

        return label
    if kind == "one_hot_encoder":
        index = _index(state["categories"])
        width = len(index)

        def one_hot(v: object, append: Callable, extend: Callable) -> None:
            block = [0.0] * width
            i = index.get(v if type(v) is str else category_key(v))  # type: ignore[arg-type]
            if i is not None:
                block[i] = 1.0
            extend(block)

        return one_hot
    if kind == "impute_most_frequent" and state["categories"] is not None:
        codes = {c: float(i) for i, c in enumerate(state["categories"])}
        fill_key = state["value"]

        def most_frequent_label(v: object, append: Callable, extend: Callable) -> None:
            key = v if type(v) is str else category_key(v)
            append(codes.get(fill_key if key is None else key, -1.0))

        return most_frequent_label
    if kind in ("standard_scaler", "min_max_scaler", "robust_scaler") or kind.startswith("impute_"):
        scalar = _scalar_step(kind, state)  # the same arithmetic as a chain's step

        def numeric(v: object, append: Callable, extend: Callable) -> None:
            append(scalar(v if type(v) is float else to_float(v, col)))

        return numeric

    def passthrough(v: object, append: Callable, extend: Callable) -> None:
        append(v if type(v) is float else to_float(v, col))

    return passthrough


def _feature_kind(series: pandas.Series, column: str) -> str:
    """'numeric', 'bool' or 'category' for a training column; timestamps are refused."""
    from pandas.api import types

    dtype = series.dtype
    inferred = types.infer_dtype(series, skipna=True) if types.is_object_dtype(dtype) else ""
    if types.is_datetime64_any_dtype(dtype) or inferred in ("datetime", "datetime64", "date", "time"):
        raise ValueError(f"feature '{column}' is a timestamp; derive a numeric feature from it")
    if types.is_timedelta64_dtype(dtype) or inferred in ("timedelta", "timedelta64"):
        raise ValueError(f"feature '{column}' is a duration; derive a numeric feature from it")
    if types.is_bool_dtype(dtype) or inferred == "boolean":
        return "bool"
    if types.is_numeric_dtype(dtype) or inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return "numeric"
    return "category"


def _finite(column: str, kind: str, what: str, value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"feature '{column}': {kind} {what} is not finite ({value}); check the data's range")
    return float(value)


def _fit_numeric(column: str, kind: str, x: numpy.ndarray) -> dict[str, Any]:
    import numpy as np

    if kind == "impute_constant":
        return {"value": 0.0}
    values = x[~np.isnan(x)]
    if values.size == 0:
        raise ValueError(f"feature '{column}' has no non-null training values; cannot fit {kind}")
    if not np.isfinite(values).all():
        raise ValueError(f"feature '{column}' has infinite training values; cannot fit {kind}")
    constant = bool(values.min() == values.max())
    if kind == "standard_scaler":
        mean = float(values[0]) if constant else float(values.mean())
        std = 0.0 if constant else float(values.std(ddof=0))
        return {"mean": _finite(column, kind, "mean", mean), "scale": _finite(column, kind, "std", std or 1.0)}
    if kind == "min_max_scaler":
        low, span = float(values.min()), float(values.max()) - float(values.min())
        return {"min": low, "scale": _finite(column, kind, "range", span or 1.0)}
    if kind == "robust_scaler":
        q25, median, q75 = (float(q) for q in np.percentile(values, [25.0, 50.0, 75.0]))
        return {"median": median, "scale": _finite(column, kind, "IQR", (q75 - q25) or 1.0)}
    if kind == "impute_mean":
        return {"value": _finite(column, kind, "mean", float(values.mean()))}
    if kind == "impute_median":
        return {"value": float(np.median(values))}
    uniques, counts = np.unique(values, return_counts=True)  # sorted: argmax picks the smallest tie
    return {"value": float(uniques[int(np.argmax(counts))]), "categories": None}


def _fit_step(column: str, kind: str, params: tuple, x: numpy.ndarray) -> dict[str, Any]:
    """The state of one numeric step, fitted on ``x`` (the previous steps' output)."""
    import numpy as np

    if kind == "clip":
        low, high = float(params[0]), float(params[1])
        if not low < high:
            raise ValueError(f"feature '{column}': clip bounds must be increasing, got [{low}, {high}]")
        return {"min": low, "max": high}
    if kind == "log1p":
        values = x[~np.isnan(x)]
        if values.size and float(values.min()) <= -1.0:
            raise ValueError(f"feature '{column}': log1p needs values > -1, and the training split has {float(values.min())} (clip first)")
        return {}
    if kind == "kbins":
        values = x[~np.isnan(x)]
        if values.size == 0:
            raise ValueError(f"feature '{column}' has no non-null training values; cannot fit kbins")
        n = int(params[0])
        inner = np.quantile(values, np.linspace(0.0, 1.0, n + 1)[1:-1]) if n > 1 else np.array([])
        return {"edges": sorted({_finite(column, kind, "edge", float(e)) for e in inner})}
    if kind == "impute_most_frequent":
        state = _fit_numeric(column, kind, x)
        return {"value": state["value"], "categories": None}
    return _fit_numeric(column, kind, x)


def _fit_chain(series: pandas.Series, column: str, steps: Sequence[tuple[str, tuple]]) -> FittedColumn:
    """A chain of numeric steps, each fitted on the output of those before it (training split)."""
    if _feature_kind(series, column) == "category":
        raise ValueError(f"feature '{column}' is not numeric; a chain of numeric steps needs numbers (use label_encoder or one_hot_encoder)")
    x = numeric_array(series, column)
    fitted = []
    for kind, params in steps:
        if kind not in CHAIN_STEPS:
            raise ValueError(f"unknown chain step {kind!r} for feature '{column}'; known: {', '.join(CHAIN_STEPS)}")
        state = _fit_step(column, kind, tuple(params), x)
        fitted.append({"kind": kind, "state": state})
        x = _apply_numeric(kind, state, x)
    return FittedColumn(column=column, kind="chain", state={"steps": fitted}, outputs=(column,))


def _fit_column(series: pandas.Series, column: str, transformer: "str | Sequence[tuple[str, tuple]] | None") -> FittedColumn:
    if transformer is not None and not isinstance(transformer, str):
        return _fit_chain(series, column, transformer)
    feature_kind = _feature_kind(series, column)
    automatic = {"numeric": "passthrough", "bool": "bool_to_int", "category": "auto_label_encoder"}
    kind = transformer or automatic[feature_kind]
    if kind in ("passthrough", "bool_to_int"):
        return _make_column(column, kind, {})
    if kind == "log1p":
        if feature_kind == "category":
            raise ValueError(f"feature '{column}' is not numeric; log1p needs numbers")
        return _make_column(column, kind, _fit_step(column, kind, (), numeric_array(series, column)))
    if kind in _NUMERIC_ONLY or (kind == "impute_most_frequent" and feature_kind != "category"):
        if feature_kind == "category":
            raise ValueError(
                f"feature '{column}' is not numeric; {kind} needs numbers (use label_encoder or one_hot_encoder)"
            )
        return _make_column(column, kind, _fit_numeric(column, kind, numeric_array(series, column)))
    counts = key_counts(series)
    categories = sorted(counts)
    if kind in ("one_hot_encoder", "impute_most_frequent") and not categories:
        raise ValueError(f"feature '{column}' has no non-null training values; cannot fit {kind}")
    if kind == "one_hot_encoder" and len(categories) > MAX_ONE_HOT_CATEGORIES:
        raise ValueError(
            f"feature '{column}' has {len(categories)} categories, more than {MAX_ONE_HOT_CATEGORIES} for "
            "one_hot_encoder; use label_encoder"
        )
    if kind == "impute_most_frequent":
        top = max(counts.values())
        fill = min(k for k in categories if counts[k] == top)
        return _make_column(column, kind, {"value": fill, "categories": categories})
    return _make_column(column, kind, {"categories": categories})


def fit_transforms(
    train: pandas.DataFrame, features: Sequence[str], transforms: Mapping[str, "str | Sequence[tuple[str, tuple]]"]
) -> FittedTransforms:
    """Fit one transform per feature on ``train`` (the training split only), in feature order.

    ``transforms`` maps a feature to a name in ``TRANSFORMERS``; other features get the
    automatic kind of their dtype (see the module docstring). ``ValueError`` for an unknown
    transformer, a transform of a column that is not a feature, a timestamp feature, or state
    that cannot be fitted.
    """
    for column, name in transforms.items():
        if not isinstance(name, str):
            if column not in features:
                raise ValueError(f"transform for '{column}', which is not a feature of the view")
            continue
        if name not in TRANSFORMERS:
            from engine.errors import did_you_mean

            hint = did_you_mean(str(name), TRANSFORMERS)
            raise ValueError(
                f"unknown transformer {name!r} for feature '{column}'" + (f" ({hint})" if hint else "")
                + f"; known: {', '.join(TRANSFORMERS)}"
            )
        if column not in features:
            raise ValueError(f"transform for '{column}', which is not a feature of the view")
    absent = [f for f in features if f not in train.columns]
    if absent:
        raise ValueError(f"training frame has no feature(s) {absent}")
    return FittedTransforms(columns=tuple(_fit_column(train[f], f, transforms.get(f)) for f in features))
