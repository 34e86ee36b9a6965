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
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from engine.backends.base import Capabilities, Catalog, ExpectationResult, IngestReport, WriteMode
from engine.backends.spark import compile as plans
from engine.backends.spark import connect, quality
from engine.backends.spark.compile import ROW
from engine.backends.spark.connect import SparkSettings, first_line
from engine.backends.spark.frames import arrow_rows, utc
from engine.backends.spark.sources import FORMATS
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
_FILE_SHIFT = 1 << 40  # _engine_row of a lake row: file index * 2**40 + row index in the file


@dataclass(frozen=True)
class _Staged:
    """What a staging relation names: a Parquet folder the backend wrote, or files of the lake."""

    files: tuple[str, ...]
    schema: Any = None  # pyarrow schema for a relation without files
    lake_order: bool = False  # ROW from the file list order (lake files), else stored in the files


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


class SparkBackend:
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

    # --- reading relations -------------------------------------------------------------------------

    def _in_lake(self, relation: Relation) -> bool:
        return self.lake is not None and self.lake.holds(relation)

    def _table(self, relation: Relation) -> "DataFrame":
        """The rows of ``relation`` with ROW (their order)."""
        if self._in_lake(relation) and relation not in self._staged:
            version = self.lake.version(relation)
            if version is None:
                raise ExecutionError(f"the table {relation} does not exist")
            return self._lake_frame(relation, version)
        staged = self._staged.get(relation)
        if staged is None:
            raise ExecutionError(f"the table {relation} does not exist")
        return self._read(staged)

    def _lake_frame(self, relation: Relation, version: int) -> "DataFrame":
        key = (relation, version)
        if key not in self._lake_frames:
            files = self.lake.files(relation, version)
            self._lake_frames[key] = self._read(_Staged(tuple(files), self.lake.schema(relation, version), lake_order=True))
        return self._lake_frames[key]

    def _read(self, staged: _Staged) -> "DataFrame":
        """The rows of Parquet files, with their schema given (read from a footer or the lake: no
        Spark job infers it)."""
        from pyspark.sql import functions as F
        from pyspark.sql.pandas.types import from_arrow_schema

        schema = staged.schema if staged.schema is not None else _parquet_schema(staged.files)
        spark_schema = from_arrow_schema(_without_row(schema) if staged.lake_order else schema)
        if not _parquet_files(staged.files):
            df = self.spark.createDataFrame([], spark_schema)
            return df if ROW in df.columns else df.withColumn(ROW, F.lit(0).cast("long"))
        df = self.spark.read.schema(spark_schema).parquet(*staged.files)
        if not staged.lake_order:
            return df
        index = F.create_map(*(x for i, f in enumerate(staged.files) for x in (F.lit(str(Path(f).resolve())), F.lit(i))))
        path = F.regexp_replace(F.col("_metadata.file_path"), "^file:(//)?", "")
        position = F.coalesce(F.element_at(index, path), F.lit(0)).cast("long")
        return df.withColumn(ROW, position * F.lit(_FILE_SHIFT) + F.col("_metadata.row_index"))

    def compile(self, source: Relation | ops.FeatureStoreOp) -> "DataFrame":
        """The DataFrame of a relation or an operation, with ROW where its rows have an order."""
        return plans.compile_op(source, self._table)

    @staticmethod
    def _visible(df: "DataFrame") -> "DataFrame":
        return df.drop(ROW) if ROW in df.columns else df

    # --- writing relations -------------------------------------------------------------------------

    def _scratch_dir(self) -> Path:
        if self._scratch is None:
            parent = self._scratch_parent
            if parent is not None:
                Path(parent).mkdir(parents=True, exist_ok=True)
            self._scratch = Path(tempfile.mkdtemp(prefix="engine-spark-", dir=parent))
        return self._scratch

    def _store(self, target: Relation, df: "DataFrame", *, mode: str = "overwrite") -> int:
        """Write ``df`` as ``target``: a lake commit, or a new staging folder; return its rows."""
        from pyspark.sql import functions as F

        if self._in_lake(target):
            return self._commit(target, df, mode=mode)
        if ROW not in df.columns:
            df = df.withColumn(ROW, F.monotonically_increasing_id())
        folder = self._scratch_dir() / f"{target.schema}.{target.name}.{uuid.uuid4().hex}"
        df.write.parquet(str(folder))
        self._staged[target] = _Staged((str(folder),), _parquet_schema((str(folder),), df))
        return _parquet_rows(self._staged[target].files)

    def _commit(self, target: Relation, df: "DataFrame", *, mode: str) -> int:
        """Spark writes Parquet into a new folder of the lake table, in row order; the lake commits
        the files (``commit_files``): readers see them when the transaction records the version."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if ROW in df.columns:
            df = df.orderBy(ROW).drop(ROW)
        folder = self.lake.data_dir(target)
        try:
            df.write.parquet(str(folder))
        except Exception as exc:
            if isinstance(exc, EngineError):
                raise
            text = first_line(exc)
            if "No space left" in str(exc) or "Permission denied" in str(exc):
                raise StorageIOError(f"cannot write the table {target} at {folder.parent}: {text}; free space, then apply again") from None
            raise
        for junk in [*folder.glob(".*.crc"), *folder.glob("_SUCCESS")]:
            junk.unlink(missing_ok=True)
        files = sorted(folder.glob("*.parquet"))
        if files:
            schema = pq.read_schema(files[0])
        else:
            from pyspark.sql.pandas.types import to_arrow_schema

            schema = to_arrow_schema(df.schema, timezone="UTC")
        schema = pa.schema([f.with_nullable(True) for f in schema]).remove_metadata()
        listing = [(str(f), pq.ParquetFile(f).metadata.num_rows, f.stat().st_size) for f in files]
        self.lake.commit_files(target, listing, schema, mode=mode)
        return sum(r for _, r, _ in listing)

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
    def run_select(self, target: Relation, sql: str, tables: Mapping[str, Relation], *, timeout_s: float | None) -> int:
        """``target`` from gated user SQL, transpiled from DuckDB's dialect to Spark SQL; each input
        table is a temporary view of its rows (without the row-order column). A lake ``target`` is
        written straight into a commit, visible when the transaction records it."""
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

    def _write_arrow(self, table: "pyarrow.Table") -> _Staged:
        """A staging folder holding ``table`` (with ROW: the rows' order)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder = self._scratch_dir() / f"_rows.{uuid.uuid4().hex}"
        folder.mkdir(parents=True)
        with_row = table.append_column(ROW, pa.array(range(table.num_rows), pa.int64()))
        pq.write_table(with_row, folder / "part-00000.parquet")
        return _Staged((str(folder),), with_row.schema)

    def _commit_arrow(self, target: Relation, table: "pyarrow.Table", *, mode: str) -> int:
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder = self.lake.data_dir(target)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "part-00000.parquet"
        pq.write_table(table, path)
        schema = pa.schema([f.with_nullable(True) for f in table.schema]).remove_metadata()
        self.lake.commit_files(target, [(str(path), table.num_rows, path.stat().st_size)], schema, mode=mode)
        return table.num_rows

    @staticmethod
    def _after(existing: "DataFrame", new: "DataFrame") -> "DataFrame":
        """``existing`` then ``new`` (ROW shifted past the existing rows)."""
        from pyspark.sql import functions as F

        top = existing.agg(F.max(ROW)).first()[0]
        shift = (top + 1) if top is not None else 0
        return existing.unionByName(new.withColumn(ROW, F.col(ROW) + F.lit(shift)), allowMissingColumns=True)

    @_spark_errors
    def map_frames(self, target: Relation, source: Relation | ops.FeatureStoreOp, fn: Callable, added: Mapping[str, str]) -> int:
        """``fn`` over ``source`` on the executors (``mapInArrow``), stored as ``target``; a failure
        inside ``fn`` is its own ExecutionError (exit 5), the worker's trace goes to the log."""
        from engine.backends.spark.frames import engine_message, map_frames

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

    def _materialized(self, df: "DataFrame") -> _Staged:
        """``df`` written once to scratch (so a plan over a changing table is computed once)."""
        folder = self._scratch_dir() / f"_tmp.{uuid.uuid4().hex}"
        df.write.parquet(str(folder))
        return _Staged((str(folder),), _parquet_schema((str(folder),), df))

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
        return utc(df.toArrow())

    def frame(self, source: Relation | ops.FeatureStoreOp) -> "pandas.DataFrame":
        from engine.backends.spark.frames import to_pandas

        return to_pandas(self.fetch(source))

    def at_version(self, relation: Relation, version: int) -> Relation:
        """A read-only relation holding ``relation``'s rows at a recorded lake version (``as_of``)."""
        if not self._in_lake(relation):
            raise ExecutionError(f"{relation} keeps no versions")
        alias = Relation("staging", f"_asof__{relation.schema}__{relation.name}__{version}")
        files = self.lake.files(relation, version)
        self._staged[alias] = _Staged(tuple(files), self.lake.schema(relation, version), lake_order=True)
        return alias

    def lake_version(self, relation: Relation) -> int | None:
        return self.lake.version(relation) if self._in_lake(relation) else None

    def appended(self, relation: Relation, since: int) -> Relation | None:
        """The rows the commits after ``since`` appended to ``relation``; None when one did more."""
        if not self._in_lake(relation):
            return None
        files = self.lake.appended_files(relation, since)
        if files is None:
            return None
        alias = Relation("staging", f"_new__{relation.schema}__{relation.name}")
        self._staged[alias] = _Staged(tuple(files), self.lake.schema(relation), lake_order=True)
        return alias

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
        return quality.statistics(self._visible(self._table(relation)))

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
                staged = self._materialized(df)
                rows = _parquet_rows(staged.files)
                if rows:
                    self._store(target, self._read(staged), mode="append")
                return IngestReport(rows, (), appended=True, file_rows=_file_rows(batch, rows))
        df = sources.read(self.spark, source)
        rows = self._store(target, df)
        return IngestReport(rows, (), file_rows=_file_rows(source, rows))

    @staticmethod
    def _columns_of(df: "DataFrame") -> dict[str, str]:
        from engine.backends.spark.types import engine_type

        return {f.name: engine_type(f.dataType) for f in df.schema.fields if f.name != ROW}


def _parquet_files(paths: Sequence[str]) -> list[Path]:
    """The Parquet files of ``paths`` (files, or folders Spark wrote), in order."""
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        out.extend(sorted(path.glob("*.parquet")) if path.is_dir() else [path])
    return out


def _parquet_rows(paths: Sequence[str]) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in _parquet_files(paths))


def _parquet_schema(paths: Sequence[str], df: "DataFrame | None" = None) -> "pyarrow.Schema":
    """The Arrow schema of the first Parquet file (Spark writes one per partition, all alike), or
    of ``df`` when there is none."""
    import pyarrow.parquet as pq

    files = _parquet_files(paths)
    if files:
        return pq.read_schema(files[0]).remove_metadata()
    from pyspark.sql.pandas.types import to_arrow_schema

    if df is None:
        raise ExecutionError(f"no Parquet file in {', '.join(paths)}")
    return to_arrow_schema(df.schema, timezone="UTC")


def _without_row(schema: "pyarrow.Schema") -> "pyarrow.Schema":
    return schema.remove(schema.get_field_index(ROW)) if ROW in schema.names else schema


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
