"""Backend contract, part 1: tables, writes, data checks, statistics, sources, transactions and the
sandbox — what every ``Backend`` must do, asserted through the protocol only (no engine SQL here;
the only SQL is user SQL, which the spec's dialect carries, and ``read_csv``-style probes the
sandbox must refuse). The operations of ``engine.sql.ops`` are in ``test_backend_ops.py``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine import backends
from engine.backends.base import Backend, Capabilities, Catalog, IngestReport
from engine.errors import DataError, EngineError, UsageError
from engine.model.objects import CsvOptions, Expectation, ExpectationKind, Source
from engine.sql.ops import Constant, Relation, Scan
from tests.contract.conftest import append, arrow, put, rows, staging, ts, user_filter

# --- the protocol itself ----------------------------------------------------------------------------


def test_backend_is_registered_and_satisfies_the_protocols(backend) -> None:
    assert isinstance(backend, Backend)
    assert isinstance(backend.catalog, Catalog)
    assert backends.load(backend.name) is type(backend)
    assert isinstance(backend.dialect, str) and backend.dialect


def test_capabilities_are_declared_on_the_class_and_read_without_opening(backend) -> None:
    caps = backend.capabilities
    assert isinstance(caps, Capabilities)
    assert {"csv", "parquet", "jsonl"} <= set(caps.source_formats)
    assert backends.capabilities(backend.name) == caps
    assert all(isinstance(getattr(caps, flag), bool) for flag in ("quarantine_rows", "python_transforms", "sandboxed_sql", "transactions", "asof_join"))


def test_an_unknown_backend_name_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="duckdb"):
        backends.load("duckbd")


# --- write / fetch / frame --------------------------------------------------------------------------

TYPED = {"i": "int", "f": "float", "s": "str", "b": "bool", "t": "time"}


def test_arrow_round_trip_keeps_types_values_and_nulls(backend) -> None:
    import pyarrow as pa

    data = arrow(
        {"i": [1, -(2**62), None], "f": [1.5, -0.0, None], "s": ["a", "ü", None], "b": [True, False, None], "t": [ts(0), ts(86_400.000001), None]},
        TYPED,
    )
    assert put(backend, staging("typed"), data) == 3
    got = backend.fetch(staging("typed"))
    assert got.column_names == ["i", "f", "s", "b", "t"]
    types = dict(zip(got.column_names, got.schema.types))
    assert pa.types.is_int64(types["i"]) and pa.types.is_float64(types["f"]) and pa.types.is_boolean(types["b"])
    assert pa.types.is_string(types["s"]) or pa.types.is_large_string(types["s"])
    assert pa.types.is_timestamp(types["t"]) and types["t"].tz in ("UTC", "Etc/UTC", "+00:00")
    assert got.to_pylist() == data.to_pylist()


def test_a_table_of_several_commits_fetches_every_row_with_its_types(backend) -> None:
    """A stored table written in three commits (on Spark, fetched by reading the lake's files on
    the driver): every written row (a multiset: the order of a table's files is not part of the
    contract), with the values written (NaN, -0.0, inf, unicode, microseconds, NULLs) and the
    types of a staged table."""
    import pyarrow as pa

    target = Relation("offline", "commits")
    writes = [
        arrow({"i": [1, None], "f": [float("nan"), -0.0], "s": ["ü", None], "b": [True, None], "t": [ts(0.000001), None]}, TYPED),
        arrow({"i": [-(2**62)], "f": [float("-inf")], "s": [""], "b": [False], "t": [ts(86_400)]}, TYPED),
        arrow({"i": [3, 4], "f": [None, 2.5], "s": ["x", "y"], "b": [False, True], "t": [ts(1), ts(2)]}, TYPED),
    ]
    put(backend, target, writes[0])
    for data in writes[1:]:
        put(backend, target, data, mode="append")
    got = backend.fetch(target)
    assert got.column_names == ["i", "f", "s", "b", "t"]
    types = dict(zip(got.column_names, got.schema.types))
    assert pa.types.is_int64(types["i"]) and pa.types.is_float64(types["f"]) and pa.types.is_boolean(types["b"])
    assert pa.types.is_string(types["s"]) or pa.types.is_large_string(types["s"])
    assert pa.types.is_timestamp(types["t"]) and types["t"].tz in ("UTC", "Etc/UTC", "+00:00")

    def comparable(rows: list[dict]) -> list[str]:
        return sorted(repr(tuple("nan" if isinstance(v, float) and math.isnan(v) else (v, math.copysign(1, v)) if isinstance(v, float) else v for v in r.values())) for r in rows)

    assert comparable(got.to_pylist()) == comparable([r for data in writes for r in data.to_pylist()])


def test_pandas_round_trip_keeps_dtypes_and_converts_times_to_utc(backend) -> None:
    local = pd.to_datetime(["2024-01-01 09:00", "2024-07-01 09:00"]).tz_localize("America/New_York")
    frame = pd.DataFrame({"i": [1, 2], "f": [0.5, 2.0], "s": ["x", "y"], "b": [True, False], "t": local})
    assert put(backend, staging("from_pandas"), frame) == 2
    got = backend.frame(staging("from_pandas"))
    assert list(got.columns) == ["i", "f", "s", "b", "t"]
    assert pd.api.types.is_integer_dtype(got["i"]) and got["i"].tolist() == [1, 2]
    assert pd.api.types.is_float_dtype(got["f"]) and got["f"].tolist() == [0.5, 2.0]
    assert pd.api.types.is_string_dtype(got["s"]) and got["s"].tolist() == ["x", "y"]
    assert pd.api.types.is_bool_dtype(got["b"]) and got["b"].tolist() == [True, False]
    assert isinstance(got["t"].dtype, pd.DatetimeTZDtype) and str(got["t"].dt.tz) == "UTC"
    assert got["t"].tolist() == [pd.Timestamp("2024-01-01 14:00", tz="UTC"), pd.Timestamp("2024-07-01 13:00", tz="UTC")]
    assert rows(backend, staging("from_pandas"))[0]["t"] == ts(14 * 3600)


def test_frame_gives_integers_and_booleans_with_nulls_as_pandas_nullable_types(backend) -> None:
    """What a Python feature function receives is the same on every backend (no skew between
    DuckDB and Spark): a NULL in an integer or boolean column is ``pd.NA`` in Int64/boolean, never a
    float NaN or an object column; a column without NULLs stays numpy."""
    put(backend, staging("nullable"), arrow({"i": [1, None], "b": [True, None], "j": [1, 2], "f": [0.5, None]}, {"i": "int", "b": "bool", "j": "int", "f": "float"}))
    got = backend.frame(staging("nullable"))
    assert [str(got[c].dtype) for c in ("i", "b", "j", "f")] == ["Int64", "boolean", "int64", "float64"]
    assert got["i"].iloc[0] == 1 and got["i"].iloc[1] is pd.NA and got["b"].iloc[1] is pd.NA and math.isnan(got["f"].iloc[1])


def test_pandas_frame_with_a_non_default_index_writes_its_rows_only(backend) -> None:
    frame = pd.DataFrame({"k": [1, 2, 3]}, index=[10, 20, 30]).iloc[[2, 0]]
    put(backend, staging("indexed"), frame)
    assert rows(backend, staging("indexed")) == [{"k": 3}, {"k": 1}]


def test_write_modes_create_replace_append_and_constants(backend) -> None:
    target = staging("modes")
    assert put(backend, target, arrow({"k": [1, 2]}, {"k": "int"})) == 2
    with pytest.raises(Exception):
        put(backend, target, arrow({"k": [9]}, {"k": "int"}), mode="create")
    assert [r["k"] for r in rows(backend, target)] == [1, 2]
    assert put(backend, target, arrow({"k": [3]}, {"k": "int"}), mode="replace") == 1
    assert put(backend, target, arrow({"k": [4, 5]}, {"k": "int"}), mode="append") == 3
    assert put(backend, staging("fresh_append"), arrow({"k": [1]}, {"k": "int"}), mode="append") == 1
    stamped = staging("stamped")
    put(backend, stamped, arrow({"k": [1, 2]}, {"k": "int"}), constants=(Constant("run_id", "r-1", "VARCHAR"),))
    assert rows(backend, stamped) == [{"k": 1, "run_id": "r-1"}, {"k": 2, "run_id": "r-1"}]


def test_write_right_after_a_write_a_count_or_an_exists(backend) -> None:
    """Protocol calls compose in any order: a write straight after another call (no settling)."""
    data = arrow({"k": [1, 2]}, {"k": "int"})
    backend.write(staging("first"), data)
    backend.write(staging("second"), data)
    assert backend.count(staging("second")) == 2
    backend.write(staging("second"), data, mode="append")
    assert backend.exists(staging("second"))
    assert backend.append_new(staging("second"), arrow({"k": [3]}, {"k": "int"}), ["k"]) == 1
    assert backend.count(staging("second")) == 5


# --- row-wise Python (on-demand features) ----------------------------------------------------------

FRAME_FUNCTIONS = """
import pandas as pd


