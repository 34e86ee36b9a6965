"""Rows crossing between Python and Spark. Driver rows (pandas or Arrow) become the Arrow tables
Spark and the lake read alike (``arrow_rows``); Spark's rows become the pandas frames DuckDB would
give (``to_pandas``). And row-wise Python over Spark rows, on the executors (``SparkBackend.map_frames``): the engine's
frame functions (on-demand features, the same functions the online path calls) run through
``DataFrame.mapInArrow``, one Arrow batch at a time, as pandas frames typed as DuckDB's would be.

A function that fails on an executor comes back to the driver as Spark's ``PythonException``, whose
text is the worker's traceback; the engine's own message travels inside it between two markers,
so the terminal shows that message (function, view, first failing row) and the log the trace.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from engine.errors import ExecutionError
from engine.sql.ops import Constant

if TYPE_CHECKING:
    import pandas
    import pyarrow
    from pyspark.sql import DataFrame

_MARK = "[[engine-error]]"
_END = "[[/engine-error]]"
_MESSAGE = re.compile(re.escape(_MARK) + r"(.*?)(?:" + re.escape(_END) + r"|$)", re.DOTALL)


class ArrowFrameMap:
    """``fn`` (pandas frame -> pandas frame) as a ``mapInArrow`` function yielding ``schema``.

    Spark hands timestamps over as UTC instants; the frame gets them tz-aware in UTC, as
    ``DuckDBBackend.frame`` gives them, so a function sees the same types on both backends."""

    def __init__(self, fn: Callable[["pandas.DataFrame"], "pandas.DataFrame"], schema: "pyarrow.Schema") -> None:
        self.fn = fn
        self.schema = schema

    def __call__(self, batches: Iterator["pyarrow.RecordBatch"]) -> Iterator["pyarrow.RecordBatch"]:
        import pyarrow as pa

        for batch in batches:
            if batch.num_rows == 0:
                continue
            frame = to_pandas(pa.Table.from_batches([batch]))
            try:
                out = self.fn(frame)
            except Exception as exc:  # noqa: BLE001 - the message crosses to the driver as text
                raise RuntimeError(f"{_MARK}{exc}{_END}") from None
            table = pa.Table.from_pandas(out[self.schema.names], preserve_index=False)
            yield from table.cast(self.schema).to_batches()


def map_frames(df: "DataFrame", fn: Callable, added: Mapping[str, str]) -> "DataFrame":
    """``df`` with ``fn``'s ``added`` columns, computed on the executors."""
    from pyspark.sql import types as T
    from pyspark.sql.pandas.types import to_arrow_schema

    from engine.backends.spark.types import spark_type

    fields = [f for f in df.schema.fields if f.name not in added]
    fields += [T.StructField(name, spark_type(type_), True) for name, type_ in added.items()]
    schema = T.StructType(fields)
    return df.mapInArrow(ArrowFrameMap(fn, _utc_schema(to_arrow_schema(schema, timezone="UTC"))), schema)


def engine_message(exc: BaseException) -> str | None:
    """The engine's message carried by an executor failure, if it is one."""
    found = _MESSAGE.search(str(exc))
    return found.group(1).strip() if found else None


def to_pandas(table: "pyarrow.Table") -> "pandas.DataFrame":
    """``table`` as the pandas frame DuckDB's ``.df()`` gives for the same rows, so a user function
    sees the same dtypes on both backends: times tz-aware in UTC, and integer and boolean columns
    holding NULLs as pandas' nullable ``Int64``/``boolean`` (not float64 and object)."""
    import pandas as pd
    import pyarrow as pa

    table = utc(table)
    frame = table.to_pandas()
    for field, column in zip(table.schema, table.columns):
        if column.null_count and (pa.types.is_integer(field.type) or pa.types.is_boolean(field.type)):
            dtype = pd.api.types.pandas_dtype(_NULLABLE.get(str(field.type), "boolean"))
            frame[field.name] = pa.table({"c": column}).to_pandas(types_mapper={field.type: dtype}.get)["c"].set_axis(frame.index)
    return frame


_NULLABLE = {"int8": "Int8", "int16": "Int16", "int32": "Int32", "int64": "Int64", "uint8": "UInt8", "uint16": "UInt16", "uint32": "UInt32", "uint64": "UInt64", "bool": "boolean"}


def _utc_schema(schema: "pyarrow.Schema") -> "pyarrow.Schema":
    import pyarrow as pa

    return pa.schema([pa.field(f.name, pa.timestamp("us", tz="UTC")) if pa.types.is_timestamp(f.type) and f.type.tz else f for f in schema])


def arrow_rows(rows: Any, constants: Sequence[Constant] = ()) -> "pyarrow.Table":
    """Driver rows (a pandas DataFrame or an Arrow table) as the Arrow table Spark and the lake
    read alike: times as UTC microseconds, plain strings, constants as typed columns."""
    import pandas as pd
    import pyarrow as pa

    if isinstance(rows, pd.DataFrame):
        rows = pa.Table.from_pandas(rows.reset_index(drop=True), preserve_index=False)
    if not isinstance(rows, pa.Table):
        raise ExecutionError(f"cannot write {type(rows).__name__}: expected a pandas DataFrame or an Arrow table")
    rows = rows.cast(pa.schema([_spark_field(f) for f in rows.schema]))
    for c in constants:
        rows = rows.append_column(c.name, pa.array([c.value] * rows.num_rows, _ARROW_TYPES.get(" ".join(c.type.upper().split()), pa.string())))
    return rows


def _arrow_type_table() -> dict:
    import pyarrow as pa

    return {
        "VARCHAR": pa.string(), "TEXT": pa.string(), "BIGINT": pa.int64(), "INTEGER": pa.int32(), "INT": pa.int32(),
        "DOUBLE": pa.float64(), "FLOAT": pa.float32(), "BOOLEAN": pa.bool_(), "DATE": pa.date32(),
        "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"), "TIMESTAMP WITH TIME ZONE": pa.timestamp("us", tz="UTC"),
        "TIMESTAMP": pa.timestamp("us"),
    }  # fmt: skip


class _LazyTypes(dict):
    def __missing__(self, key):
        if not self:
            self.update(_arrow_type_table())
            if key in self:
                return self[key]
        raise KeyError(key)

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default


_ARROW_TYPES = _LazyTypes()


def _spark_field(field: "pyarrow.Field") -> "pyarrow.Field":
    """An Arrow field as Spark takes it: large strings as strings, nanosecond or second times as
    microseconds, naive times kept naive."""
    import pyarrow as pa

    t = field.type
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return field.with_type(pa.string())
    if pa.types.is_timestamp(t) and (t.unit != "us" or t.tz not in (None, "UTC")):
        return field.with_type(pa.timestamp("us", tz="UTC" if t.tz else None))
    if pa.types.is_dictionary(t):
        return field.with_type(t.value_type)
    return field


def utc(table: "pyarrow.Table") -> "pyarrow.Table":
    """Timestamp columns labelled UTC (Spark's instants), the way DuckDB returns TIMESTAMPTZ."""
    import pyarrow as pa

    fields = []
    changed = False
    for f in table.schema:
        if pa.types.is_timestamp(f.type) and f.type.tz is not None and f.type.tz != "UTC":
            fields.append(f.with_type(pa.timestamp(f.type.unit, tz="UTC")))
            changed = True
        else:
            fields.append(f)
    return table.cast(pa.schema(fields)) if changed else table
