"""The columns of a Parquet file, read from its footer without pyarrow.

Validation (``engine validate``, and the validation that starts every ``engine apply``) reads the
schema of each Parquet source, and the lake checks a file's time units before it adopts the file
as a table's data. Through ``pyarrow.parquet`` that cost 0.15–0.2 s of import and ~60 MB of
resident memory per process, the largest fixed cost of an apply. A Parquet footer is a Thrift
``FileMetaData`` in the compact protocol; its schema is the list of ``SchemaElement``s that comes
second in it, and that is all this module reads (the format is fixed by the Parquet spec:
``parquet.thrift``, https://github.com/apache/parquet-format).

Pure file reading: never imports a database, pyarrow or a backend. Any malformed footer raises
``ValueError`` (callers treat the file as unreadable).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

_MAGIC = b"PAR1"
_MAX_FOOTER = 64 * 2**20  # a schema of thousands of columns is a few hundred KB

# Parquet physical types (parquet.thrift ``Type``)
_BOOLEAN, _INT32, _INT64, _INT96, _FLOAT, _DOUBLE, _BYTE_ARRAY, _FIXED = range(8)
_PHYSICAL = ("BOOLEAN", "INT32", "INT64", "INT96", "FLOAT", "DOUBLE", "BYTE_ARRAY", "FIXED_LEN_BYTE_ARRAY")

# Legacy ``ConvertedType`` values this module maps
_UTF8, _ENUM, _DECIMAL, _DATE = 0, 4, 5, 6
_TIME_MILLIS, _TIME_MICROS, _TIMESTAMP_MILLIS, _TIMESTAMP_MICROS = 7, 8, 9, 10
_CONVERTED_INTS = {11: "UTINYINT", 12: "USMALLINT", 13: "UINTEGER", 14: "UBIGINT", 15: "TINYINT", 16: "SMALLINT", 17: "INTEGER", 18: "BIGINT"}

# ``LogicalType`` union members (field ids)
_L_STRING, _L_ENUM, _L_DECIMAL, _L_DATE, _L_TIME, _L_TIMESTAMP, _L_INTEGER, _L_FLOAT16 = 1, 4, 5, 6, 7, 8, 10, 15
_UNITS = {1: "ms", 2: "us", 3: "ns"}  # ``TimeUnit`` union members

# Thrift compact protocol type ids
_T_STOP, _T_TRUE, _T_FALSE, _T_BYTE, _T_I16, _T_I32, _T_I64, _T_DOUBLE = 0, 1, 2, 3, 4, 5, 6, 7
_T_BINARY, _T_LIST, _T_SET, _T_MAP, _T_STRUCT = 8, 9, 10, 11, 12


@dataclass(frozen=True)
class ParquetColumn:
    """A top-level column: its ``name``; ``type``, the DuckDB type name it reads as (``UNKNOWN`` for
    nested and unusual types, as validation expects); ``physical``, the Parquet physical type
    (``GROUP`` for a nested column); and for a timestamp its stored ``unit`` (``ms``, ``us``, ``ns``;
    ``ns`` for a legacy INT96) and whether it is adjusted to UTC (an instant, ``TIMESTAMPTZ``);
    ``times``, the same of every timestamp inside the column (the lake adopts a file only if each
    is in microseconds)."""

    name: str
    type: str
    physical: str
    unit: str | None = None
    utc: bool | None = None
    #: every timestamp stored in the column, nested ones included, depth first: (unit, utc)
    times: tuple[tuple[str, bool], ...] = ()


def read_columns(path: str | os.PathLike) -> list[ParquetColumn]:
    """The top-level columns of the Parquet file at ``path``, in file order (ValueError if it is
    not a readable Parquet file; OSError if it cannot be opened)."""
    with open(Path(path), "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size < 12:
            raise ValueError("too short to be a Parquet file")
        fh.seek(size - 8)
        tail = fh.read(8)
        if tail[4:] != _MAGIC:
            raise ValueError("no Parquet magic at the end (an encrypted footer, or not a Parquet file)")
        length = struct.unpack("<I", tail[:4])[0]
        if length <= 0 or length > min(_MAX_FOOTER, size - 12):
            raise ValueError("the footer length is out of range")
        fh.seek(size - 8 - length)
        footer = fh.read(length)
    try:
        elements = _Reader(footer).schema_elements()
    except (IndexError, struct.error, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"malformed Parquet footer ({type(exc).__name__})") from None
    return _top_level(elements)


def _top_level(elements: list[dict]) -> list[ParquetColumn]:
    if not elements:
        raise ValueError("the Parquet schema is empty")
    root, position = elements[0], 1
    out = []
    for _ in range(int(root.get(5, 0))):
        if position >= len(elements):
            raise ValueError("the Parquet schema lists fewer columns than its root says")
        column = _column(elements[position])
        end = _subtree_end(elements, position)
        if column.physical == "GROUP":
            times = tuple(t for e in elements[position + 1 : end] if not e.get(5) and 1 in e for t in _column(e).times)
            column = ParquetColumn(column.name, column.type, column.physical, times=times)
        out.append(column)
        position = end
    return out


def _subtree_end(elements: list[dict], position: int) -> int:
    """The index after the element at ``position`` and all its descendants (the schema is a
    depth-first flattening of the column tree)."""
    pending = 1
    while pending:
        if position >= len(elements):
            raise ValueError("the Parquet schema ends inside a nested column")
        pending += int(elements[position].get(5, 0)) - 1
        position += 1
    return position


def _column(element: dict) -> ParquetColumn:
    name = element.get(4)
    if not isinstance(name, bytes):
        raise ValueError("a Parquet column without a name")
    name_text = name.decode("utf-8")
    if element.get(5) or 1 not in element:
        return ParquetColumn(name_text, "UNKNOWN", "GROUP")
    physical = int(element[1])
    if not 0 <= physical < len(_PHYSICAL):
        raise ValueError(f"unknown Parquet physical type {physical}")
    converted = element.get(6)
    logical: dict = element.get(10) or {}
    kind, detail = next(iter(logical.items()), (None, None))
    unit = utc = None
    type_ = "UNKNOWN"
    if kind == _L_TIMESTAMP or converted in (_TIMESTAMP_MILLIS, _TIMESTAMP_MICROS):
        if kind == _L_TIMESTAMP:
            unit = _UNITS.get(next(iter((detail.get(2) or {}).keys()), 0), "?")
            utc = bool(detail.get(1))
        else:  # legacy: timestamps annotated this way are UTC instants
            unit, utc = ("ms" if converted == _TIMESTAMP_MILLIS else "us"), True
        type_ = "TIMESTAMPTZ" if utc else "TIMESTAMP"
    elif physical == _INT96:  # legacy Spark/Impala timestamps, read as naive nanoseconds
        unit, utc, type_ = "ns", False, "TIMESTAMP"
    elif kind == _L_DECIMAL or converted == _DECIMAL:
        scale = detail.get(1, 0) if kind == _L_DECIMAL else element.get(7, 0)
        precision = detail.get(2, 0) if kind == _L_DECIMAL else element.get(8, 0)
        type_ = f"DECIMAL({int(precision)}, {int(scale)})"
    elif kind == _L_DATE or converted == _DATE:
        type_ = "DATE"
    elif kind == _L_TIME or converted in (_TIME_MILLIS, _TIME_MICROS):
        type_ = "UNKNOWN"
    elif kind == _L_INTEGER:
        width, signed = int(detail.get(1, 32)), bool(detail.get(2, True))
        names = {8: "TINYINT", 16: "SMALLINT", 32: "INTEGER", 64: "BIGINT"}
        type_ = ("" if signed else "U") + names.get(width, "BIGINT") if width in names else "UNKNOWN"
    elif converted in _CONVERTED_INTS:
        type_ = _CONVERTED_INTS[converted]
    elif kind == _L_FLOAT16:
        type_ = "FLOAT"
    elif physical == _BYTE_ARRAY and (kind in (_L_STRING, _L_ENUM) or converted in (_UTF8, _ENUM)):
        type_ = "VARCHAR"
    elif kind is None and converted is None:
        type_ = {_BOOLEAN: "BOOLEAN", _INT32: "INTEGER", _INT64: "BIGINT", _FLOAT: "FLOAT", _DOUBLE: "DOUBLE"}.get(physical, "UNKNOWN")
    times = ((unit, bool(utc)),) if unit is not None else ()
    return ParquetColumn(name_text, type_, _PHYSICAL[physical], unit, utc, times)


class _Reader:
    """The few pieces of the Thrift compact protocol a footer's schema needs."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def schema_elements(self) -> list[dict]:
        """Field 2 of ``FileMetaData`` (list<SchemaElement>), each element as {field id: value}."""
        last = 0
        while True:
            field, type_, last = self._field_header(last)
            if type_ == _T_STOP:
                raise ValueError("the Parquet footer has no schema")
            if field == 2 and type_ == _T_LIST:
                element_type, count = self._list_header()
                if element_type != _T_STRUCT:
                    raise ValueError("the Parquet schema is not a list of structs")
                return [self._struct(depth=1) for _ in range(count)]
            self._skip(type_, depth=1)

    def _byte(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return value

    def _varint(self) -> int:
        shift = result = 0
        while True:
            byte = self._byte()
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
            if shift > 70:
                raise ValueError("a varint runs too long")

    def _zigzag(self) -> int:
        n = self._varint()
        return (n >> 1) ^ -(n & 1)

    def _field_header(self, last: int) -> tuple[int, int, int]:
        byte = self._byte()
        type_ = byte & 0x0F
        if type_ == _T_STOP:
            return 0, _T_STOP, last
        delta = byte >> 4
        field = last + delta if delta else self._zigzag()
        return field, type_, field

    def _list_header(self) -> tuple[int, int]:
        byte = self._byte()
        count = byte >> 4
        if count == 15:
            count = self._varint()
        if count > len(self.data):
            raise ValueError("a list longer than the footer")
        return byte & 0x0F, count

    def _struct(self, depth: int) -> dict:
        """A struct as {field id: value}: ints, bytes, booleans and nested structs are kept; lists,
        sets and maps are skipped (the schema elements need none)."""
        if depth > 32:
            raise ValueError("structs nested too deep")
        out: dict = {}
        last = 0
        while True:
            field, type_, last = self._field_header(last)
            if type_ == _T_STOP:
                return out
            if type_ in (_T_TRUE, _T_FALSE):
                out[field] = type_ == _T_TRUE
            elif type_ in (_T_BYTE, _T_I16, _T_I32, _T_I64):
                out[field] = self._byte() if type_ == _T_BYTE else self._zigzag()
            elif type_ == _T_BINARY:
                out[field] = self._binary()
            elif type_ == _T_STRUCT:
                out[field] = self._struct(depth + 1)
            else:
                self._skip(type_, depth + 1)

    def _binary(self) -> bytes:
        length = self._varint()
        if self.pos + length > len(self.data):
            raise ValueError("a string runs past the footer")
        value = self.data[self.pos : self.pos + length]
        self.pos += length
        return value

    def _skip(self, type_: int, depth: int) -> None:
        if depth > 32:
            raise ValueError("values nested too deep")
        if type_ in (_T_TRUE, _T_FALSE):
            return
        if type_ == _T_BYTE:
            self.pos += 1
        elif type_ in (_T_I16, _T_I32, _T_I64):
            self._varint()
        elif type_ == _T_DOUBLE:
            self.pos += 8
        elif type_ == _T_BINARY:
            self._binary()
        elif type_ in (_T_LIST, _T_SET):
            element_type, count = self._list_header()
            for _ in range(count):
                if element_type in (_T_TRUE, _T_FALSE):
                    self.pos += 1  # a boolean in a list takes a byte of its own
                else:
                    self._skip(element_type, depth + 1)
        elif type_ == _T_MAP:
            count = self._varint()
            if count:
                kinds = self._byte()
                for _ in range(count):
                    self._skip(kinds >> 4, depth + 1)
                    self._skip(kinds & 0x0F, depth + 1)
        elif type_ == _T_STRUCT:
            self._struct(depth + 1)
        else:
            raise ValueError(f"unknown Thrift compact type {type_}")
        if self.pos > len(self.data):
            raise IndexError("past the footer")