def doubled(x: pd.Series) -> pd.Series:
    return x * 2


def local_hour(t: pd.Series) -> pd.Series:
    return t.dt.tz_convert("America/New_York").dt.hour  # needs UTC-aware times, as DuckDB gives them


def label(x: pd.Series) -> pd.Series:
    return x.map(lambda v: "big" if v >= 50 else "small")


def fragile(x: pd.Series) -> pd.Series:
    if (x == 73).any():
        raise ValueError("73 is not allowed")
    return x + 1
"""


def _frame_functions(tmp_path: Path, names: list[tuple[str, str, str]]):
    """An ``OnDemandFrames`` over a package written in ``tmp_path`` (a package name unique to the
    test): as a feature view's on-demand functions reach ``map_frames``."""
    from engine.model.objects import Function
    from engine.transforms.on_demand import OnDemandFrames

    package = f"frames_{abs(hash(str(tmp_path))) % 10**8}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "fns.py").write_text(FRAME_FUNCTIONS)
    functions = [Function(name, f"{package}.fns", fn, (column,), returns) for name, fn, column, returns in names]
    return OnDemandFrames(functions, tmp_path, "feature_view:v@1")


def test_map_frames_adds_typed_columns_row_wise_keeping_rows_and_order(backend, tmp_path) -> None:
    """The functions see pandas Series typed as offline (UTC-aware times) on every backend, and
    their results come back as declared; a backend may slice the rows (Spark: per partition)."""
    n = 400
    source = staging("mapped_in")
    put(backend, source, arrow({"k": list(range(n)), "x": [i % 100 for i in range(n)], "t": [ts(3600 * i) for i in range(n)]}, {"k": "int", "x": "int", "t": "time"}))
    fn = _frame_functions(tmp_path, [("x2", "doubled", "x", "int64"), ("hour_ny", "local_hour", "t", "int64"), ("size", "label", "x", "string")])
    assert backend.map_frames(source, source, fn, fn.added()) == n
    types = backend.columns(source)
    assert [types[c] for c in ("x2", "hour_ny", "size")] == ["BIGINT", "BIGINT", "VARCHAR"]
    got = rows(backend, source)
    assert [r["k"] for r in got] == list(range(n))
    for r in got:
        assert r["x2"] == 2 * r["x"] and r["size"] == ("big" if r["x"] >= 50 else "small")
        assert r["hour_ny"] == pd.Timestamp(r["t"]).tz_convert("America/New_York").hour


