"""The source formats the spec knows: each one's name and how to read a file's columns without a
database (for ``engine validate``).

Owns the format registry, ``FORMATS``. The JSON Schema's ``source_format`` enum mirrors it (the
file lists the built-ins; ``engine.project`` passes the registered names to the validator) and each
backend reads the formats it has a reader for (DuckDB: ``engine.backends.duckdb.sources.READERS``,
whose names are its ``capabilities.source_formats``). Must not import a backend or open a database.

Adding a format: docs/architecture.md, "… a source format".
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.model.objects import Source, SourceFormat

Sniffer = Callable[[Path, Source], "dict[str, str] | None"]
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


@dataclass(frozen=True)
class SourceFormatSpec:
    """A source format: ``name`` as written in ``format:``, and ``sniff(path, source)``, the
    columns of one file (name -> DuckDB type, ``UNKNOWN`` where unsure) or None when it cannot tell.
    A sniffer reads as little as it can (a header, a schema) and may raise on an unreadable file."""

    name: str
    sniff: Sniffer


def register_format(spec: SourceFormatSpec) -> SourceFormatSpec:
    """Make ``spec.name`` a valid ``format:`` (a programming error if the name is taken or malformed)."""
    if not _NAME.match(spec.name):
        raise ValueError(f"invalid source format name {spec.name!r}: lowercase letters, digits and _ (max 31)")
    if spec.name in FORMATS:
        raise ValueError(f"source format '{spec.name}' is already registered")
    FORMATS[spec.name] = spec
    return spec


def unregister_format(name: str) -> None:
    """Forget a format registered by :func:`register_format` (tests, plugins being unloaded)."""
    FORMATS.pop(name, None)


def format_names() -> tuple[str, ...]:
    """The registered format names, built-ins first, in registration order.

    >>> format_names()[:3]
    ('csv', 'parquet', 'jsonl')
    """
    return tuple(FORMATS)


# --- the built-in sniffers -------------------------------------------------------------------------


def open_text(path: Path):
    """A text file (gzip when it ends in ``.gz``) for header sniffing; bad bytes are replaced."""
    if path.suffix == ".gz":
        import gzip

        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace", newline="")


def parquet_columns(path: Path, source: Source) -> dict[str, str] | None:
    """The columns of a Parquet file, from its footer (``engine.model.parquet_schema``: no pyarrow
    import, which cost 0.15–0.2 s and ~60 MB per process)."""
    from engine.model.parquet_schema import read_columns

    return {column.name: column.type for column in read_columns(path)}


def csv_columns(path: Path, source: Source) -> dict[str, str] | None:
    if not source.csv.header:
        return None
    with open_text(path) as fh:
        row = next(csv.reader(fh, delimiter=source.csv.delimiter), None)
    return {name: "UNKNOWN" for name in row} if row else None


def jsonl_columns(path: Path, source: Source) -> dict[str, str] | None:
    with open_text(path) as fh:
        line = fh.readline()
    obj = json.loads(line) if line.strip() else None
    return {k: "UNKNOWN" for k in obj} if isinstance(obj, dict) else None


# Read by validation only through sniff_columns and format_names; changed only by register_format.
FORMATS: dict[str, SourceFormatSpec] = {
    spec.name: spec
    for spec in (
        SourceFormatSpec(SourceFormat.CSV, csv_columns),
        SourceFormatSpec(SourceFormat.PARQUET, parquet_columns),
        SourceFormatSpec(SourceFormat.JSONL, jsonl_columns),
    )
}
