"""The Parquet footer reader (``engine.model.parquet_schema``) that validation and the lake use
instead of pyarrow: checked against pyarrow's own reading of the same files (the oracle), on
random schemas, on files DuckDB writes, and on damaged files (F6: an unreadable source file is
reported, never a traceback or a hang)."""

from __future__ import annotations

import datetime as dt
import decimal
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.model.parquet_schema import read_columns

_ARROW_TO_DUCKDB = {
    "int8": "TINYINT", "int16": "SMALLINT", "int32": "INTEGER", "int64": "BIGINT",
    "uint8": "UTINYINT", "uint16": "USMALLINT", "uint32": "UINTEGER", "uint64": "UBIGINT",
    "float": "FLOAT", "halffloat": "FLOAT", "double": "DOUBLE", "bool": "BOOLEAN",
    "string": "VARCHAR", "large_string": "VARCHAR", "string_view": "VARCHAR", "date32[day]": "DATE",
}  # fmt: skip


def oracle(arrow_type: pa.DataType) -> str:
    """The type name validation read through pyarrow before (``pq.read_schema``)."""
    text = str(arrow_type)
    if text.startswith("timestamp"):
        return "TIMESTAMPTZ" if "tz=" in text else "TIMESTAMP"
    if text.startswith("decimal"):
        return text.replace("decimal128", "DECIMAL").replace("decimal256", "DECIMAL").upper()
    return _ARROW_TO_DUCKDB.get(text, "UNKNOWN")


def unit_of(arrow_type: pa.DataType) -> str | None:
    return arrow_type.unit if pa.types.is_timestamp(arrow_type) else None


TYPES = [
    pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64(),
    pa.float16(), pa.float32(), pa.float64(), pa.bool_(), pa.string(), pa.large_string(), pa.binary(),
    pa.large_binary(), pa.binary(4), pa.date32(), pa.time32("ms"), pa.time64("us"), pa.null(),
    pa.decimal128(10, 2), pa.decimal128(38, 9), pa.decimal128(4, 0),
    pa.timestamp("s"), pa.timestamp("ms"), pa.timestamp("us"), pa.timestamp("ns"),
    pa.timestamp("ms", tz="UTC"), pa.timestamp("us", tz="Europe/Paris"), pa.timestamp("ns", tz="UTC"),
    pa.list_(pa.int64()), pa.struct([("x", pa.int32()), ("y", pa.list_(pa.string()))]),
    pa.map_(pa.string(), pa.float64()), pa.list_(pa.struct([("z", pa.timestamp("us"))])),
]  # fmt: skip


def _column(arrow_type: pa.DataType, rows: int) -> pa.Array:
    return pa.nulls(rows, type=arrow_type)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    types=st.lists(st.sampled_from(TYPES), min_size=1, max_size=12),
    version=st.sampled_from(["1.0", "2.4", "2.6"]),
    store_schema=st.booleans(),
    rows=st.integers(0, 3),
)
def test_random_schemas_read_as_pyarrow_reads_them(tmp_path, types, version, store_schema, rows):
    table = pa.table({f"c{i}_{str(t)[:8]}": _column(t, rows) for i, t in enumerate(types)})
    path = tmp_path / "f.parquet"
    pq.write_table(table, path, version=version, store_schema=store_schema)
    expected = pq.read_schema(path)
    got = read_columns(path)
    assert [c.name for c in got] == expected.names
    for column, field in zip(got, expected, strict=True):
        assert column.type == oracle(field.type), (field, column)
        if pa.types.is_timestamp(field.type):
            # The unit stored in the file (pyarrow's schema may say the unit it was written from:
            # seconds are stored as milliseconds; with Parquet 1.0, nanoseconds as microseconds).
            leaves = pq.ParquetFile(path).schema
            leaf = next(leaves.column(i) for i in range(len(leaves)) if leaves.column(i).path == field.name)
            physical = leaf.logical_type.to_json()
            stored = {"milliseconds": "ms", "microseconds": "us", "nanoseconds": "ns"}[json.loads(physical)["timeUnit"]]
            assert column.unit == stored
            assert column.utc == (field.type.tz is not None)
        # Every timestamp inside the column, nested ones too, as the file stores it.
        leaves = pq.ParquetFile(path).schema
        stored_times = []
        for i in range(len(leaves)):
            leaf = leaves.column(i)
            if leaf.path.split(".")[0] == field.name and leaf.logical_type.type == "TIMESTAMP":
                spec = json.loads(leaf.logical_type.to_json())
                stored_times.append(({"milliseconds": "ms", "microseconds": "us", "nanoseconds": "ns"}[spec["timeUnit"]], spec["isAdjustedToUTC"]))
        assert list(column.times) == stored_times, field