def test_map_frames_failure_names_the_view_the_function_and_the_first_failing_row(backend, tmp_path) -> None:
    """Spark: the function fails on an executor; the driver gets the engine's message, not a trace."""
    from engine.errors import ExecutionError

    source = staging("mapped_bad")
    put(backend, source, arrow({"k": list(range(200)), "x": list(range(200))}, {"k": "int", "x": "int"}))
    fn = _frame_functions(tmp_path, [("x1", "fragile", "x", "int64")])
    with pytest.raises(ExecutionError) as caught:
        backend.map_frames(staging("mapped_out"), source, fn, fn.added())
    message = str(caught.value)
    assert message.startswith("feature_view:v@1: function:x1: ") and "fragile raised ValueError: 73 is not allowed" in message, message
    assert "first failing input row: {x: 73}" in message, message
    assert "Traceback" not in message and "PythonException" not in message


# --- table management -----------------------------------------------------------------------------


def test_exists_columns_count_drop(backend) -> None:
    target = staging("managed")
    assert not backend.exists(target)
    put(backend, target, arrow({"k": [1, 2, 3], "name": ["a", "b", "c"]}, {"k": "int"}))
    assert backend.exists(target)
    assert list(backend.columns(target)) == ["k", "name"]
    assert backend.count(target) == 3
    assert not backend.exists(Relation("offline", "managed"))  # the schema is part of the name
    backend.drop(target)
    assert not backend.exists(target)
    backend.drop(target)  # dropping an absent table is a no-op
    assert not backend.exists(target)


def test_add_and_cast_column_accept_the_type_names_columns_reports(backend) -> None:
    """The offline store evolves schemas with type names read back from ``columns`` (F9)."""
    types = backend.columns(_typed(backend))
    target = staging("evolving")
    put(backend, target, arrow({"k": [1, 2]}, {"k": "int"}))
    backend.add_column(target, "x", types["f"])
    assert backend.columns(target) == {"k": types["i"], "x": types["f"]}
    assert [r["x"] for r in rows(backend, target)] == [None, None]
    backend.cast_column(target, "k", types["f"])
    assert backend.columns(target)["k"] == types["f"]
    assert [r["k"] for r in rows(backend, target)] == [1.0, 2.0]


def _typed(backend) -> Relation:
    relation = staging("type_names")
    put(backend, relation, arrow({c: [] for c in TYPED}, TYPED), mode="replace")
    return relation


def test_merge_upserts_by_key(backend) -> None:
    target, staged = staging("merge_target"), staging("merge_staged")
    put(backend, target, arrow({"k": [1, 1, 2], "t": [ts(0), ts(1), ts(0)], "v": [10, 11, 20]}, {"v": "int"}))
    put(backend, staged, arrow({"k": [1, 3], "t": [ts(1), ts(0)], "v": [99, 30]}, {"v": "int"}))
    backend.merge(target, staged, ("k", "t"))
    got = sorted((r["k"], r["t"], r["v"]) for r in rows(backend, target))
    assert got == [(1, ts(0), 10), (1, ts(1), 99), (2, ts(0), 20), (3, ts(0), 30)]


def test_append_new_is_exactly_once_by_key(backend) -> None:
    """Streaming's exactly-once append: the same rows twice append nothing the second time."""
    target = staging("scored")
    batch = arrow({"k": [1, 2], "t": [ts(0), ts(0)], "p": [0.1, 0.2]})
    stamp = (Constant("run_id", "r-1", "VARCHAR"),)
    assert append(backend, target, batch, ["k", "t"], constants=stamp) == 2
    assert append(backend, target, batch, ["k", "t"], constants=stamp) == 0
    overlap = arrow({"k": [2, 3], "t": [ts(0), ts(0)], "p": [0.9, 0.3]})
    assert append(backend, target, overlap, ["k", "t"], constants=(Constant("run_id", "r-2", "VARCHAR"),)) == 1
    got = sorted((r["k"], r["p"], r["run_id"]) for r in rows(backend, target))
    assert got == [(1, 0.1, "r-1"), (2, 0.2, "r-1"), (3, 0.3, "r-2")]
    with pytest.raises(EngineError):
        append(backend, target, batch, [])


