"""How the DuckDB backend ingests a declared source into a table: Parquet files that already hold
what the table stores are committed as they are (hard links, ``Lake.adopt``); new files of a source
are appended when they read to the stored columns; anything else is read by the format's reader
(``sources``) and replaces the table. The mixin of ``DuckDBBackend``: it uses the backend's
connection, lake and tables (``LakeTables``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from engine.backends.base import IngestReport
from engine.backends.duckdb import connection, sources
from engine.sql.ops import Relation

if TYPE_CHECKING:
    from engine.model.objects import Source


class SourceTables:
    """Declared sources read into (lake) tables."""

    def read_source(self, source: "Source", target: Relation, *, files: Sequence[Path] | None = None, mode: str = "replace") -> IngestReport:
        """Read a source's files into ``target`` (a lake table: one commit), with its quarantined rows.

        ``mode="append"`` with ``files``: read only those files and append their rows to the
        existing ``target`` (one commit), when they read to the stored columns and types; otherwise
        (a drifting column, a type sniffed differently) every file is read again and replaces it."""
        if not self._in_lake(target):
            rows, rejected = sources.read_source(self.con, source, str(target), is_storage_failure=connection.is_storage_failure)
            return IngestReport(rows, tuple(rejected))
        adopted = self._adopt_parquet(source, target, files if mode == "append" else None)
        if adopted is not None:
            return adopted
        staged = Relation("staging", f"_source__{target.name}")
        self.drop(staged)
        # On a failure the caller's transaction is aborted and rolls the staging table back; no
        # statement may run before that (not even a DROP).
        if mode == "append" and files is not None and self.exists(target):
            import dataclasses

            batch = dataclasses.replace(source, resolved_paths=tuple(files), allow_empty=True)
            rows, rejected = sources.read_source(self.con, batch, str(staged), is_storage_failure=connection.is_storage_failure)
            self._bind(target)
            stored = self.con.execute(f"DESCRIBE SELECT * FROM {target}").fetchall()
            new = self.con.execute(f"DESCRIBE {self._storable(f'SELECT * FROM {staged}')}").fetchall()
            if [tuple(r[:2]) for r in stored] == [tuple(r[:2]) for r in new]:
                if rows:
                    self._commit(target, f"SELECT * FROM {staged}", mode="append")
                self.drop(staged)
                return IngestReport(rows, tuple(rejected), appended=True, file_rows=self._file_rows(batch, rows))
            self.drop(staged)
        rows, rejected = sources.read_source(self.con, source, str(staged), is_storage_failure=connection.is_storage_failure)
        self.create(target, staged, replace=True)
        self.drop(staged)
        return IngestReport(rows, tuple(rejected), file_rows=self._file_rows(source, rows))

    def _adopt_parquet(self, source: "Source", target: Relation, files: Sequence[Path] | None) -> IngestReport | None:
        """A Parquet source whose files already hold what the table stores (the same columns and
        types in every file, times as UTC instants, types a Delta table holds) is committed as its
        own files, hard-linked (``Lake.adopt``): no rows are read or written, and the feature
        group's query scans those very files. ``files``: append only these to the stored table.
        None: the source needs converting (or cannot be linked), and is read and written instead."""
        from engine.backends.duckdb.sources import TimeKind, _time_type

        if source.format != "parquet" or not source.resolved_paths:
            return None
        paths = [str(p) for p in (files if files is not None else source.resolved_paths)]
        if files is not None and not self.exists(target):
            return None
        self.con.complete()
        try:
            described = [self.con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [[p]]).fetchall() for p in paths]
            counts = dict(self.con.execute("SELECT file_name, num_rows FROM parquet_file_metadata(?)", [paths]).fetchall())
        except Exception:  # unreadable: the general path names the file (F6, F7)
            return None
        columns = [tuple(r[:2]) for r in described[0]]
        if any([tuple(r[:2]) for r in d] != columns for d in described[1:]):
            return None  # drifting columns: read by name and unified
        if any(_time_type(t) is TimeKind.NAIVE for _, t in columns):
            return None  # naive times are read in the source's timezone
        select = "SELECT * FROM read_parquet(?)"
        if self._storable(select, [paths]) != select:
            return None  # a type the table stores widened
        if files is not None:
            self._bind(target)
            if [tuple(r[:2]) for r in self.con.execute(f"DESCRIBE SELECT * FROM {target}").fetchall()] != columns:
                return None
        rows = [int(counts.get(p, 0)) for p in paths]
        if sum(rows) == 0 and not source.allow_empty and files is None:
            return None  # the general path says the source is empty
        schema = self.con.sql("SELECT * FROM read_parquet(?) LIMIT 0", params=[paths[:1]])  # an Arrow stream (no pyarrow)
        if self.lake.adopt(target, list(zip(paths, rows, strict=True)), schema, mode="append" if files is not None else "overwrite") is None:
            return None
        self._bind(target)
        return IngestReport(sum(rows), (), appended=files is not None, file_rows=tuple(zip(paths, rows, strict=True)))

    def _file_rows(self, source: "Source", rows: int) -> tuple[tuple[str, int | None], ...]:
        """Rows read from each file: the total for one file; for several, each file counted through
        its format's reader (Parquet from its footer); not counted (None) under quarantine."""
        import dataclasses

        paths = source.resolved_paths
        if len(paths) == 1:
            return ((str(paths[0]), rows),)
        out = []
        for path in paths:
            if source.on_bad_rows == "quarantine":
                out.append((str(path), None))
                continue
            sql, params = sources.ingest_query(dataclasses.replace(source, resolved_paths=(path,)))
            out.append((str(path), int(self.con.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()[0])))
        return tuple(out)
