"""How the Spark backend reads and writes relations: lake tables by their committed versions'
file lists (``spark.read.parquet``, no Delta jars) and commits of the Parquet Spark writes into a
new folder of the table (``Lake.commit_files``); staging tables as Parquet folders in a scratch
directory. The mixin of ``SparkBackend`` (as ``lake_tables`` is the DuckDB backend's): it uses the
backend's session, lake, scratch directory and staged map. Rows keep their order in ROW.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.backends.spark.compile import ROW
from engine.backends.spark.connect import first_line
from engine.errors import EngineError, ExecutionError, StorageIOError
from engine.sql import ops
from engine.sql.ops import Relation

if TYPE_CHECKING:
    import pyarrow
    from pyspark.sql import DataFrame, SparkSession

    from engine.backends.lake import Lake

_FILE_SHIFT = 1 << 40  # _engine_row of a lake row: file index * 2**40 + row index in the file


@dataclass(frozen=True)
class _Staged:
    """What a staging relation names: a Parquet folder the backend wrote, or files of the lake."""

    files: tuple[str, ...]
    schema: Any = None  # pyarrow schema for a relation without files
    lake_order: bool = False  # ROW from the file list order (lake files), else stored in the files


class SparkTables:
    """Reading and writing relations for ``SparkBackend``."""

    spark: "SparkSession"
    lake: "Lake | None"
    _staged: dict
    _lake_frames: dict
    _scratch: Path | None
    _scratch_parent: Path | None

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

    def _lake_files(self, relation: Relation) -> tuple[tuple[str, ...], Any] | None:
        """The files (in lake order) and Arrow schema of a relation that is a list of lake files
        (a committed table, an ``as_of`` or appended-rows alias); None for anything else."""
        if self._in_lake(relation) and relation not in self._staged:
            version = self.lake.version(relation)
            if version is None:
                return None
            return tuple(self.lake.files(relation, version)), self.lake.schema(relation, version)
        staged = self._staged.get(relation)
        if staged is None or not staged.lake_order:
            return None
        return staged.files, staged.schema

    def _read_on_driver(self, source: "Relation | ops.FeatureStoreOp", spark_schema: Any) -> "pyarrow.Table | None":
        """The rows of a lake relation, or of a ``Scan`` of one (time-range filters, columns, an
        order), read straight from its Parquet files in this process with the Arrow types
        ``DataFrame.toArrow`` gives for ``spark_schema``: what Spark would collect, without a
        Spark job streaming every row back to the driver (4.4 s for the flights example's
        252k-row training table on local[2]). The driver reads the files it committed. Rows come
        in lake order; a Scan's order is Spark's: ascending, NULLs first, NaN above every number,
        ties in lake order. None for anything else, or types that do not convert: the caller
        collects through Spark."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.dataset as ds
        from pyspark.sql.pandas.types import to_arrow_schema

        scan = source if isinstance(source, ops.Scan) else None
        relation = scan.source if scan is not None else source
        if not isinstance(relation, Relation):
            return None
        if scan is not None and not all(isinstance(f, ops.TimeRange) for f in scan.filters):
            return None  # user filters (SQL) and anti-joins run in Spark
        listed = self._lake_files(relation)
        if listed is None:
            return None
        files, schema = listed
        large = self.spark.conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false") == "true"
        try:
            target = to_arrow_schema(spark_schema, error_on_duplicated_field_names_in_struct=True, timezone="UTC", prefers_large_types=large)
            paths = [str(p) for p in _parquet_files(files)]
            if not paths:
                return target.empty_table()
            physical = _without_row(schema) if schema is not None else None
            table = ds.dataset(paths, schema=physical, format="parquet").to_table()
            if scan is not None:
                for f in scan.filters:
                    column = table.column(f.column)
                    if not (pa.types.is_timestamp(column.type) and column.type.tz is not None):
                        return None
                    keep = pc.and_(pc.greater_equal(column, pa.scalar(f.start, column.type)), pc.less(column, pa.scalar(f.end, column.type)))
                    table = table.filter(keep)  # NULL times: dropped, as Spark's WHERE drops them
                if scan.order_by:
                    # Per column: NULLs first (a helper key: present or not), then the values,
                    # where Arrow puts NaN after every number as Spark does; ties in lake order.
                    keys: dict[str, Any] = {}
                    for i, c in enumerate(scan.order_by):
                        keys[f"_present{i}"] = pc.is_valid(table.column(c))
                        keys[f"_value{i}"] = table.column(c)
                    keys["_position"] = np.arange(table.num_rows, dtype=np.int64)
                    table = table.take(pc.sort_indices(pa.table(keys), sort_keys=[(k, "ascending") for k in keys]))
            return table.select(target.names).cast(target)
        except (pa.ArrowException, KeyError, TypeError, ValueError, OSError):
            return None

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

    def _materialized(self, df: "DataFrame") -> _Staged:
        """``df`` written once to scratch (so a plan over a changing table is computed once)."""
        folder = self._scratch_dir() / f"_tmp.{uuid.uuid4().hex}"
        df.write.parquet(str(folder))
        return _Staged((str(folder),), _parquet_schema((str(folder),), df))

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