# --- data checks and statistics ----------------------------------------------------------------------


def test_F1_F2_key_report_counts_null_and_duplicate_keys(backend) -> None:
    relation = staging("keys")
    put(backend, relation, arrow({"k": [1, 1, 1, 2, None, 3], "t": [ts(0), ts(0), ts(0), ts(0), ts(0), None]}, {"k": "int", "t": "time"}))
    report = backend.key_report(relation, ("k", "t"))
    assert (report.null_rows, report.duplicate_rows) == (2, 3)
    assert 1 <= len(report.samples) <= 5 and all(set(s) == {"k", "t"} for s in report.samples)
    assert {"k": 1, "t": ts(0).isoformat()} in report.samples
    json.dumps(report.samples)  # JSON-safe
    clean = backend.key_report(relation, ("k",))
    assert (clean.null_rows, clean.duplicate_rows) == (1, 3)


def test_F1_F2_key_report_of_a_table_written_in_key_order(backend) -> None:
    """``run_select``'s ``order_by`` (a group's key) is a storage hint: the rows are the same and the
    key report counts NULL and duplicate keys the same, after a rewrite (a cast, nulled
    non-finite values) and after an append of a key the table holds; a key column missing from
    the output is no error here (the checks that follow name it)."""
    source = staging("events_in")
    data = {"k": [3, 1, 2, 1, 2, 5, None], "t": [ts(0), ts(5), ts(1), ts(5), ts(2), ts(3), ts(4)], "x": [0.5, 1.0, 2.0, 3.0, 4.0, float("inf"), 6.0]}
    put(backend, source, arrow(data, {"k": "int", "t": "time", "x": "float"}))
    target = Relation("offline", "ordered__v1")
    by = ("k", "t")
    assert backend.run_select(target, "SELECT k, t, x FROM events", {"events": source}, timeout_s=30, order_by=by) == 7
    as_text = lambda k, t, x: repr((k, t.timestamp(), x))  # noqa: E731
    assert sorted(as_text(**r) for r in rows(backend, target)) == sorted(as_text(*r) for r in zip(*data.values()))
    report = backend.key_report(target, by)
    assert (report.null_rows, report.duplicate_rows) == (1, 2) and {"k": 1, "t": ts(5).isoformat()} in report.samples
    unique = "SELECT k, t, x FROM events WHERE k IS NOT NULL AND x <> 3.0"
    backend.drop(target)
    assert backend.run_select(target, unique, {"events": source}, timeout_s=30, order_by=by) == 5
    assert (backend.key_report(target, by).null_rows, backend.key_report(target, by).duplicate_rows) == (0, 0)
    assert backend.key_report(target, ("k",)).duplicate_rows == 2  # a prefix of the order: k=2 twice
    backend.nullify_non_finite(target, ["x"])
    backend.cast_column(target, "k", "BIGINT")
    assert backend.count(target) == 5 and backend.key_report(target, by).duplicate_rows == 0
    put(backend, target, arrow({"k": [3], "t": [ts(0)], "x": [9.0]}, {"k": "int", "t": "time", "x": "float"}), mode="append")
    assert backend.key_report(target, by).duplicate_rows == 2
    assert backend.run_select(Relation("offline", "no_t__v1"), "SELECT k, x FROM events", {"events": source}, timeout_s=30, order_by=by) == 7


def test_F5_non_finite_counts_and_nullify(backend) -> None:
    """F5: NaN, +inf and -inf are counted per float column (columns without any left out), and
    ``nullify_non_finite`` turns exactly those into NULL."""
    relation = staging("floats")
    data = arrow({"k": [1, 2, 3, 4, 5], "x": [1.0, math.nan, math.inf, -math.inf, None], "y": [0.0, 1.0, 2.0, 3.0, 4.0], "z": [math.nan] * 5})
    put(backend, relation, data)
    assert backend.non_finite_counts(relation) == {"x": 3, "z": 5}
    backend.nullify_non_finite(relation, ["x"])
    assert backend.non_finite_counts(relation) == {"z": 5}
    assert [r["x"] for r in rows(backend, relation)] == [1.0, None, None, None, None]


