"""How the DuckDB backend reads and writes the lake's tables (``engine.backends.lake``).

A lake table is a view in DuckDB over the Parquet files of the version the catalog records,
(re)bound whenever that version changes; a write is DuckDB writing Parquet into a new folder of
the table and the lake committing those files. Columns a Delta table cannot hold are widened or
refused here. The mixin of ``DuckDBBackend``: it uses the backend's connection, lake and
``compile``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.backends.duckdb import connection
from engine.errors import ExecutionError
from engine.sql import ops
from engine.sql.ops import Relation
from engine.sql.quote import quote_ident

if TYPE_CHECKING:
    import duckdb

    from engine.backends.lake import Lake

#: DuckDB types a Delta table cannot hold, and the type each is stored as (no value changes).
_STORED_AS = {
    "UTINYINT": "SMALLINT", "USMALLINT": "INTEGER", "UINTEGER": "BIGINT", "UBIGINT": "DECIMAL(20,0)",
    "HUGEINT": "DECIMAL(38,0)", "UHUGEINT": "DECIMAL(38,0)", "TIMESTAMP_NS": "TIMESTAMP", "TIMESTAMP_MS": "TIMESTAMP",
    "TIMESTAMP_S": "TIMESTAMP", "UUID": "VARCHAR", "JSON": "VARCHAR", '"NULL"': "INTEGER", "NULL": "INTEGER",
}


class LakeTables:
    """Lake tables as DuckDB views at their committed versions, and commits written by DuckDB."""

    con: "duckdb.DuckDBPyConnection"
    lake: "Lake | None"
    _bound: dict[Relation, int]
    _ordered: dict[Relation, tuple[str, tuple[str, ...]]]  # table -> (its one file, sorted by)

    def at_version(self, relation: Relation, version: int) -> Relation:
        """A read-only relation holding ``relation``'s rows at a recorded lake version (``as_of``)."""
        if not self._in_lake(relation):
            raise ExecutionError(f"{relation} keeps no versions")
        alias = Relation("staging", f"_asof__{relation.schema}__{relation.name}__{version}")
        self.con.complete()
        self.con.execute(f"CREATE OR REPLACE VIEW {alias} AS {self._version_sql(relation, version)}")
        return alias

    # --- the lake ----------------------------------------------------------------------------------

    def _in_lake(self, relation: Relation) -> bool:
        return self.lake is not None and self.lake.holds(relation)

    def _bind(self, relation: Relation) -> None:
        """Make ``relation`` name its committed lake version in DuckDB: a view over that version's
        Parquet files, read by DuckDB's own reader (parallel, with projection and filter pushdown)."""
        if not self._in_lake(relation):
            return
        version = self.lake.version(relation)
        if self._bound.get(relation, -1) == version:
            return
        if version is None:
            self._unbind(relation)
            return
        self.con.complete()
        self.con.execute(f"CREATE OR REPLACE VIEW {relation} AS {self._version_sql(relation, version)}")
        self._bound[relation] = version

    def _version_sql(self, relation: Relation, version: int) -> str:
        """The SELECT of a lake table's rows at ``version``: its data files (a Delta version is the
        union of its files; the lake writes no deletion vectors), or an empty table of its schema."""
        files = self.lake.files(relation, version)
        if files:
            listing = ", ".join(_string_literal(f) for f in files)
            return f"SELECT * FROM read_parquet([{listing}], union_by_name = true)"
        # No file: an empty table of the version's schema (a table, not the registered Arrow
        # object, so that every connection to this database sees it).
        empty = Relation("staging", f"_empty__{relation.schema}__{relation.name}__{version}")
        self.con.register("_engine_empty", self.lake.schema(relation, version).empty_table())
        try:
            self.con.execute(f"CREATE OR REPLACE TABLE {empty} AS SELECT * FROM _engine_empty")
        finally:
            self.con.unregister("_engine_empty")
        return f"SELECT * FROM {empty}"

    def _unbind(self, relation: Relation) -> None:
        self.con.execute(f"DROP VIEW IF EXISTS {relation}")
        self._bound.pop(relation, None)

    def _bind_all(self, source: object) -> None:
        for relation in _relations(source):
            self._bind(relation)

    def _storable(self, select: str, params: Sequence[object] = ()) -> str:
        """``select`` with every column a Delta table can hold, cast to the type it is stored as."""
        described = self.con.execute(f"DESCRIBE {select}", list(params)).fetchall()
        casts = {}
        for name, type_, *_ in described:
            base = str(type_)
            if base in ("INTERVAL", "TIME", "TIME WITH TIME ZONE", "BIT") or base.startswith("UNION"):
                raise ExecutionError(
                    f"column {name!r} has type {type_}, which the offline store (Delta Lake) cannot hold; "
                    "cast it in the SQL (an interval to seconds, a time to text)"
                )
            stored = "VARCHAR" if base.startswith("ENUM") else _STORED_AS.get(base)
            if stored:
                casts[name] = stored
        if not casts:
            return select
        cols = ", ".join(f"CAST({quote_ident(n)} AS {casts[n]}) AS {quote_ident(n)}" if n in casts else quote_ident(n) for n, *_ in described)
        return f"SELECT {cols} FROM ({select})"

    def _commit(
        self,
        target: Relation,
        select: str,
        params: Sequence[object] = (),
        *,
        mode: str,
        timeout_s: float | None = None,
        order_by: Sequence[str] = (),
    ) -> int:
        """Write ``select``'s rows to the lake table ``target`` as one commit; return its rows.
        ``timeout_s``: user SQL, stopped after that long (``connection.run_sql``). ``order_by``: the
        commit is one file with its rows sorted by these columns (``_ordered_file``)."""
        self.con.complete()
        storable = self._storable(select, params)
        # The schema as an Arrow stream of no rows, which the lake reads without pyarrow.
        schema = self.con.sql(f"SELECT * FROM ({storable}) LIMIT 0", params=list(params) or None)
        folder = self.lake.data_dir(target)
        if not set(order_by) <= set(schema.columns):
            order_by = ()  # a key column missing: the checks after the write say which
        try:
            if order_by:
                # One file in key order (DuckDB still encodes it on every thread). The key check
                # then proves uniqueness in one pass over neighbours instead of a hash aggregate
                # (``quality.check_primary_key``), and the views' ASOF joins sort presorted rows;
                # from a few million rows that saves more than the sort costs (the caller decides).
                # Parquet V2 pages: sorted keys delta-encode (DELTA_BINARY_PACKED) to almost
                # nothing, which made the file 13% smaller and the views' ASOF joins over it
                # 0.15 s faster per 10M rows (on unsorted rows V2 read slower: benchmarks/README.md).
                folder.mkdir()
                keys = ", ".join(quote_ident(c) for c in order_by)
                out = _string_literal(str(folder / "data_0.parquet"))
                copy = f"COPY (SELECT * FROM ({storable}) ORDER BY {keys}) TO {out} (FORMAT parquet, PARQUET_VERSION v2, RETURN_STATS)"
            else:
                # DuckDB writes the files itself, one per thread, in parallel (twice as fast as
                # streaming Arrow batches to delta-rs); the lake then commits them.
                copy = f"COPY ({storable}) TO {_string_literal(str(folder))} (FORMAT parquet, PER_THREAD_OUTPUT true, RETURN_STATS)"
            if timeout_s is not None:
                written = connection.run_sql(self.con, copy, timeout_s=timeout_s, params=list(params) or None).fetchall()
            else:
                written = self.con.execute(copy, list(params)).fetchall()
        except Exception as exc:
            if connection.is_storage_failure(exc):
                from engine.errors import StorageIOError

                raise StorageIOError(f"cannot write the table {target} at {folder.parent}: {str(exc).splitlines()[0]}; free space, then apply again") from None
            raise
        files = [(str(r[0]), int(r[1]), int(r[2])) for r in written]
        self.lake.commit_files(target, files, schema, mode=mode)
        if order_by and mode == "overwrite" and len(files) == 1:
            self._ordered[target] = (files[0][0], tuple(order_by))
        self._bind(target)
        return sum(int(r[1]) for r in written)

    def _ordered_file(self, relation: Relation) -> tuple[str, ...]:
        """The columns ``relation``'s rows are stored sorted by (empty: no known order): known when
        its committed version is exactly the one file an ordered ``_commit`` wrote in this session.
        The file's path is unique (a new folder per commit), so a rolled-back or later commit of
        the same table, by any writer, cannot be taken for it. A hint for what is worth trying
        (the key check proves its result either way)."""
        entry = self._ordered.get(relation)
        if entry is None or not self._in_lake(relation):
            return ()
        file, columns = entry
        committed = self.lake.files(relation)
        if len(committed) != 1 or Path(committed[0]).resolve() != Path(file).resolve():
            return ()
        return columns

    def _write_lake(self, target: Relation, data: Any, *, mode: str) -> None:
        self.lake.write(target, data, mode=mode)
        self._bind(target)

    # --- incremental reads -------------------------------------------------------------------------

    def lake_version(self, relation: Relation) -> int | None:
        """The committed lake version of ``relation`` (None: not a lake table, or none yet)."""
        return self.lake.version(relation) if self._in_lake(relation) else None

    def appended(self, relation: Relation, since: int) -> Relation | None:
        """A read-only relation holding the rows the lake commits after ``since`` appended to
        ``relation`` (up to its committed version); None when one of them did more than append."""
        if not self._in_lake(relation):
            return None
        files = self.lake.appended_files(relation, since)
        if files is None:
            return None
        alias = Relation("staging", f"_new__{relation.schema}__{relation.name}")
        self._bind(relation)
        self.con.complete()
        if files:
            listing = ", ".join(_string_literal(f) for f in files)
            self.con.execute(f"CREATE OR REPLACE VIEW {alias} AS SELECT * FROM read_parquet([{listing}], union_by_name = true)")
        else:
            self.con.execute(f"CREATE OR REPLACE VIEW {alias} AS SELECT * FROM {relation} LIMIT 0")
        return alias

    def time_bounds(self, source: Relation | ops.FeatureStoreOp, column: str) -> tuple[object, object, int]:
        """(min, max, NULL count) of ``column`` over ``source`` (min and max None without a value)."""
        col = quote_ident(column)
        row = self.con.execute(f"SELECT min({col}), max({col}), count(*) - count({col}) FROM ({self.compile(source)})").fetchone()
        return (row[0], row[1], int(row[2] or 0)) if row else (None, None, 0)


def _relations(value: object) -> Iterator[Relation]:
    """Every ``Relation`` inside an operation (its sources, joins and filters)."""
    if isinstance(value, Relation):
        yield value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _relations(getattr(value, f.name))
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _relations(item)


def _string_literal(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"
