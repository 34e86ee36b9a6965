"""The DuckDB backend: the one place that writes DuckDB SQL and holds a DuckDB connection.

Compiles the feature-store operations of ``engine.sql.ops`` (``ASOF JOIN``, ``RANGE`` frames,
``QUALIFY``, ``DELETE … USING``), reads sources, runs gated user SQL under the sandbox and a
timeout, and serves the workspace's metadata tables as a ``Catalog`` on the same connection, so
one transaction publishes data and metadata together. ``duckdb`` is imported only when a
connection is opened, never by ``engine validate``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from engine.backends.base import Capabilities, ExpectationResult, IngestReport, WriteMode
from engine.backends.duckdb import connection, sources
from engine.errors import ExecutionError
from engine.sql import ops
from engine.sql.ops import Constant, KeyReport, Relation
from engine.sql.quote import quote_ident

if TYPE_CHECKING:
    import duckdb
    import pandas
    import pyarrow

    from engine.model.objects import Expectation, Source

SPINE_ALIAS = "_engine_spine_where"  # how spine filters qualify spine columns
_ROWS = "_engine_rows"  # name rows are registered under while they are written
SCHEMAS = ("_engine", "src", "offline", "online", "staging", "views", "training", "predictions")


class DuckDBCatalog:
    """The ``Catalog`` protocol on the backend's connection (metadata shares its transactions)."""

    def __init__(self, backend: "DuckDBBackend") -> None:
        self._backend = backend

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        return self._backend.con.execute(sql, list(params)).fetchall()

    def query_dicts(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
        cursor = self._backend.con.execute(sql, list(params))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        rows = self._backend.con.execute(sql, list(params)).fetchall()
        return int(rows[0][0]) if rows and rows[0] and isinstance(rows[0][0], int) else 0

    def has_table(self, schema: str, name: str) -> bool:
        return self._backend.exists(Relation(schema, name))

    def transaction(self):
        return self._backend.transaction()


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


class DuckDBBackend:
    """A DuckDB database: the workspace file (``open``) or memory (``in_memory``)."""

    name: ClassVar[str] = "duckdb"
    dialect: ClassVar[str] = "duckdb"
    capabilities: ClassVar[Capabilities] = _Capabilities()  # type: ignore[assignment]

    def __init__(self, con: "duckdb.DuckDBPyConnection", path: Path | None = None) -> None:
        self.con = con
        self.path = path
        self.catalog = DuckDBCatalog(self)
        self._depth = 0

    # --- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path | None,
        *,
        sandboxed: bool = False,
        memory_limit: str | None = None,
        threads: int | None = None,
        temp_directory: Path | None = None,
    ) -> "DuckDBBackend":
        """A read-write connection in UTC; sandboxed (irreversibly, V3) when asked."""
        con = connection.connect(path, sandboxed=sandboxed, memory_limit=memory_limit, threads=threads, temp_directory=temp_directory)
        return cls(con, Path(path) if path is not None else None)

    @classmethod
    def open_read_only(cls, path: str | Path) -> "DuckDBBackend":
        """A read-only connection in UTC, for plan/show/read. LockedError while an apply writes (V7)."""
        return cls(connection.connect_read_only(path), Path(path))

    @classmethod
    def in_memory(cls, *, sandboxed: bool = False) -> "DuckDBBackend":
        return cls.open(None, sandboxed=sandboxed)

    @staticmethod
    def wal_path(path: str | Path) -> Path:
        """The write-ahead log beside a database file (G7: set aside by ``engine recover``)."""
        return connection.wal_path(path)

    def ensure_schemas(self) -> None:
        for schema in SCHEMAS:
            self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")

    # --- lifecycle -------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN … COMMIT, or ROLLBACK on any exception. Nested blocks join the outer transaction."""
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
        connection.lock_down(self.con)

    def interrupt(self) -> None:
        self.con.interrupt()

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "DuckDBBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- tables ----------------------------------------------------------------------------------

    def exists(self, relation: Relation) -> bool:
        row = self.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?", [relation.schema, relation.name]
        ).fetchone()
        return bool(row and row[0])

    def columns(self, source: Relation | ops.FeatureStoreOp) -> dict[str, str]:
        return {str(r[0]): str(r[1]) for r in self.con.execute(f"DESCRIBE {self.compile(source)}").fetchall()}

    def count(self, source: Relation | ops.FeatureStoreOp) -> int:
        return int(self.con.execute(f"SELECT count(*) FROM ({self.compile(source)})").fetchone()[0])

    def drop(self, relation: Relation) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {relation}")

    def create(self, target: Relation, source: Relation | ops.FeatureStoreOp, *, replace: bool = False, timeout_s: float | None = None) -> int:
        """``CREATE [OR REPLACE] TABLE target AS <source>``; returns the rows written."""
        verb = "CREATE OR REPLACE TABLE" if replace else "CREATE TABLE"
        connection.run_sql(self.con, f"{verb} {target} AS {self.compile(source)}", timeout_s=timeout_s)
        return self.count(target)

    def run_select(self, target: Relation, sql: str, tables: Mapping[str, Relation], *, timeout_s: float | None) -> int:
        """Create ``target`` from gated user SQL whose table names map to ``tables``.

        The SQL was gated at validate time and again by the caller; here DuckDB's own parser must
        see exactly one SELECT (V17) before it runs on the sandboxed connection under ``timeout_s``.
        """
        from engine.sql.gate import gate_select, rewrite_tables

        gated, messages = gate_select(sql, set(tables))
        if gated is None or messages:
            raise ExecutionError("; ".join(messages) or "SQL rejected")
        text = rewrite_tables(gated.expression, {name: str(rel) for name, rel in tables.items() if name in gated.tables}, self.dialect)
        connection.check_single_select(self.con, text)
        connection.run_sql(self.con, f"CREATE TABLE {target} AS {text}", timeout_s=timeout_s)
        return self.count(target)

    def write(self, target: Relation, rows: Any, *, mode: WriteMode = "create", constants: Sequence[Constant] = ()) -> int:
        """Store a DataFrame or Arrow table (plus ``constants`` columns) as ``target``."""
        with self._registered(rows) as name:
            select = self._stamped(quote_ident(name), _column_names(rows), constants)
            params = [c.value for c in constants]
            if mode == "append":
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
            self.con.execute(f"CREATE TABLE IF NOT EXISTS {target} AS {select} LIMIT 0", params)
            new, old = quote_ident("_new"), quote_ident("_old")
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
        self.con.execute(f"DELETE FROM {target} AS o USING {staged} AS s WHERE {match}")
        self.con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM {staged}")

    def add_column(self, relation: Relation, column: str, type_: str) -> None:
        self.con.execute(f"ALTER TABLE {relation} ADD COLUMN {quote_ident(column)} {type_}")

    def cast_column(self, relation: Relation, column: str, type_: str) -> None:
        self.con.execute(f"ALTER TABLE {relation} ALTER COLUMN {quote_ident(column)} TYPE {type_}")

    def fetch(self, source: Relation | ops.FeatureStoreOp) -> "pyarrow.Table":
        self.con.complete()  # a result left open by an earlier execute() would block con.sql
        return self.con.sql(f"SELECT * FROM ({self.compile(source)})").to_arrow_table()

    def frame(self, source: Relation | ops.FeatureStoreOp) -> "pandas.DataFrame":
        return self.con.execute(self.compile(source)).df()

    # --- data checks and statistics --------------------------------------------------------------

    def key_report(self, relation: Relation, key: Sequence[str]) -> KeyReport:
        from engine.backends.duckdb.quality import check_primary_key

        nulls, duplicates, samples = check_primary_key(self.con, str(relation), list(key), None)
        return KeyReport(nulls, duplicates, samples)

    def non_finite_counts(self, relation: Relation) -> dict[str, int]:
        from engine.backends.duckdb.quality import non_finite_counts

        return non_finite_counts(self.con, str(relation))

    def nullify_non_finite(self, relation: Relation, columns: Sequence[str]) -> None:
        from engine.backends.duckdb.quality import nullify_non_finite

        nullify_non_finite(self.con, str(relation), columns)

    def expectations(self, relation: Relation, expectations: Sequence["Expectation"]) -> list[ExpectationResult]:
        from engine.backends.duckdb.quality import run_expectations

        return run_expectations(self.con, str(relation), expectations)

    def statistics(self, relation: Relation) -> dict[str, dict[str, object]]:
        from engine.backends.duckdb.stats import compute_stats

        return compute_stats(self.con, str(relation))

    def quantiles(self, relation: Relation, column: str, quantiles: int) -> list[float]:
        from engine.backends.duckdb.binning import quantile_edges_sql

        row = self.con.execute(quantile_edges_sql(str(relation), column, quantiles)).fetchone()
        return list(row[0]) if row is not None and row[0] is not None else []

    # --- sources -----------------------------------------------------------------------------------

    def read_source(self, source: "Source", target: Relation) -> IngestReport:
        rows, rejected = sources.read_source(self.con, source, str(target), is_storage_failure=connection.is_storage_failure)
        return IngestReport(rows, tuple(rejected))

    # --- compiling operations ----------------------------------------------------------------------

    def compile(self, source: Relation | ops.FeatureStoreOp) -> str:
        """The DuckDB SELECT for a relation or an operation."""
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
                return point_in_time_sql(spine, source.spine_event_time, source.spine_columns, source.joins)
            case ops.WindowAggregation():
                from engine.backends.duckdb.aggregations import window_aggregation_sql

                return window_aggregation_sql(str(source.source), source.primary_key, source.event_time, source.aggregations)
            case ops.Bin():
                from engine.backends.duckdb.binning import binning_sql

                return binning_sql(str(source.source), source.columns, source.bins)
            case ops.LatestPerKey():
                if not source.event_time:
                    return f"SELECT * FROM {source.source}"
                partition = ", ".join(quote_ident(k) for k in source.primary_key)
                return (
                    f"SELECT * FROM {source.source} QUALIFY row_number() OVER "
                    f"(PARTITION BY {partition} ORDER BY {quote_ident(source.event_time)} DESC, rowid DESC) = 1"
                )
            case ops.DedupeLatest():
                partition = ", ".join(quote_ident(k) for k in source.key)
                return f"SELECT * FROM {source.source} QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY rowid DESC) = 1"
        raise TypeError(f"not an operation the DuckDB backend compiles: {type(source).__name__}")

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