def test_F5_non_finite_counts_of_a_stored_table_written_by_the_backend(backend) -> None:
    """F5 over a lake table the backend wrote itself (whose Parquet footers may answer for a
    column): every non-finite value counted, whether alone in a column, beside NULLs, or in a
    column that also holds finite values; a column of NULLs only, or of finite values, left out."""
    source = staging("floats_in")
    data = {
        "k": [1, 2, 3, 4, 5, 6],
        "inf": [1.0, 2.0, math.inf, 4.0, 5.0, 6.0],
        "ninf": [None, -math.inf, 1.0, None, 2.0, 3.0],
        "nan": [1.0, 2.0, 3.0, math.nan, 5.0, 6.0],
        "fine": [0.5, -1e300, 1e300, 0.0, -0.0, None],
        "nulls": [None] * 6,
    }
    put(backend, source, arrow(data, {"nulls": "float"}))
    target = Relation("offline", "floats__v1")
    assert backend.run_select(target, "SELECT * FROM events", {"events": source}, timeout_s=30) == 6
    assert backend.non_finite_counts(target) == {"inf": 1, "ninf": 1, "nan": 1}
    backend.nullify_non_finite(target, ["inf", "nan"])
    assert backend.non_finite_counts(target) == {"ninf": 1}


def test_statistics_count_nulls_min_max_per_column(backend) -> None:
    relation = staging("stats")
    put(backend, relation, arrow({"i": [3, None, -1, 7], "f": [0.5, math.nan, None, 2.5], "s": ["ab", "c", None, "def"], "t": [ts(10), None, ts(0), ts(5)]}, {"i": "int", "f": "float"}))
    stats = backend.statistics(relation)
    assert list(stats) == ["i", "f", "s", "t"]
    assert {k: stats["i"][k] for k in ("count", "nulls", "min", "max")} == {"count": 3, "nulls": 1, "min": -1, "max": 7}
    assert {k: stats["f"][k] for k in ("count", "nulls", "min", "max")} == {"count": 2, "nulls": 1, "min": 0.5, "max": 2.5}
    assert stats["i"]["mean"] == pytest.approx(3.0)
    assert (stats["s"]["count"], stats["s"]["nulls"]) == (3, 1)
    assert (stats["t"]["count"], stats["t"]["nulls"]) == (3, 1)
    assert (stats["t"]["min"], stats["t"]["max"]) == (ts(0).isoformat(), ts(10).isoformat())
    assert all(stats[c]["type"] == t for c, t in backend.columns(relation).items())
    json.dumps(stats, allow_nan=False)  # JSON-safe, no NaN


def test_statistics_of_an_empty_table_count_zero(backend) -> None:
    relation = staging("empty_stats")
    put(backend, relation, arrow({"i": []}, {"i": "int"}))
    stats = backend.statistics(relation)
    assert (stats["i"]["count"], stats["i"]["nulls"]) == (0, 0)


def test_statistics_quantiles_above_the_sample_size_come_from_a_deterministic_sample(backend, monkeypatch) -> None:
    """Above ``SAMPLE_ROWS`` rows the quantiles come from a sample of about that many rows, chosen
    by a hash of each row's values (Spark: its own hash, so not DuckDB's sample): labelled
    approximate, close to the exact ones, and the same for the same rows in another order. Spark
    used to take exact percentiles over every row, holding each column in memory (19 of 26.5 s at
    2.5M rows on local[2])."""
    monkeypatch.setattr("engine.backends.duckdb.stats.SAMPLE_ROWS", 1_000)
    monkeypatch.setattr("engine.backends.spark.quality.SAMPLE_ROWS", 1_000)
    n = 20_000
    values = [float(v) for v in np.random.default_rng(3).permutation(n)]
    data = {"k": list(range(n)), "x": values}
    put(backend, staging("sampled"), arrow(data, {"k": "int", "x": "float"}))
    put(backend, staging("sampled_reversed"), arrow({c: v[::-1] for c, v in data.items()}, {"k": "int", "x": "float"}))
    stats = backend.statistics(staging("sampled"))["x"]
    exact = np.quantile(values, [0.25, 0.5, 0.75])
    assert stats["quantiles"] == "approximate"
    assert [stats["p25"], stats["p50"], stats["p75"]] == pytest.approx(list(exact), abs=0.06 * n)  # ~1,000 rows: ~4 standard errors
    assert (stats["count"], stats["min"], stats["max"]) == (n, 0.0, n - 1.0)  # the rest still counts every row
    again = backend.statistics(staging("sampled_reversed"))["x"]
    assert [again[q] for q in ("p25", "p50", "p75")] == [stats[q] for q in ("p25", "p50", "p75")]


def test_quantiles_interpolate_linearly_over_finite_values(backend) -> None:
    relation = staging("quantiles")
    values = [float(v) for v in range(1, 101)]
    put(backend, relation, arrow({"x": [*values, math.nan, math.inf, None]}, {"x": "float"}))
    got = backend.quantiles(relation, "x", 4)
    assert got == pytest.approx(list(np.quantile(values, [0.25, 0.5, 0.75])))
    put(backend, staging("no_values"), arrow({"x": [None, math.nan]}, {"x": "float"}))
    assert backend.quantiles(staging("no_values"), "x", 4) == []


