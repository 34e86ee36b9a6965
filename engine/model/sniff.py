"""Columns of a source file without a database, through its format's sniffer
(``engine.model.formats``: Parquet schemas, CSV headers, JSON-lines keys, ...).

Pure file reading for ``engine validate`` (E4 column checks); never imports a backend.
"""

from __future__ import annotations

from engine.model.formats import FORMATS
from engine.model.objects import Source


def sniff_columns(source: Source) -> dict[str, str] | None:
    """Columns of a source (name -> DuckDB type, ``UNKNOWN`` where unsure) without a database.

    Declared ``columns`` override sniffed types. None when no file matches or it cannot be read.
    """
    declared = dict(source.columns)
    if not source.resolved_paths:
        return None
    first = source.resolved_paths[0]
    try:
        spec = FORMATS.get(source.format)
        columns = spec.sniff(first, source) if spec is not None else None
    except Exception:  # an unreadable file is reported when the source is ingested
        return None
    if columns is None:
        return None
    for name, typ in declared.items():
        columns[name] = typ
    return columns

