"""The Spark backend: the engine's tables and operations on Apache Spark, over the shared lake.

Persistent tables are the lake's Delta tables (``engine.backends.lake``): Spark reads a committed
version by its file list (``spark.read.parquet``) and writes Parquet into a new folder of the
table, which ``Lake.commit_files`` commits (no Delta jars: the lake is the only code that touches
the Delta log). Staging tables are Parquet folders in a scratch directory (the workspace's
``tmp/``), so a transaction that fails puts the previous folder back. Rows keep their order in a
hidden ``_engine_row`` column (the order they were written, spine order). Feature-store operations
are compiled to DataFrames in ``compile.py``; user SQL is transpiled from the spec's DuckDB dialect
to Spark SQL by sqlglot. ``pyspark`` is imported only when a session starts.
"""

from __future__ import annotations

import functools
import logging
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from engine.backends.base import Capabilities, Catalog, ExpectationResult, IngestReport, WriteMode
from engine.backends.spark import compile as plans
from engine.backends.spark import connect, quality
from engine.backends.spark.compile import ROW
from engine.backends.spark.connect import SparkSettings, first_line
from engine.backends.spark.frames import arrow_rows, utc
from engine.backends.spark.sources import FORMATS
from engine.backends.spark.tables import SparkTables, _parquet_rows, _Staged
from engine.errors import EngineError, ExecutionError, StorageIOError
from engine.sql import ops
from engine.sql.ops import Constant, KeyReport, Relation

if TYPE_CHECKING:
    import pandas
    import pyarrow
    from pyspark.sql import DataFrame, SparkSession

    from engine.backends.lake import Lake
    from engine.model.objects import Expectation, Source

log = logging.getLogger("engine.spark")

_GRACE_S = 15.0  # how long a cancelled query may take to stop before the caller is answered