def test_expectations_report_failed_rows_per_kind(backend) -> None:
    relation = staging("expect")
    put(backend, relation, arrow({"k": [1, 2, 2, None], "x": [0.5, 11.0, math.nan, None], "c": ["a", "b", "zz", None]}, {"k": "int", "x": "float"}))
    checks = (
        Expectation(ExpectationKind.NOT_NULL, "k"),
        Expectation(ExpectationKind.UNIQUE, "k"),
        Expectation(ExpectationKind.BETWEEN, "x", low=0, high=10),
        Expectation(ExpectationKind.IN_SET, "c", values=("a", "b")),
        Expectation(ExpectationKind.REGEX, "c", pattern="[a-z]"),
        Expectation(ExpectationKind.ROW_COUNT, low=1, high=3),
        Expectation(ExpectationKind.ROW_COUNT, low=1, high=10),
    )
    results = backend.expectations(relation, checks)
    assert [r.expectation for r in results] == list(checks)
    assert [r.failed_rows for r in results] == [1, 2, 2, 1, 1, 1, 0]
    assert all(r.total_rows == 4 for r in results)
    assert [r.passed for r in results] == [False] * 6 + [True]
    assert results[3].samples == ({"c": "zz"},)


# --- sources ---------------------------------------------------------------------------------------


def _source(path: Path, fmt: str, **kwargs) -> Source:
    return Source("orders_raw", fmt, path.name, (path.resolve(),), **kwargs)


