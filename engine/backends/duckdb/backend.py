"""The DuckDB backend: the one place that writes DuckDB SQL and holds a DuckDB connection.

Compiles the feature-store operations of ``engine.sql.ops`` (``ASOF JOIN``, ``RANGE`` frames,
``QUALIFY``, ``DELETE … USING``), reads sources, and runs gated user SQL under the sandbox and a
timeout. Over a workspace, DuckDB is the compute engine only: it runs in memory (spilling to the
workspace's ``tmp/``), the persistent tables are the lake's Delta tables (``engine.backends.lake``),
read as Arrow datasets at their committed versions and written as Delta commits, and the metadata
is the workspace's catalog; staging tables live in DuckDB's memory. Without a lake (``in_memory``)
every table is a DuckDB table. ``duckdb`` is imported only when a connection is opened, never by
``engine validate``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from engine.backends.base import Capabilities, Catalog, ExpectationResult, WriteMode
from engine.backends.duckdb import connection, sources
from engine.backends.duckdb.lake_tables import LakeTables
from engine.backends.duckdb.source_tables import SourceTables
from engine.backends.lake import SCHEMAS as LAKE_SCHEMAS
from engine.backends.lake import Lake
from engine.errors import ExecutionError
from engine.sql import ops
from engine.sql.ops import Constant, KeyReport, Relation
from engine.sql.quote import quote_ident

if TYPE_CHECKING:
    import duckdb
    import pandas
    import pyarrow

    from engine.model.objects import Expectation

SPINE_ALIAS = "_engine_spine_where"  # how spine filters qualify spine columns
_ROWS = "_engine_rows"  # name rows are registered under while they are written
_INTEGER_TYPES = frozenset({"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"})  # a BIGINT holds their sums
SCHEMAS = ("staging", *sorted(LAKE_SCHEMAS))

#: Below this many input rows a SQL group is not stored in key order (``run_select``): the sort
#: costs more than it saves the key check and the joins that read the table, and the memory
#: DuckDB's allocator keeps after it raises the apply's peak. Measured end to end
#: (benchmarks/e2e_apply.py): 2.5M rows, sorted 1.59-1.65 s and 466-468 MB against 1.53-1.55 s
#: and 387-393 MB; 10M rows, 3.88-3.90 s against 4.13-4.33 s; 40M rows, 13.35 s against 15.46 s.
ORDERED_MIN_ROWS = 4_000_000


class _Capabilities:
    """``DuckDBBackend.capabilities``, built when read: the source formats are the names of
    ``sources.READERS`` at that moment, so registering a reader is all a new format needs here."""

    def __get__(self, instance: object, owner: type) -> Capabilities:
        return Capabilities(
            source_formats=frozenset(sources.READERS),
            quarantine_rows=True,
            python_transforms=True,
            sandboxed_sql=True,
            transactions=True,
            asof_join=True,
        )


class DuckDBBackend(LakeTables, SourceTables):
    """DuckDB in memory as the compute engine: over a workspace's lake and catalog (``open``), or
    holding every table itself (``in_memory``, tests and scratch use)."""

    name: ClassVar[str] = "duckdb"
    dialect: ClassVar[str] = "duckdb"
    capabilities: ClassVar[Capabilities] = _Capabilities()  # type: ignore[assignment]
    _sandboxed = False

    def __init__(self, con: "duckdb.DuckDBPyConnection | None", catalog: Catalog | None = None, lake: Lake | None = None) -> None:
        if catalog is None:
            from engine.backends.catalog import SqliteCatalog

            catalog = SqliteCatalog.in_memory()
        self._con = con
        self._connect = None  # opens the connection on first use (``open``): reads that need only
        self.catalog = catalog  # the catalog (plan, show, a no-op apply) never start DuckDB
        self.lake = lake
        self._depth = 0
        self._bound: dict[Relation, int] = {}  # lake tables registered in DuckDB, at this version
        self._ordered: dict[Relation, tuple[str, tuple[str, ...]]] = {}  # lake tables written sorted
        if con is not None:
            self.ensure_schemas()

    @property
    def con(self) -> "duckdb.DuckDBPyConnection":
        if self._con is None:
            if self._connect is None:
                raise ExecutionError("the DuckDB backend is closed")
            connect, self._connect = self._connect, None
            self._con = connect()
            self.ensure_schemas()
            if self._sandboxed:
                self.lock_down()
        return self._con

    # --- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        catalog: Catalog | None = None,
        lake: Lake | None = None,
        *,
        sandboxed: bool = False,
        memory_limit: str | None = None,
        threads: int | None = None,
        temp_directory: Path | None = None,
    ) -> "DuckDBBackend":
        """DuckDB in memory, in UTC, over ``lake``'s tables (none: every table in memory) and
        ``catalog`` (none: a catalog in memory); sandboxed (irreversibly, V3) when asked. The
        connection opens on first use, already sandboxed."""
        backend = cls(None, catalog, lake)
        backend._sandboxed = sandboxed
        backend._connect = lambda: connection.connect(None, sandboxed=False, memory_limit=memory_limit, threads=threads, temp_directory=temp_directory)
        return backend

    @classmethod
    def in_memory(cls, *, sandboxed: bool = False) -> "DuckDBBackend":
        return cls.open(sandboxed=sandboxed)

    def ensure_schemas(self) -> None:
        for schema in SCHEMAS:
            self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")

    # --- lifecycle -------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic unit: the catalog's transaction, with the lake's commits recorded in it, and
        DuckDB's own for the tables it holds (staging). Nested blocks join the outer one; any
        exception rolls it all back."""
        try:
            with self.catalog.transaction(), self._duckdb_transaction():
                if self.lake is not None:
                    with self.lake.transaction():
                        yield
                else:
                    yield
        except BaseException:
            if not self._depth:
                self._bound.clear()  # views created in the rolled-back transaction are gone
            raise

    @contextmanager
    def _duckdb_transaction(self) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.con.execute("BEGIN TRANSACTION")
        self._depth = 1
        try:
            yield
            self.con.execute("COMMIT")
        except BaseException:
            try:
                self.con.execute("ROLLBACK")
            except Exception:  # noqa: S110
                # A COMMIT that failed (disk full, G3) has already ended the transaction: "cannot
                # rollback - no transaction is active" must not hide why it failed.
                pass
            raise
        finally:
            self._depth = 0

    def lock_down(self) -> None:
        """Sandbox the connection (V3): no file, network or setting is reachable from SQL any more,
        except the lake's own folder, which the views over its tables read."""
        connection.lock_down(self.con, readable=[self.lake.root] if self.lake is not None else [])

    def interrupt(self) -> None:
        if self._con is not None:
            self._con.interrupt()

    def close(self) -> None:
        self._connect = None
        try:
            if self._con is not None:
                self._con.close()
        except Exception:
            # A statement the SQL watchdog gave up on (Q8) still runs on a cursor of this database;
            # the instance is left to it until the process exits (it never waits for it).
            if not connection.abandoned():
                raise
        finally:
            self.catalog.close()

    def __enter__(self) -> "DuckDBBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- tables ----------------------------------------------------------------------------------

    def exists(self, relation: Relation) -> bool:
        if self._in_lake(relation):
            return self.lake.version(relation) is not None
        row = self.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?", [relation.schema, relation.name]
        ).fetchone()
        return bool(row and row[0])

    def columns(self, source: Relation | ops.FeatureStoreOp) -> dict[str, str]:
        return {str(r[0]): str(r[1]) for r in self.con.execute(f"DESCRIBE {self.compile(source)}").fetchall()}

    def count(self, source: Relation | ops.FeatureStoreOp) -> int:
        return int(self.con.execute(f"SELECT count(*) FROM ({self.compile(source)})").fetchone()[0])

    def drop(self, relation: Relation) -> None:
        if self._in_lake(relation):
            self.lake.drop(relation)
            self._unbind(relation)
            return
        self.con.execute(f"DROP TABLE IF EXISTS {relation}")

    def create(self, target: Relation, source: Relation | ops.FeatureStoreOp, *, replace: bool = False, timeout_s: float | None = None) -> int:
        """``CREATE [OR REPLACE] TABLE target AS <source>`` (a lake table: a commit replacing its
        rows); returns the rows written."""
        if self._in_lake(target):
            return self._commit(target, self.compile(source), mode="overwrite")
        verb = "CREATE OR REPLACE TABLE" if replace else "CREATE TABLE"
        connection.run_sql(self.con, f"{verb} {target} AS {self.compile(source)}", timeout_s=timeout_s)
        return self.count(target)

    def append(self, target: Relation, source: Relation | ops.FeatureStoreOp) -> int:
        """Add ``source``'s rows to the existing ``target`` (a lake table: one commit that only adds
        files, so incremental readers downstream see just these rows); returns the rows added."""
        if self._in_lake(target):
            return self._commit(target, self.compile(source), mode="append")
        self.con.execute(f"INSERT INTO {target} BY NAME {self.compile(source)}")
        return self.count(source)

    def run_select(
        self, target: Relation, sql: str, tables: Mapping[str, Relation], *, timeout_s: float | None, order_by: Sequence[str] = ()
    ) -> int:
        """Create ``target`` from gated user SQL whose table names map to ``tables``.

        The SQL was gated at validate time and again by the caller; here DuckDB's own parser must
        see exactly one SELECT (V17) before it runs on the sandboxed connection under ``timeout_s``.
        A lake ``target`` read from ``ORDERED_MIN_ROWS`` input rows or more is stored sorted by
        ``order_by`` (its key: ``key_report`` then reads it once in order instead of hashing every
        key).
        """
        from engine.sql.gate import gate_select, rewrite_tables

        gated, messages = gate_select(sql, set(tables))
        if gated is None or messages:
            raise ExecutionError("; ".join(messages) or "SQL rejected")
        for relation in tables.values():
            self._bind(relation)
        text = rewrite_tables(gated.expression, {name: str(rel) for name, rel in tables.items() if name in gated.tables}, self.dialect)
        connection.check_single_select(self.con, text)
        if self._in_lake(target):  # straight into a commit, visible when the transaction records it
            read = {relation for name, relation in tables.items() if name in gated.tables}
            if order_by and sum(self.count(relation) for relation in read) < ORDERED_MIN_ROWS:
                order_by = ()
            return self._commit(target, text, mode="overwrite", timeout_s=timeout_s, order_by=order_by)
        connection.run_sql(self.con, f"CREATE TABLE {target} AS {text}", timeout_s=timeout_s)
        return self.count(target)

    def write(self, target: Relation, rows: Any, *, mode: WriteMode = "create", constants: Sequence[Constant] = ()) -> int:
        """Store a DataFrame or Arrow table (plus ``constants`` columns) as ``target``."""
        with self._registered(rows) as name:
            select = self._stamped(quote_ident(name), _column_names(rows), constants)
            params = [c.value for c in constants]
            if self._in_lake(target):
                self._commit(target, select, params, mode="append" if mode == "append" else "overwrite")
            elif mode == "append":
                self.con.execute(f"CREATE TABLE IF NOT EXISTS {target} AS {select} LIMIT 0", params)
                self.con.execute(f"INSERT INTO {target} BY NAME {select}", params)
            else:
                verb = "CREATE OR REPLACE TABLE" if mode == "replace" else "CREATE TABLE"
                self.con.execute(f"{verb} {target} AS {select}", params)
        return self.count(target)

    def append_new(self, target: Relation, rows: Any, keys: Sequence[str], *, constants: Sequence[Constant] = ()) -> int:
        """Append the rows whose ``keys`` are not in ``target`` yet; return how many (exactly once)."""
        if not keys:
            raise ExecutionError("an exactly-once append needs key columns")
        with self._registered(rows) as name:
            select = self._stamped(quote_ident(name), _column_names(rows), constants)
            params = [c.value for c in constants]
            new, old = quote_ident("_new"), quote_ident("_old")
            if self._in_lake(target):
                if self.exists(target):
                    match = " AND ".join(f"{old}.{quote_ident(k)} = {new}.{quote_ident(k)}" for k in keys)
                    self._bind(target)
                    select = f"SELECT * FROM ({select}) AS {new} WHERE NOT EXISTS (SELECT 1 FROM {target} AS {old} WHERE {match})"
                self.con.complete()
                fresh = self.con.sql(self._storable(select, params), params=params or None).to_arrow_table()
                if fresh.num_rows or not self.exists(target):
                    self._write_lake(target, fresh, mode="append")
                return fresh.num_rows
            self.con.execute(f"CREATE TABLE IF NOT EXISTS {target} AS {select} LIMIT 0", params)
            match = " AND ".join(f"{old}.{quote_ident(k)} = {new}.{quote_ident(k)}" for k in keys)
            result = self.con.execute(
                f"INSERT INTO {target} BY NAME SELECT * FROM ({select}) AS {new} "
                f"WHERE NOT EXISTS (SELECT 1 FROM {target} AS {old} WHERE {match})",
                params,
            ).fetchall()
        return int(result[0][0]) if result else 0

    def merge(self, target: Relation, staged: Relation, keys: Sequence[str]) -> None:
        """Upsert: rows of ``staged`` replace the rows of ``target`` with the same ``keys``."""
        match = " AND ".join(f"o.{quote_ident(k)} = s.{quote_ident(k)}" for k in keys)
        self._bind(staged)
        if self._in_lake(target):
            self._bind(target)
            kept = f"SELECT * FROM {target} AS o WHERE NOT EXISTS (SELECT 1 FROM {staged} AS s WHERE {match})"
            self._commit(target, f"{kept} UNION ALL BY NAME SELECT * FROM {staged}", mode="overwrite")
            return
        self.con.execute(f"DELETE FROM {target} AS o USING {staged} AS s WHERE {match}")
        self.con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM {staged}")

    def add_column(self, relation: Relation, column: str, type_: str) -> None:
        if self._in_lake(relation):
            self._bind(relation)
            self._commit(relation, f"SELECT *, NULL::{type_} AS {quote_ident(column)} FROM {relation}", mode="overwrite")
            return
        self.con.execute(f"ALTER TABLE {relation} ADD COLUMN {quote_ident(column)} {type_}")

    def cast_column(self, relation: Relation, column: str, type_: str) -> None:
        if self._in_lake(relation):
            self._bind(relation)
            col = quote_ident(column)
            # A naive time read as UTC keeps its order: a sorted table stays sorted.
            ordered = self._ordered_file(relation)
            self._commit(relation, f"SELECT * REPLACE (CAST({col} AS {type_}) AS {col}) FROM {relation}", mode="overwrite", order_by=ordered)
            return
        self.con.execute(f"ALTER TABLE {relation} ALTER COLUMN {quote_ident(column)} TYPE {type_}")

    def fetch(self, source: Relation | ops.FeatureStoreOp) -> "pyarrow.Table":
        self.con.complete()  # a result left open by an earlier execute() would block con.sql
        return self.con.sql(f"SELECT * FROM ({self.compile(source)})").to_arrow_table()

    def map_frames(self, target: Relation, source: Relation | ops.FeatureStoreOp, fn, added: Mapping[str, str]) -> int:
        """One frame, in this process: DuckDB's rows are here already."""
        return self.write(target, fn(self.frame(source)), mode="replace")

    def frame(self, source: Relation | ops.FeatureStoreOp) -> "pandas.DataFrame":
        return self.con.execute(self.compile(source)).df()

    # --- data checks and statistics --------------------------------------------------------------

    def key_report(self, relation: Relation, key: Sequence[str]) -> KeyReport:
        from engine.backends.duckdb.quality import check_primary_key

        self._bind(relation)
        ordered = self._ordered_file(relation)[: len(key)] == tuple(key)
        nulls, duplicates, samples = check_primary_key(self.con, str(relation), list(key), None, ordered=ordered)
        return KeyReport(nulls, duplicates, samples)

    def non_finite_counts(self, relation: Relation) -> dict[str, int]:
        from engine.backends.duckdb.quality import non_finite_counts

        self._bind(relation)
        files = self.lake.files(relation) if self._in_lake(relation) else ()
        return non_finite_counts(self.con, str(relation), files)

    def nullify_non_finite(self, relation: Relation, columns: Sequence[str]) -> None:
        from engine.backends.duckdb.quality import nullify_non_finite

        if self._in_lake(relation):  # a new commit of the same rows with the values nulled
            self._bind(relation)
            sets = ", ".join(f"CASE WHEN isfinite({quote_ident(c)}) THEN {quote_ident(c)} END AS {quote_ident(c)}" for c in columns)
            ordered = self._ordered_file(relation)  # sorted still up to the first column nulled
            ordered = ordered[: next((i for i, k in enumerate(ordered) if k in columns), len(ordered))]
            self._commit(relation, f"SELECT * REPLACE ({sets}) FROM {relation}", mode="overwrite", order_by=ordered)
            return
        nullify_non_finite(self.con, str(relation), columns)

    def expectations(self, relation: Relation, expectations: Sequence["Expectation"]) -> list[ExpectationResult]:
        from engine.backends.duckdb.quality import run_expectations

        self._bind(relation)
        return run_expectations(self.con, str(relation), expectations)

    def statistics(self, relation: Relation) -> dict[str, dict[str, object]]:
        from engine.backends.duckdb.stats import compute_stats

        self._bind(relation)
        return compute_stats(self.con, str(relation))

    def quantiles(self, relation: Relation, column: str, quantiles: int) -> list[float]:
        from engine.backends.duckdb.binning import quantile_edges_sql

        self._bind(relation)
        row = self.con.execute(quantile_edges_sql(str(relation), column, quantiles)).fetchone()
        return list(row[0]) if row is not None and row[0] is not None else []

    # --- compiling operations ----------------------------------------------------------------------

    def _matched_joins(self, spine: str, join: ops.PointInTimeJoin) -> frozenset[int]:
        """The event-time joins of a small spine to compute by hash join (``matched_joins``): one
        query over the spine (its new rows only), the most rows any key has, per join."""
        from engine.backends.duckdb.point_in_time import matched_joins, spine_key_counts_sql

        if join.spine_event_time is None or not any(j.event_time is not None for j in join.joins):
            return frozenset()
        row = self.con.execute(spine_key_counts_sql(spine, join.joins)).fetchall()[0]
        return matched_joins([None if n is None else int(n) for n in row], join.joins)

    def compile(self, source: Relation | ops.FeatureStoreOp) -> str:
        """The DuckDB SELECT for a relation or an operation."""
        self._bind_all(source)
        match source:
            case Relation():
                return f"SELECT * FROM {source}"
            case ops.Scan():
                cols = ", ".join(quote_ident(c) for c in source.columns) if source.columns is not None else "*"
                order = f" ORDER BY {', '.join(quote_ident(c) for c in source.order_by)}" if source.order_by else ""
                return f"SELECT {cols} FROM {self._filtered(str(source.source), source.filters)}{order}"
            case ops.PointInTimeJoin():
                from engine.backends.duckdb.point_in_time import point_in_time_sql

                spine = self._filtered(str(source.spine), source.filters)
                matched = self._matched_joins(spine, source) if source.prune else frozenset()
                return point_in_time_sql(
                    spine, source.spine_event_time, source.spine_columns, source.joins, prune=source.prune, ordered=source.ordered, matched=matched
                )
            case ops.WindowAggregation():
                from engine.backends.duckdb.aggregations import window_aggregation_sql

                types = self.columns(source.source)
                integers = frozenset(c for c, t in types.items() if t.upper() in _INTEGER_TYPES)
                return window_aggregation_sql(str(source.source), source.primary_key, source.event_time, source.aggregations, integers)
            case ops.Bin():
                from engine.backends.duckdb.binning import binning_sql

                return binning_sql(str(source.source), source.columns, source.bins)
            case ops.LatestPerKey():
                if not source.event_time:
                    return f"SELECT * FROM {source.source}"
                partition = ", ".join(quote_ident(k) for k in source.primary_key)
                return (
                    f"SELECT * FROM {source.source} QUALIFY row_number() OVER "
                    f"(PARTITION BY {partition} ORDER BY {quote_ident(source.event_time)} DESC{self._written_order(source.source)}) = 1"
                )
            case ops.DedupeLatest():
                partition = ", ".join(quote_ident(k) for k in source.key)
                written = self._written_order(source.source).removeprefix(", ")
                by = f"{quote_ident(source.order_by)} DESC NULLS LAST" if source.order_by else ""
                order = ", ".join(x for x in (by, written) if x) or "1"
                return f"SELECT * FROM {source.source} QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY {order}) = 1"
        raise TypeError(f"not an operation the DuckDB backend compiles: {type(source).__name__}")

    def _written_order(self, relation: Relation) -> str:
        """``, rowid DESC`` (last written first) on a DuckDB table; nothing on a lake table, which
        holds one row per key and time (the offline store's rule), so no tie is left to break."""
        return "" if self._in_lake(relation) else ", rowid DESC"

    def _filtered(self, relation: str, filters: Sequence[ops.SpineFilter]) -> str:
        """``relation`` restricted by each filter in turn: a relation name or a parenthesised query."""
        out = relation
        for f in filters:
            match f:
                case ops.UserFilter(condition=condition):
                    from engine.sql.gate import filter_sql

                    out = f"(SELECT * FROM {out} WHERE {filter_sql(condition, self.dialect)})"
                case ops.TimeRange():
                    column = f"{quote_ident(SPINE_ALIAS)}.{quote_ident(f.column)}"
                    condition = f"{column} >= {_timestamp_literal(f.start)} AND {column} < {_timestamp_literal(f.end)}"
                    out = f"(SELECT * FROM {out} AS {quote_ident(SPINE_ALIAS)} WHERE {condition})"
                case ops.NotIn():
                    spine, scored = quote_ident(SPINE_ALIAS), quote_ident("_scored")
                    match = " AND ".join(f"{scored}.{quote_ident(k)} = {spine}.{quote_ident(k)}" for k in f.keys)
                    condition = f"NOT EXISTS (SELECT 1 FROM {f.relation} AS {scored} WHERE {match})"
                    out = f"(SELECT * FROM {out} AS {spine} WHERE {condition})"
                case _:
                    raise TypeError(f"not a spine filter: {type(f).__name__}")
        return out

    # --- helpers -----------------------------------------------------------------------------------

    @contextmanager
    def _registered(self, rows: Any) -> Iterator[str]:
        import pandas as pd

        if isinstance(rows, pd.DataFrame) and not isinstance(rows.index, pd.RangeIndex):
            rows = rows.reset_index(drop=True)
        self.con.complete()  # register() refuses while an earlier result is still open
        self.con.register(_ROWS, rows)
        try:
            yield _ROWS
        finally:
            self.con.complete()
            self.con.unregister(_ROWS)

    @staticmethod
    def _stamped(source: str, columns: Sequence[str], constants: Sequence[Constant]) -> str:
        cols = ", ".join(quote_ident(c) for c in columns)
        extra = "".join(f", ?::{c.type} AS {quote_ident(c.name)}" for c in constants)
        return f"SELECT {cols}{extra} FROM {source}"


def _column_names(rows: Any) -> list[str]:
    names = getattr(rows, "column_names", None)
    return list(names) if names is not None else [str(c) for c in rows.columns]


def _timestamp_literal(value) -> str:
    # isoformat() of an aware datetime is digits, '-', ':', '.', 'T' and '+': nothing to escape.
    from engine.errors import DataError

    text = value.isoformat()
    if value.tzinfo is None or not all(c.isdigit() or c in "-:.T+" for c in text):
        raise DataError(f"invalid timestamp {text!r}")
    return f"TIMESTAMPTZ '{text}'"

