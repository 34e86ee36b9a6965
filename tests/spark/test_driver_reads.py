"""A stored table the Spark backend fetches is read on the driver straight from the lake's Parquet
files (``SparkTables._read_on_driver``) instead of collected through a Spark job. The two reads
must agree exactly: the same Arrow schema (``DataFrame.toArrow``'s types) and the same rows in
the same order (both follow the lake's file list), for every type a table can hold."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pyarrow as pa

from engine.sql import ops
from engine.sql.ops import Relation


def _typed_writes():
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    schema = pa.schema([
        ("i", pa.int64()), ("i32", pa.int32()), ("f", pa.float64()), ("f32", pa.float32()), ("s", pa.string()),
        ("b", pa.bool_()), ("t", pa.timestamp("us", tz="UTC")), ("d", pa.date32()), ("dec", pa.decimal128(12, 3)),
        ("bin", pa.binary()), ("xs", pa.list_(pa.float64())), ("st", pa.struct([("a", pa.int64()), ("b", pa.string())])),
    ])
    first = pa.table({
        "i": [1, None, -(2**62)], "i32": [7, None, -1], "f": [float("nan"), -0.0, float("inf")], "f32": [0.5, None, -2.0],
        "s": ["ü", None, ""], "b": [True, None, False], "t": [t0 + timedelta(microseconds=1), None, t0 + timedelta(days=400)],
        "d": [date(2024, 2, 29), None, date(1970, 1, 1)], "dec": [Decimal("1.250"), None, Decimal("-99.001")],
        "bin": [b"\x00\xff", None, b""], "xs": [[1.0, float("nan")], None, []], "st": [{"a": 1, "b": "x"}, None, {"a": None, "b": None}],
    }, schema=schema)
    second = pa.table({c: first.column(c).take([2, 0]) for c in schema.names}, schema=schema)
    return [first, second]


def _key(value):
    """NaN compares equal to NaN; -0.0 differs from 0.0."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else (value, math.copysign(1, value))
    if isinstance(value, list):
        return [_key(v) for v in value]
    if isinstance(value, dict):
        return {k: _key(v) for k, v in value.items()}
    return value


def _rows(table) -> list[str]:
    """The rows as a multiset (the order of a table's files is not part of the contract)."""
    return sorted(repr(_key(r)) for r in table.to_pylist())


def test_a_stored_table_read_on_the_driver_equals_what_spark_collects(spark_cluster, tmp_path) -> None:
    from engine.backends import load
    from engine.backends.catalog import SqliteCatalog
    from engine.backends.lake import Lake
    from engine.backends.spark.compile import ROW
    from tests.support_spark import cluster_settings

    catalog = SqliteCatalog.open(tmp_path / "catalog.sqlite")
    backend = load("spark").open(catalog, Lake(tmp_path / "tables", catalog), temp_directory=tmp_path / "tmp", settings=cluster_settings())
    try:
        target = Relation("offline", "typed")
        first, second = _typed_writes()
        backend.write(target, first)
        backend.write(target, second, mode="append")
        df = backend.compile(target).orderBy(ROW).drop(ROW)
        collected = df.toArrow()
        direct = backend._read_on_driver(target, df.schema)
        assert direct is not None, "a committed table is read on the driver"
        assert direct.schema == collected.schema
        assert [_key(r) for r in direct.to_pylist()] == [_key(r) for r in collected.to_pylist()]
        # With large Arrow string and binary types, as a session may be configured: the same.
        conf = "spark.sql.execution.arrow.useLargeVarTypes"
        before = backend.spark.conf.get(conf, "false")
        backend.spark.conf.set(conf, "true" if before != "true" else "false")
        try:
            collected = df.toArrow()
            direct = backend._read_on_driver(target, df.schema)
            assert direct is not None and direct.schema == collected.schema
            assert [_key(r) for r in direct.to_pylist()] == [_key(r) for r in collected.to_pylist()]
        finally:
            backend.spark.conf.set(conf, before)
        assert _rows(backend.fetch(target)) == _rows(pa.concat_tables([first, second]))

        # Scans: time-range filters, columns and an order (NULLs first, NaN above inf, -0.0 equal
        # to 0.0, ties in lake order: the written rows repeat), as Spark's orderBy gives them.
        t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
        scans = [
            ops.Scan(target, order_by=("f", "i")),
            ops.Scan(target, order_by=("s",), columns=("s", "t", "xs")),
            ops.Scan(target, filters=(ops.TimeRange("t", t0, t0 + timedelta(days=1)),), order_by=("b", "d", "dec")),
            ops.Scan(target, filters=(ops.TimeRange("t", t0, t0 + timedelta(days=500)),)),
        ]
        for scan in scans:
            df = backend.compile(scan)
            df = df.orderBy(ROW).drop(ROW)
            collected = df.toArrow()
            direct = backend._read_on_driver(scan, df.schema)
            assert direct is not None, scan
            assert direct.schema == collected.schema, scan
            assert [_key(r) for r in direct.to_pylist()] == [_key(r) for r in collected.to_pylist()], scan
        # A user filter (SQL) runs in Spark.
        assert backend._read_on_driver(ops.Scan(target, filters=(ops.NotIn(target, ("i",)),)), df.schema) is None

        # A staged (scratch) table is not a list of lake files: Spark collects it.
        staged = Relation("staging", "typed")
        backend.write(staged, first)
        assert backend._read_on_driver(staged, backend.compile(staged).schema) is None
        # As of the first commit: the files of that version only.
        old = backend.at_version(target, backend.lake_version(target) - 1)
        assert _rows(backend.fetch(old)) == _rows(first)
    finally:
        backend.close()