def _write_source(tmp_path: Path, fmt: str) -> Path:
    """Two rows with naive local times (09:00 in winter and in summer) in the given format."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / f"orders.{fmt}"
    if fmt == "csv":
        path.write_text("id,ordered_at,amount\n1,2024-01-01 09:00:00,1.5\n2,2024-07-01 09:00:00,\n", encoding="utf-8")
    elif fmt == "jsonl":
        lines = [{"id": 1, "ordered_at": "2024-01-01 09:00:00", "amount": 1.5}, {"id": 2, "ordered_at": "2024-07-01 09:00:00", "amount": None}]
        path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    else:
        frame = pd.DataFrame({"id": [1, 2], "ordered_at": pd.to_datetime(["2024-01-01 09:00", "2024-07-01 09:00"]), "amount": [1.5, None]})
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_F4_read_source_reads_naive_times_in_the_source_timezone_as_utc(backend, tmp_path, fmt) -> None:
    """F4: naive times are read in the declared timezone (DST included) and stored as UTC."""
    if fmt not in backend.capabilities.source_formats:
        pytest.skip(f"{backend.name} does not read {fmt}")
    target = Relation("src", f"orders_{fmt}")
    report = backend.read_source(_source(_write_source(tmp_path, fmt), fmt, timezone="America/New_York"), target)
    assert report == IngestReport(2, ())
    assert rows(backend, target) == [
        {"id": 1, "ordered_at": ts(14 * 3600), "amount": 1.5},
        {"id": 2, "ordered_at": ts((182 * 24 + 13) * 3600), "amount": None},
    ]
    reference = backend.columns(_typed(backend))
    assert backend.columns(target)["ordered_at"] == reference["t"]
    assert backend.columns(target)["amount"] == reference["f"]


def test_utc_parquet_source_files_are_committed_as_hard_links_and_appended_the_same_way(backend, tmp_path) -> None:
    """Issue 8, no needless copies: a Parquet source whose files hold what the table stores (UTC
    microsecond times, one schema) is committed as its very files (the same inodes), on every
    backend with a lake; a new file is appended as a link too. Naive times are converted instead
    (F4, above); nothing is linked then."""
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    if getattr(backend, "lake", None) is None:
        pytest.skip(f"{backend.name} keeps no lake")

    def part(name: str, ids: list[int], tz: str | None = "UTC") -> Path:
        path = tmp_path / name
        times = pa.array([ts(i * 60) if tz else ts(i * 60).replace(tzinfo=None) for i in ids], pa.timestamp("us", tz))
        pq.write_table(pa.table({"id": pa.array(ids, pa.int64()), "t": times, "x": [float(i) for i in ids]}), path)
        return path

    users = [part("a.parquet", [1, 2, 3]), part("b.parquet", [4])]
    target = Relation("src", "linked")
    source = Source("events", "parquet", "*.parquet", tuple(p.resolve() for p in users))
    assert backend.read_source(source, target).rows == 4
    assert {os.stat(p).st_ino for p in backend.lake.files(target)} == {os.stat(p).st_ino for p in users}
    assert sorted(r["id"] for r in rows(backend, target)) == [1, 2, 3, 4]
    reference = backend.columns(_typed(backend))
    assert backend.columns(target) == {"id": reference["i"], "t": reference["t"], "x": reference["f"]}

    new = part("c.parquet", [5])
    grown = Source("events", "parquet", "*.parquet", (*source.resolved_paths, new.resolve()))
    report = backend.read_source(grown, target, files=[new.resolve()], mode="append")
    assert (report.rows, report.appended) == (1, True)
    assert {os.stat(p).st_ino for p in backend.lake.files(target)} == {os.stat(p).st_ino for p in [*users, new]}
    assert sorted(r["id"] for r in rows(backend, target)) == [1, 2, 3, 4, 5]

    naive = part("naive.parquet", [6], tz=None)
    converted = Relation("src", "converted")
    backend.read_source(Source("naive", "parquet", "naive.parquet", (naive.resolve(),), timezone="UTC"), converted)
    assert os.stat(naive).st_ino not in {os.stat(p).st_ino for p in backend.lake.files(converted)}
    assert [r["t"] for r in rows(backend, converted)] == [ts(360)]


def test_F8_read_source_refuses_no_file_and_an_empty_file_unless_allowed(backend, tmp_path) -> None:
    with pytest.raises(DataError, match="matches no file"):
        backend.read_source(Source("s", "csv", "none/*.csv", ()), Relation("src", "none"))
    header_only = tmp_path / "empty.csv"
    header_only.write_text("id,amount\n", encoding="utf-8")
    with pytest.raises(DataError, match="no rows"):
        backend.read_source(_source(header_only, "csv"), Relation("src", "empty"))
    assert not backend.exists(Relation("src", "empty"))
    typed = _source(header_only, "csv", allow_empty=True, columns=(("id", "BIGINT"), ("amount", "DOUBLE")))
    assert backend.read_source(typed, Relation("src", "empty")).rows == 0
    assert backend.count(Relation("src", "empty")) == 0


def test_F7_multi_file_source_with_a_drifting_column_is_refused(backend, tmp_path) -> None:
    (tmp_path / "a.csv").write_text("id,x\n1,2\n", encoding="utf-8")
    (tmp_path / "b.csv").write_text("id,x,y\n3,4,5\n", encoding="utf-8")
    source = Source("s", "csv", "*.csv", ((tmp_path / "a.csv").resolve(), (tmp_path / "b.csv").resolve()))
    with pytest.raises(DataError, match="y"):
        backend.read_source(source, Relation("src", "drift"))


def test_F6_quarantine_sets_bad_csv_rows_aside(backend, tmp_path) -> None:
    if not backend.capabilities.quarantine_rows:
        pytest.skip(f"{backend.name} declares no CSV quarantine (a spec asking for it fails validate)")
    path = tmp_path / "bad.csv"
    path.write_text("id;x\n1;2\n2;abc\n3;4\n", encoding="utf-8")
    source = _source(path, "csv", csv=CsvOptions(delimiter=";"), on_bad_rows="quarantine", max_bad_rows=1, columns=(("id", "BIGINT"), ("x", "BIGINT")))
    report = backend.read_source(source, Relation("src", "bad"))
    assert report.rows == 2 and len(report.rejected) == 1
    file, line, column = report.rejected[0][:3]
    assert (file, line, column) == ("bad.csv", 3, "x")
    assert sorted(r["id"] for r in rows(backend, Relation("src", "bad"))) == [1, 3]


# --- transactions -------------------------------------------------------------------------------------


class Boom(Exception):
    pass


def test_I1_transaction_rolls_back_a_new_table_on_exception(backend) -> None:
    with pytest.raises(Boom):
        with backend.transaction():
            put(backend, staging("doomed"), arrow({"k": [1]}))
            assert backend.exists(staging("doomed"))  # visible inside
            raise Boom
    assert not backend.exists(staging("doomed"))


def test_I1_transaction_rolls_back_changed_rows_and_commits_otherwise(backend) -> None:
    target = staging("kept")
    put(backend, target, arrow({"k": [1, 2]}, {"k": "int"}))
    before = rows(backend, target)
    with pytest.raises(Boom):
        with backend.transaction():
            put(backend, target, arrow({"k": [3]}, {"k": "int"}), mode="append")
            backend.drop(staging("type_names"))
            backend.create(staging("copy"), target)
            raise Boom
    assert rows(backend, target) == before and not backend.exists(staging("copy"))
    with backend.transaction():
        put(backend, target, arrow({"k": [3]}, {"k": "int"}), mode="append")
        backend.create(staging("copy"), target)
    assert backend.count(target) == 3 and backend.count(staging("copy")) == 3


def test_I1_nested_transactions_join_the_outer_one(backend) -> None:
    with pytest.raises(Boom):
        with backend.transaction():
            with backend.transaction():
                put(backend, staging("inner"), arrow({"k": [1]}))
            assert backend.exists(staging("inner"))
            raise Boom  # the outer failure undoes the inner block's work too
    assert not backend.exists(staging("inner"))
    with pytest.raises(Boom):
        with backend.transaction():
            put(backend, staging("outer"), arrow({"k": [1]}))
            with backend.transaction():
                raise Boom
    assert not backend.exists(staging("outer"))
    with backend.transaction():
        with backend.transaction():
            put(backend, staging("inner"), arrow({"k": [1]}))
        put(backend, staging("outer"), arrow({"k": [1]}))
    assert backend.exists(staging("inner")) and backend.exists(staging("outer"))
    with backend.transaction():  # usable again after all of that
        put(backend, staging("after"), arrow({"k": [1]}))
    assert backend.exists(staging("after"))


def test_I1_catalog_writes_share_the_data_transaction(backend) -> None:
    """One transaction covers data and metadata: a failed publish leaves neither behind."""
    from engine.state import metadata

    metadata.ensure_schema(backend.catalog)
    published = Relation("offline", "published")
    with pytest.raises(Boom):
        with backend.transaction():
            metadata.start_run(backend.catalog, "run-1")
            put(backend, published, arrow({"k": [1]}))
            put(backend, staging("staged"), arrow({"k": [1]}))
            raise Boom
    assert metadata.run_started_at(backend.catalog, "run-1") is None
    assert not backend.exists(published) and not backend.exists(staging("staged"))
    with backend.transaction():
        metadata.start_run(backend.catalog, "run-2")
        put(backend, published, arrow({"k": [1]}))
    assert metadata.run_started_at(backend.catalog, "run-2") is not None
    assert backend.exists(published)


def test_committed_work_survives_reopening_and_rolled_back_work_does_not(backend_impl, backend, tmp_path) -> None:
    if not backend_impl.persistent:
        pytest.skip(f"{backend_impl.id} keeps nothing after close")
    durable, volatile = Relation("offline", "durable"), Relation("offline", "volatile")
    put(backend, durable, arrow({"k": [1, 2]}, {"k": "int"}))
    with pytest.raises(Boom):
        with backend.transaction():
            put(backend, volatile, arrow({"k": [1]}))
            put(backend, durable, arrow({"k": [3]}, {"k": "int"}), mode="append")
            raise Boom
    backend.close()
    reopened = backend_impl.reopen(tmp_path)
    try:
        assert sorted(r["k"] for r in rows(reopened, durable)) == [1, 2]  # the rolled-back commit is invisible
        assert not reopened.exists(volatile)
        put(reopened, durable, arrow({"k": [4]}, {"k": "int"}), mode="append")  # starts from the recorded commit
        assert sorted(r["k"] for r in rows(reopened, durable)) == [1, 2, 4]
    finally:
        reopened.close()


# --- user SQL and the sandbox (Q1, Q8, V2) ---------------------------------------------------------


def test_run_select_maps_declared_names_to_relations(backend) -> None:
    source = staging("orders_in")
    put(backend, source, arrow({"k": [1, 2, 3], "v": [5, 6, 7]}, {"k": "int", "v": "int"}))
    assert backend.run_select(staging("big"), "SELECT k, v * 2 AS w FROM orders WHERE v > 5", {"orders": source}, timeout_s=30) == 2
    assert sorted((r["k"], r["w"]) for r in rows(backend, staging("big"))) == [(2, 12), (3, 14)]


@pytest.mark.parametrize("sql", ["DROP TABLE orders", "SELECT 1; SELECT 2", "SELECT * FROM undeclared"])
def test_run_select_refuses_anything_but_one_select_over_declared_tables(backend, sql) -> None:
    with pytest.raises(EngineError):
        backend.run_select(staging("nope"), sql, {"orders": staging("orders_in")}, timeout_s=30)
    assert not backend.exists(staging("nope"))


def test_Q8_run_select_times_out(backend) -> None:
    with pytest.raises(EngineError, match="timed out"):
        backend.run_select(staging("bomb"), "SELECT count(*) AS n FROM range(100000000) a, range(100000000) b", {}, timeout_s=0.3)
    assert not backend.exists(staging("bomb"))


@pytest.mark.parametrize("probe", ["read_csv('/etc/passwd')", "read_text('/etc/passwd')", "'/etc/passwd'", "glob('/etc/*')"])
def test_Q1_after_lock_down_user_sql_cannot_read_files(backend, probe) -> None:
    """Q1: a feature group's SELECT that reads a file is refused (by the gate or the sandbox)."""
    backend.lock_down()
    with pytest.raises(EngineError):
        backend.run_select(staging("leak"), f"SELECT * FROM {probe}", {}, timeout_s=30)
    assert not backend.exists(staging("leak"))