def _spark_errors(method: Callable) -> Callable:
    """A Spark failure as ExecutionError (exit 5) with its first line; the JVM stack trace goes to
    the log, never to the terminal. Engine errors pass through."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (EngineError, ValueError, TypeError, KeyboardInterrupt):
            raise
        except Exception as exc:
            log.debug("Spark failed in %s", method.__name__, exc_info=True)
            if type(exc).__name__ in ("Py4JNetworkError", "Py4JError") or "SparkContext was shut down" in str(exc):
                raise StorageIOError(f"the Spark session on {self.settings.master} stopped: {first_line(exc)}") from None
            raise ExecutionError(f"Spark: {first_line(exc)}{_trace_hint()}") from None

    return wrapper


def _trace_hint() -> str:
    path = connect.log_path()
    return f" (Spark's trace: {path})" if path else ""


class SparkBackend(SparkTables):
    """Apache Spark as the compute engine, over a workspace's lake and catalog (``open``), or with
    every table in staging (``in_memory``: tests and scratch use)."""

    name: ClassVar[str] = "spark"
    dialect: ClassVar[str] = "spark"
    capabilities: ClassVar[Capabilities] = Capabilities(
        source_formats=FORMATS,
        quarantine_rows=False,  # Spark's PERMISSIVE mode loses the line and column of a bad row
        python_transforms=True,
        sandboxed_sql=False,  # SQL over file paths is switched off, but Spark has no file sandbox
        transactions=True,
        asof_join=False,  # compiled as a union plus a "last value at or before" window
        csv_null_strings=1,  # the CSV reader's nullValue is one string
    )

    def __init__(self, settings: SparkSettings, catalog: Catalog | None = None, lake: "Lake | None" = None, scratch: Path | None = None) -> None:
        if catalog is None:
            from engine.backends.catalog import SqliteCatalog

            catalog = SqliteCatalog.in_memory()
        self.settings = settings
        self.catalog = catalog
        self.lake = lake
        self._scratch_parent = scratch
        self._scratch: Path | None = None
        self._staged: dict[Relation, _Staged] = {}
        self._depth = 0
        self._lake_frames: dict[tuple[Relation, int], "DataFrame"] = {}

    # --- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        catalog: Catalog | None = None,
        lake: "Lake | None" = None,
        *,
        sandboxed: bool = False,
        memory_limit: str | None = None,
        threads: int | None = None,
        temp_directory: Path | None = None,
        settings: SparkSettings | None = None,
        spec_options: Mapping[str, object] | None = None,
    ) -> "SparkBackend":
        """Spark over ``lake`` and ``catalog``; the session starts on first use (so plan, show and
        a no-op apply never start a JVM). ``settings`` default to the spec's ``backend: {master,
        conf}`` (``spec_options``) under ``ENGINE_SPARK_MASTER`` / ``ENGINE_SPARK_CONF``, else
        ``local[2]``; ``threads`` becomes ``local[threads]`` then."""
        connect.check_installed()  # exit 2 before any step runs, not as a step's failure
        if settings is None:
            options = spec_options or {}
            settings = SparkSettings.from_env(options.get("master"), options.get("conf"))
            if threads and settings.master == connect.DEFAULT_MASTER:
                settings = SparkSettings(f"local[{int(threads)}]", settings.conf)
        if memory_limit and not any(k == "spark.driver.memory" for k, _ in settings.conf):
            settings = SparkSettings(settings.master, (*settings.conf, ("spark.driver.memory", _spark_size(memory_limit))))
        return cls(settings, catalog, lake, temp_directory)

    @classmethod
    def in_memory(cls, *, sandboxed: bool = False, settings: SparkSettings | None = None) -> "SparkBackend":
        return cls.open(settings=settings)

    @property
    def spark(self) -> "SparkSession":
        log_file = str(self._scratch_parent.parent / "logs" / "spark.log") if self._scratch_parent is not None else None
        return connect.session(self.settings, log_file)

    def ensure_schemas(self) -> None:
        """Nothing to create: relations are lake folders or staging entries."""

    # --- lifecycle -------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """The catalog's transaction with the lake's commits recorded in it; staging relations
        written inside are put back as they were when it fails. Nested blocks join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        before = dict(self._staged)
        self._depth = 1
        try:
            with self.catalog.transaction():
                if self.lake is not None:
                    with self.lake.transaction():
                        yield
                else:
                    yield
        except BaseException:
            self._staged = before
            raise
        finally:
            self._depth = 0

    def lock_down(self) -> None:
        """Nothing more to lock: SQL over file paths is off from the start (``runSQLOnFiles``), and
        user SQL reaches only the views registered for it; Spark has no file sandbox beyond that
        (``capabilities.sandboxed_sql`` is False)."""

    def interrupt(self) -> None:
        if connect._active is not None:
            connect._active[1].sparkContext.cancelAllJobs()

    def close(self) -> None:
        """Forget staging and remove its scratch folder; the process's Spark session stays up for
        the next backend (starting one takes seconds)."""
        self._staged.clear()
        self._lake_frames.clear()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
        self.catalog.close()

    def __enter__(self) -> "SparkBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading relations (the rest: tables.SparkTables) ---------------------------------------------

    def compile(self, source: Relation | ops.FeatureStoreOp) -> "DataFrame":
        """The DataFrame of a relation or an operation, with ROW where its rows have an order."""
        return plans.compile_op(source, self._table)

    @staticmethod
    def _visible(df: "DataFrame") -> "DataFrame":
        return df.drop(ROW) if ROW in df.columns else df

    # --- tables ----------------------------------------------------------------------------------

    def exists(self, relation: Relation) -> bool:
        if relation in self._staged:
            return True
        if self._in_lake(relation):
            return self.lake.version(relation) is not None
        return False

    @_spark_errors
    def columns(self, source: Relation | ops.FeatureStoreOp) -> dict[str, str]:
        from engine.backends.spark.types import engine_type

        return {f.name: engine_type(f.dataType) for f in self._visible(self.compile(source)).schema.fields}

    @_spark_errors
    def count(self, source: Relation | ops.FeatureStoreOp) -> int:
        """Rows of ``source``: a table's from its Parquet footers (no Spark job), else counted."""
        if isinstance(source, Relation):
            staged = self._staged.get(source)
            if staged is None and self._in_lake(source) and self.lake.version(source) is not None:
                return _parquet_rows(tuple(self.lake.files(source)))
            if staged is not None:
                return _parquet_rows(staged.files)
        return self.compile(source).count()

    def drop(self, relation: Relation) -> None:
        if relation in self._staged:
            del self._staged[relation]
            return
        if self._in_lake(relation):
            self.lake.drop(relation)

    @_spark_errors
    def create(self, target: Relation, source: Relation | ops.FeatureStoreOp, *, replace: bool = False, timeout_s: float | None = None) -> int:
        """``target`` from ``source`` (a lake table: a commit replacing its rows)."""
        if not self._in_lake(target) and not replace and target in self._staged:
            raise ExecutionError(f"the table {target} already exists")
        df = self.compile(source)
        return self._timed(lambda: self._store(target, df), timeout_s, str(target))

    @_spark_errors
    def append(self, target: Relation, source: Relation | ops.FeatureStoreOp) -> int:
        """Add ``source``'s rows to the existing ``target`` (a lake table: one commit that only adds
        files, so incremental readers downstream see just these rows); returns the rows added."""
        df = self.compile(source)
        if self._in_lake(target) and target not in self._staged:
            return self._commit(target, df, mode="append")
        staged = self._materialized(df)
        added = _parquet_rows(staged.files)
        self._store(target, self._after(self._table(target), self._read(staged)))
        return added

    @_spark_errors
    def run_select(
        self, target: Relation, sql: str, tables: Mapping[str, Relation], *, timeout_s: float | None, order_by: Sequence[str] = ()
    ) -> int:
        """``target`` from gated user SQL, transpiled from DuckDB's dialect to Spark SQL; each input
        table is a temporary view of its rows (without the row-order column). A lake ``target`` is
        written straight into a commit, visible when the transaction records it. ``order_by`` is
        not used: Spark's key check is a distributed aggregate either way."""
        from engine.backends.spark.transpile import spark_sql
        from engine.sql.gate import gate_select
        from engine.sql.quote import quote_ident

        gated, messages = gate_select(sql, set(tables))
        if gated is None or messages:
            raise ExecutionError("; ".join(messages) or "SQL rejected")
        mapping = {}
        for name, relation in tables.items():
            if name not in gated.tables:
                continue
            view = f"_engine_in_{uuid.uuid4().hex[:12]}_{name}"
            self._visible(self._table(relation)).createOrReplaceTempView(view)
            mapping[name] = quote_ident(view)
        text = spark_sql(gated.expression, mapping)
        df = self.spark.sql(text)
        return self._timed(lambda: self._store(target, df), timeout_s, str(target))

    def _timed(self, action: Callable[[], int], timeout_s: float | None, what: str) -> int:
        """Run ``action``; past ``timeout_s`` its Spark jobs are cancelled, again and again until it
        returns, and ExecutionError says it timed out. The action runs on a thread of its own, so
        the caller gets its answer within the timeout plus ``_GRACE_S`` even when the driver is
        slow to give up (a huge broadcast): the thread is then left to fail on its own."""
        if not timeout_s:
            return action()
        context = self.spark.sparkContext
        group = f"engine-{uuid.uuid4().hex}"
        done = threading.Event()
        outcome: dict[str, Any] = {}

        def run() -> None:
            context.setJobGroup(group, what, interruptOnCancel=True)
            try:
                outcome["rows"] = action()
            except BaseException as exc:  # handed to the caller below
                outcome["error"] = exc
            finally:
                done.set()
                context.setLocalProperty("spark.jobGroup.id", None)

        def cancel() -> None:
            # A job may start after a cancel (planning is slow under load), and jobs Spark starts
            # on its own threads for this query (a broadcast's) carry no group: cancel all, again.
            while not done.is_set():
                context.cancelJobGroup(group)
                context.cancelAllJobs()
                done.wait(0.5)

        worker = threading.Thread(target=run, name="engine-spark-query", daemon=True)
        worker.start()
        if not done.wait(timeout_s):
            threading.Thread(target=cancel, name="engine-spark-cancel", daemon=True).start()
            done.wait(_GRACE_S)
            raise ExecutionError(f"{what}: the query timed out after {timeout_s:g} s (its Spark jobs were cancelled)")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["rows"]

    @_spark_errors
    def write(self, target: Relation, rows: Any, *, mode: WriteMode = "create", constants: Sequence[Constant] = ()) -> int:
        """Store a DataFrame or Arrow table (plus ``constants`` columns) as ``target``. The rows are
        on the driver already, so they are written as Parquet from Arrow (no Spark job): into a new
        folder of the lake table (then committed), or into a staging folder."""
        if not self._in_lake(target) and mode == "create" and target in self._staged:
            raise ExecutionError(f"the table {target} already exists")
        table = arrow_rows(rows, constants)
        if self._in_lake(target):
            self._commit_arrow(target, table, mode="append" if mode == "append" else "overwrite")
            return self.count(target)
        if mode == "append" and target in self._staged:
            staged = self._write_arrow(table)
            return self._store(target, self._after(self._table(target), self._read(staged)))
        self._staged[target] = self._write_arrow(table)
        return table.num_rows

    @_spark_errors
    def map_frames(self, target: Relation, source: Relation | ops.FeatureStoreOp, fn: Callable, added: Mapping[str, str]) -> int:
        """``fn`` over ``source`` on the executors (``mapInArrow``), stored as ``target``; a failure
        inside ``fn`` is its own ExecutionError (exit 5), the worker's trace goes to the log."""
        from engine.backends.spark.frames import engine_message, map_frames

        modules = getattr(fn, "modules", None)
        if callable(modules) and not self.settings.master.startswith("sc://"):
            from engine.backends.spark.shipping import ship_libraries

            ship_libraries(self.spark, modules(), getattr(fn, "root", None))
        try:
            return self._store(target, map_frames(self.compile(source), fn, added))
        except EngineError:
            raise
        except Exception as exc:
            message = engine_message(exc)
            if message is None:
                raise
            log.debug("a frame function failed on an executor", exc_info=True)
            raise ExecutionError(f"{message}{_trace_hint()}") from None

    @_spark_errors
    def append_new(self, target: Relation, rows: Any, keys: Sequence[str], *, constants: Sequence[Constant] = ()) -> int:
        """Append the rows whose ``keys`` are not in ``target`` yet; return how many (exactly once)."""
        if not keys:
            raise ExecutionError("an exactly-once append needs key columns")
        new = self._read(self._write_arrow(arrow_rows(rows, constants)))
        if self.exists(target):
            old = self._table(target).select(*keys).distinct()
            new = new.join(old, on=[new[k] == old[k] for k in keys], how="left_anti")
        fresh = self._materialized(new)
        count = _parquet_rows(fresh.files)
        if count or not self.exists(target):
            df = self._read(fresh)
            if self._in_lake(target):
                self._commit(target, df, mode="append")
            else:
                self._store(target, self._after(self._table(target), df) if target in self._staged else df)
        return count

    @_spark_errors
    def merge(self, target: Relation, staged: Relation, keys: Sequence[str]) -> None:
        """Upsert: rows of ``staged`` replace the rows of ``target`` with the same ``keys``."""
        old, new = self._table(target), self._table(staged)
        kept = old.join(new.select(*keys).distinct(), on=[old[k].eqNullSafe(new[k]) for k in keys], how="left_anti")
        cols = [c for c in old.columns if c != ROW]
        self._store(target, self._after(kept, new).select(*cols, *[c for c in new.columns if c not in cols]))

    @_spark_errors
    def add_column(self, relation: Relation, column: str, type_: str) -> None:
        from pyspark.sql import functions as F

        from engine.backends.spark.types import spark_type_name

        self._store(relation, self._table(relation).withColumn(column, F.lit(None).cast(spark_type_name(type_))))

    @_spark_errors
    def cast_column(self, relation: Relation, column: str, type_: str) -> None:
        from pyspark.sql import functions as F

        from engine.backends.spark.types import spark_type_name

        self._store(relation, self._table(relation).withColumn(column, F.col(column).cast(spark_type_name(type_))))

    @_spark_errors
    def fetch(self, source: Relation | ops.FeatureStoreOp) -> "pyarrow.Table":
        df = self.compile(source)
        if ROW in df.columns:
            df = df.orderBy(ROW).drop(ROW)
        direct = self._read_on_driver(source, df.schema)
        return utc(direct if direct is not None else df.toArrow())

    def frame(self, source: Relation | ops.FeatureStoreOp) -> "pandas.DataFrame":
        from engine.backends.spark.frames import to_pandas

        return to_pandas(self.fetch(source))

    @_spark_errors
    def time_bounds(self, source: Relation | ops.FeatureStoreOp, column: str) -> tuple[object, object, int]:
        from pyspark.sql import functions as F

        df = self.compile(source)
        row = utc(df.agg(F.min(column), F.max(column), F.count(F.lit(1)) - F.count(F.col(column))).toArrow()).to_pylist()
        if not row:
            return (None, None, 0)
        values = list(row[0].values())
        return (values[0], values[1], int(values[2] or 0))

    # --- data checks and statistics ------------------------------------------------------------------

    @_spark_errors
    def key_report(self, relation: Relation, key: Sequence[str]) -> KeyReport:
        return quality.key_report(self._visible(self._table(relation)), key)

    @_spark_errors
    def non_finite_counts(self, relation: Relation) -> dict[str, int]:
        return quality.non_finite_counts(self._visible(self._table(relation)))

    @_spark_errors
    def nullify_non_finite(self, relation: Relation, columns: Sequence[str]) -> None:
        # On a lake table: a new commit of the same rows with the values nulled.
        self._store(relation, quality.nullified(self._table(relation), columns))

    @_spark_errors
    def expectations(self, relation: Relation, expectations: Sequence["Expectation"]) -> list[ExpectationResult]:
        return quality.expectations(self._visible(self._table(relation)), expectations)

    @_spark_errors
    def statistics(self, relation: Relation) -> dict[str, dict[str, object]]:
        return quality.statistics(self._visible(self._table(relation)), rows=self.count(relation))

    @_spark_errors
    def quantiles(self, relation: Relation, column: str, quantiles: int) -> list[float]:
        return quality.quantiles(self._visible(self._table(relation)), column, quantiles)

    # --- sources -----------------------------------------------------------------------------------

    @_spark_errors
    def read_source(self, source: "Source", target: Relation, *, files: Sequence[Path] | None = None, mode: str = "replace") -> IngestReport:
        """Read a source's files into ``target`` (a lake table: one commit). ``mode="append"`` with
        ``files``: only those files, appended when they read to the stored columns and types."""
        import dataclasses

        from engine.backends.spark import sources

        if mode == "append" and files is not None and self.exists(target):
            batch = dataclasses.replace(source, resolved_paths=tuple(files), allow_empty=True)
            df = sources.read(self.spark, batch)
            if self.columns(target) == {f: t for f, t in self._columns_of(df).items()}:
                adopted = self._adopt_parquet(batch, df, target, append=True)
                if adopted is not None:
                    return adopted
                staged = self._materialized(df)
                rows = _parquet_rows(staged.files)
                if rows:
                    self._store(target, self._read(staged), mode="append")
                return IngestReport(rows, (), appended=True, file_rows=_file_rows(batch, rows))
        df = sources.read(self.spark, source)
        adopted = self._adopt_parquet(source, df, target, append=False)
        if adopted is not None:
            return adopted
        rows = self._store(target, df)
        return IngestReport(rows, (), file_rows=_file_rows(source, rows))

    def _adopt_parquet(self, source: "Source", df: "DataFrame", target: Relation, *, append: bool) -> IngestReport | None:
        """A Parquet source whose files already hold what the table stores is committed as its own
        files, hard-linked (``Lake.adopt``, as on DuckDB): Spark neither reads nor writes its rows.
        That needs the same schema in every file (Spark would merge drifting ones), no naive
        timestamp (read in the source's timezone) and types a Delta table records, and the table
        must read back with the column types of ``df``, the source as ``sources.read`` read it
        (missing, empty or unreadable files are its DataErrors; to append, the caller has checked
        those columns against the table's). None: read and write it instead."""
        import pyarrow as pa
        import pyarrow.parquet as pq
        from pyspark.sql.pandas.types import from_arrow_schema

        from engine.backends.spark.types import engine_type

        if source.format != "parquet" or not source.resolved_paths or not self._in_lake(target):
            return None
        paths = [str(p) for p in source.resolved_paths]
        try:
            footers = [pq.ParquetFile(p) for p in paths]
        except Exception:  # unreadable by pyarrow: Spark's own write is the safe path
            return None
        schemas = [pa.schema([f.with_nullable(True) for f in footer.schema_arrow]).remove_metadata() for footer in footers]
        if any(not schema.equals(schemas[0]) for schema in schemas[1:]):
            return None
        if any(pa.types.is_timestamp(f.type) and f.type.tz is None for f in schemas[0]):
            return None
        try:
            stored = {f.name: engine_type(f.dataType) for f in from_arrow_schema(schemas[0]).fields}
        except Exception:  # a type Spark cannot hold as it is
            return None
        if stored != self._columns_of(df):
            return None
        rows = [footer.metadata.num_rows for footer in footers]
        if self.lake.adopt(target, list(zip(paths, rows, strict=True)), schemas[0], mode="append" if append else "overwrite") is None:
            return None
        return IngestReport(sum(rows), (), appended=append, file_rows=tuple(zip(paths, rows, strict=True)))

    @staticmethod
    def _columns_of(df: "DataFrame") -> dict[str, str]:
        from engine.backends.spark.types import engine_type

        return {f.name: engine_type(f.dataType) for f in df.schema.fields if f.name != ROW}


def _file_rows(source: "Source", rows: int) -> tuple[tuple[str, int | None], ...]:
    """Rows read from each file: the total for one file; not counted (None) for several."""
    paths = source.resolved_paths
    if len(paths) == 1:
        return ((str(paths[0]), rows),)
    return tuple((str(p), None) for p in paths)


def _spark_size(memory_limit: str) -> str:
    """DuckDB's memory_limit ('4GB', '512MiB') as a Spark size ('4g', '512m')."""
    text = memory_limit.strip().lower().replace("ib", "").replace("b", "")
    return text if text[-1:] in "kmgt" else f"{text}b"
