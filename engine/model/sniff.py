"""Columns of a source file without a database, through its format's sniffer
(``engine.model.formats``: Parquet schemas, CSV headers, JSON-lines keys, ...).

Pure file reading for ``engine validate`` (E4 column checks); never imports a backend.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from engine.model.formats import FORMATS
from engine.model.objects import Source, SourceFormat

# memo(path, compute, kind) -> compute(path), or the value remembered for this very file (the
# workspace's stat-keyed digest cache, ``engine.compiler.fingerprint.memo``).
Memo = Callable[[Path, Callable[[Path], str], str], str]


def sniff_columns(source: Source, memo: Memo | None = None) -> dict[str, str] | None:
    """Columns of a source (name -> DuckDB type, ``UNKNOWN`` where unsure) without a database.

    Declared ``columns`` override sniffed types. None when no file matches or it cannot be read.
    A Parquet schema goes through ``memo`` when given (a file whose ``stat()`` is unchanged has the
    same schema): its footer is then not read again on every apply.
    """
    declared = dict(source.columns)
    if not source.resolved_paths:
        return None
    first = source.resolved_paths[0]
    try:
        spec = FORMATS.get(source.format)
        if spec is None:
            columns = None
        elif memo is not None and source.format == SourceFormat.PARQUET:
            text = memo(first, lambda path: json.dumps(spec.sniff(path, source)), "parquet-columns:")
            columns = json.loads(text)
        else:
            columns = spec.sniff(first, source)
    except Exception:  # an unreadable file is reported when the source is ingested
        return None
    if columns is None:
        return None
    for name, typ in declared.items():
        columns[name] = typ
    return columns

