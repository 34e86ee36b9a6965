"""Spark types and the engine's type names (today DuckDB's: ``BIGINT``, ``DOUBLE``,
``TIMESTAMP WITH TIME ZONE``), both ways, so the stores see one vocabulary whichever backend runs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql.types import DataType

_DECIMAL = re.compile(r"^(?:DECIMAL|NUMERIC)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)$")


def engine_type(data_type: "DataType") -> str:
    """The engine type name of a Spark type (what ``Backend.columns`` reports)."""
    from pyspark.sql import types as T

    match data_type:
        case T.BooleanType():
            return "BOOLEAN"
        case T.ByteType():
            return "TINYINT"
        case T.ShortType():
            return "SMALLINT"
        case T.IntegerType():
            return "INTEGER"
        case T.LongType():
            return "BIGINT"
        case T.FloatType():
            return "FLOAT"
        case T.DoubleType():
            return "DOUBLE"
        case T.DecimalType():
            return f"DECIMAL({data_type.precision},{data_type.scale})"
        case T.StringType() | T.VarcharType() | T.CharType():
            return "VARCHAR"
        case T.BinaryType():
            return "BLOB"
        case T.DateType():
            return "DATE"
        case T.TimestampNTZType():
            return "TIMESTAMP"
        case T.TimestampType():
            return "TIMESTAMP WITH TIME ZONE"
        case T.ArrayType():
            return f"{engine_type(data_type.elementType)}[]"
        case T.NullType():
            return "INTEGER"
    return data_type.simpleString().upper()


_SPARK_NAMES = {
    "BOOLEAN": "boolean", "BOOL": "boolean", "TINYINT": "tinyint", "SMALLINT": "smallint", "INTEGER": "int",
    "INT": "int", "BIGINT": "bigint", "HUGEINT": "decimal(38,0)", "FLOAT": "float", "REAL": "float",
    "DOUBLE": "double", "VARCHAR": "string", "TEXT": "string", "STRING": "string", "BLOB": "binary",
    "DATE": "date", "TIMESTAMP": "timestamp_ntz", "DATETIME": "timestamp_ntz", "TIMESTAMPTZ": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamp",
}  # fmt: skip


def spark_type_name(engine_name: str) -> str:
    """The Spark SQL type for an engine type name (``add_column``, ``cast_column``, constants)."""
    upper = " ".join(engine_name.strip().upper().split())
    if upper in _SPARK_NAMES:
        return _SPARK_NAMES[upper]
    if match := _DECIMAL.match(upper):
        return f"decimal({match.group(1)},{match.group(2)})"
    if upper.endswith("[]"):
        return f"array<{spark_type_name(upper[:-2])}>"
    raise ValueError(f"no Spark type for the engine type {engine_name!r}")


def is_float(data_type: "DataType") -> bool:
    from pyspark.sql import types as T

    return isinstance(data_type, T.FloatType | T.DoubleType)


def spark_type(engine_name: str) -> "DataType":
    """The Spark type object for an engine type name, without parsing DDL on the JVM (so it works
    on Spark Connect too) for the plain types; other types through Spark's DDL parser."""
    from pyspark.sql import types as T

    simple = {
        "boolean": T.BooleanType, "tinyint": T.ByteType, "smallint": T.ShortType, "int": T.IntegerType,
        "bigint": T.LongType, "float": T.FloatType, "double": T.DoubleType, "string": T.StringType,
        "binary": T.BinaryType, "date": T.DateType, "timestamp": T.TimestampType, "timestamp_ntz": T.TimestampNTZType,
    }  # fmt: skip
    name = spark_type_name(engine_name)
    if name in simple:
        return simple[name]()
    if match := re.match(r"^decimal\((\d+),(\d+)\)$", name):
        return T.DecimalType(int(match.group(1)), int(match.group(2)))
    return T._parse_datatype_string(name)