def test_int96_timestamps_are_naive_nanoseconds(tmp_path):
    path = tmp_path / "spark.parquet"
    table = pa.table({"t": pa.array([dt.datetime(2024, 1, 1)], pa.timestamp("ns")), "k": [1]})
    pq.write_table(table, path, use_deprecated_int96_timestamps=True)
    t, k = read_columns(path)
    assert (t.name, t.type, t.physical, t.unit, t.utc) == ("t", "TIMESTAMP", "INT96", "ns", False)
    assert (k.type, k.physical, k.unit) == ("BIGINT", "INT64", None)


def test_dictionary_strings_read_as_text(tmp_path):
    # pyarrow said "dictionary<…>" (UNKNOWN); DuckDB reads the column as VARCHAR, and so does this.
    path = tmp_path / "cat.parquet"
    pq.write_table(pa.table({"c": pa.array(["a", "b", "a"]).dictionary_encode()}), path)
    assert [(c.name, c.type) for c in read_columns(path)] == [("c", "VARCHAR")]


def test_files_duckdb_writes_read_as_duckdb_describes_them(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    path = tmp_path / "duck.parquet"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        "COPY (SELECT 1::TINYINT a, 2::SMALLINT b, 3::INTEGER c, 4::BIGINT d, 5::UBIGINT e, 1.5::FLOAT f, 2.5::DOUBLE g, "
        "true h, 'x' i, DATE '2024-01-01' j, TIMESTAMP '2024-01-01 10:00:00' k, TIMESTAMPTZ '2024-01-01 10:00:00+00' l, "
        "1.25::DECIMAL(9, 2) m, [1, 2] n, {'x': 1} o, '\\xAA'::BLOB p) "
        f"TO '{path}' (FORMAT parquet)"
    )
    described = {name: type_ for name, type_, *_ in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()}
    got = {c.name: c.type for c in read_columns(path)}
    assert list(got) == list(described)
    renamed = {"TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ", "DECIMAL(9,2)": "DECIMAL(9, 2)"}
    for name, type_ in described.items():
        if type_.startswith(("INTEGER[", "STRUCT", "BLOB")):
            assert got[name] == "UNKNOWN"
        else:
            assert got[name] == renamed.get(type_, type_), name
    assert {c.name: c.unit for c in read_columns(path) if c.unit} == {"k": "us", "l": "us"}


def test_wide_and_nested_schemas(tmp_path):
    # Field ids above 15 (long-form field headers), long lists (varint sizes) and deep nesting.
    deep = pa.int64()
    for depth in range(10):
        deep = pa.struct([(f"s{depth}", deep), ("v", pa.list_(pa.string()))])
    columns = {f"col_{i:04d}": pa.array([decimal.Decimal("1.5")], pa.decimal128(12, 3)) for i in range(600)}
    columns["deep"] = pa.nulls(1, deep)
    columns["last"] = pa.array([1.0])
    path = tmp_path / "wide.parquet"
    pq.write_table(pa.table(columns), path, write_statistics=True)
    got = read_columns(path)
    assert len(got) == 602 and got[0].type == "DECIMAL(12, 3)"
    assert (got[-2].type, got[-2].physical) == ("UNKNOWN", "GROUP") and got[-1].type == "DOUBLE"


@pytest.mark.parametrize(
    "damage",
    ["empty", "no_magic", "truncated_footer", "huge_length", "garbage_footer", "csv"],
)
def test_f6_damaged_files_raise_value_error(tmp_path, damage):
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"a": [1, 2], "t": pa.array([dt.datetime(2024, 1, 1)] * 2, pa.timestamp("us"))}), good)
    data = good.read_bytes()
    length = int.from_bytes(data[-8:-4], "little")
    bad = {
        "empty": b"",
        "no_magic": data[:-4] + b"XXXX",
        "truncated_footer": data[: -8 - length // 2] + data[-8:],
        "huge_length": data[:-8] + (2**31).to_bytes(4, "little") + b"PAR1",
        "garbage_footer": data[: -8 - length] + bytes(range(256))[:length] + data[-8:],
        "csv": b"a,b\n1,2\n",
    }[damage]
    path = tmp_path / "bad.parquet"
    path.write_bytes(bad)
    with pytest.raises(ValueError):
        read_columns(path)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(noise=st.binary(min_size=1, max_size=400), at=st.integers(0, 10_000))
def test_f6_random_footer_corruption_never_escapes_as_another_error(tmp_path, noise, at):
    path = tmp_path / "f.parquet"
    pq.write_table(pa.table({"a": [1], "b": ["x"], "c": pa.array([dt.datetime(2024, 1, 1)], pa.timestamp("ms"))}), path)
    data = bytearray(path.read_bytes())
    length = int.from_bytes(data[-8:-4], "little")
    start = len(data) - 8 - length + at % length
    data[start : start + len(noise)] = noise[: max(0, len(data) - 8 - start)]
    path.write_bytes(bytes(data[: len(data)]))
    try:
        columns = read_columns(path)
    except ValueError:
        return
    assert all(isinstance(c.name, str) for c in columns)