@pytest.mark.parametrize("probe", ["read_csv('/etc/passwd')", "read_text('/etc/passwd')"])
def test_V2_the_sandbox_stops_a_file_read_the_gate_missed_and_keeps_own_tables_usable(backend, probe) -> None:
    """V2: a view filter that slipped past the gate reads the file before ``lock_down`` and is
    refused after it (EngineError, nothing created), while the engine's own tables stay readable
    and writable."""
    if not backend.capabilities.sandboxed_sql:
        pytest.skip(f"{backend.name} declares no sandbox (a spec needing one fails validate)")
    source = staging("before_lock")
    put(backend, source, arrow({"k": [1, 2]}, {"k": "int"}))
    leak = Scan(source, filters=(user_filter(f"EXISTS (SELECT 1 FROM {probe})", gated=False),))
    assert backend.count(leak) == 2  # unlocked, the file is readable: only the sandbox stops it
    backend.lock_down()
    with pytest.raises(EngineError):
        backend.create(staging("leak"), leak)
    assert not backend.exists(staging("leak"))
    put(backend, staging("after_lock"), arrow({"k": [3]}, {"k": "int"}))
    backend.create(staging("copy"), source)
    assert backend.count(staging("copy")) == 2 and backend.count(staging("after_lock")) == 1


def test_an_implementation_whose_component_is_missing_is_skipped_with_the_reason() -> None:
    """The harness itself: a future implementation (Spark) without its library skips, visibly."""
    from tests.contract.conftest import Impl, _require

    with pytest.raises(pytest.skip.Exception, match="spark-local: no_such_module_for_contract is not installed"):
        _require(Impl("spark-local", lambda tmp: None, requires=("no_such_module_for_contract",)))
