"""The lake: the workspace's persistent tables as Delta Lake tables, shared by every backend.

Owns the table format and the rule that makes several tables publish atomically: a table's
*committed* version is the one the catalog records (``_engine.tables``), not the newest in its
Delta log. A writer commits Delta versions first and records them in the catalog's transaction
last, so a reader (another process, on the catalog's last commit) sees every table of an apply at
its old version or every one at its new, and never waits for a writer. A Delta version the catalog
never recorded (a crash between the two) is invisible, and the next write starts from the recorded
version again (``restore``). Every recorded version stays readable (``as_of``) until ``vacuum``.

DuckDB reads a version by its file list (as Spark will) and writes Parquet that ``commit_files``
commits. Must not import a
compute engine.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import StorageIOError, UsageError
from engine.sql.ops import Relation

if TYPE_CHECKING:
    import pyarrow

    from engine.backends.base import Catalog
    from engine.model.parquet_schema import ParquetColumn

    #: pyarrow's or arro3's schema, a ``deltalake.Schema``, or an Arrow stream (a DuckDB relation)
    ArrowSchemaLike = object

#: The schemas whose relations are lake tables; any other (``staging``) lives in the backend's memory.
SCHEMAS = frozenset({"src", "offline", "online", "views", "training", "predictions"})

_DDL = [
    """CREATE TABLE IF NOT EXISTS _engine.tables (
        schema_name VARCHAR NOT NULL,
        table_name VARCHAR NOT NULL,
        version INTEGER NOT NULL,
        run_id VARCHAR,
        committed_at VARCHAR NOT NULL,
        PRIMARY KEY (schema_name, table_name))""",
    """CREATE TABLE IF NOT EXISTS _engine.table_commits (
        schema_name VARCHAR NOT NULL,
        table_name VARCHAR NOT NULL,
        version INTEGER NOT NULL,
        run_id VARCHAR,
        committed_at VARCHAR NOT NULL,
        PRIMARY KEY (schema_name, table_name, version))""",
]

_HINT = "run `engine check` to see what is wrong; the catalog still points at the last good version, so no data is lost"


@dataclass(frozen=True)
class Commit:
    """One recorded version of a lake table."""

    version: int
    run_id: str | None
    committed_at: datetime


def _now() -> str:
    from engine.backends.catalog import utc_text

    return utc_text(datetime.now(UTC))


def _parse_time(text: str) -> datetime:
    from engine.backends.catalog import utc_datetime

    return utc_datetime(text)


class Lake:
    """Delta tables under ``root`` (``<root>/<schema>/<name>``), versioned through ``catalog``."""

    def __init__(self, root: Path, catalog: "Catalog", *, read_only: bool = False) -> None:
        self.root = Path(root)
        self.catalog = catalog
        self.read_only = read_only
        self.run_id: str | None = None  # stamped on every commit this lake records
        self._pending: dict[Relation, int | None] = {}  # written in the open transaction (None: dropped)
        self._depth = 0
        self._committed: dict[Relation, int] | None = None  # cache of _engine.tables, per transaction
        # Loaded Delta tables by (table, version): a version never changes once committed, so one
        # load serves every read of it in this process (an incremental apply read some 60 times).
        # Forgotten when a table may be recreated under the same name: drop, vacuum, rewind.
        self._loaded: dict[tuple[Relation, int], object] = {}
        if not read_only:
            for statement in _DDL:
                catalog.execute(statement)

    # --- what is committed -----------------------------------------------------------------------

    @staticmethod
    def holds(relation: Relation) -> bool:
        return relation.schema in SCHEMAS

    def path(self, relation: Relation) -> Path:
        return self.root / relation.schema / relation.name

    def committed(self) -> dict[Relation, int]:
        """Every table's recorded version (the catalog's last commit, plus this transaction's own)."""
        if self._committed is None:
            rows = self.catalog.query("SELECT schema_name, table_name, version FROM _engine.tables") if self._has_catalog() else []
            self._committed = {Relation(s, n): int(v) for s, n, v in rows}
        return self._committed

    def version(self, relation: Relation) -> int | None:
        """The version readers of ``relation`` see, or None when it does not exist."""
        if relation in self._pending:
            return self._pending[relation]
        return self.committed().get(relation)

    def commits(self, relation: Relation) -> list[Commit]:
        """Every recorded version of ``relation``, oldest first."""
        if not self._has_catalog():
            return []
        rows = self.catalog.query(
            "SELECT version, run_id, committed_at FROM _engine.table_commits WHERE schema_name = ? AND table_name = ? ORDER BY version",
            [relation.schema, relation.name],
        )
        return [Commit(int(v), r, _parse_time(t)) for v, r, t in rows]

    def version_as_of(self, relation: Relation, as_of: int | datetime | str) -> int:
        """The recorded version of ``relation`` named by ``as_of``: a version number, or the last
        one committed at or before a time. UsageError (exit 2) when there is none."""
        commits = self.commits(relation)
        if isinstance(as_of, str):
            as_of = int(as_of) if as_of.isdigit() else _parse_time(as_of)
        if isinstance(as_of, int):
            if any(c.version == as_of for c in commits):
                return as_of
            known = ", ".join(str(c.version) for c in commits) or "none"
            raise UsageError(f"{relation} has no commit {as_of} (recorded commits: {known})")
        at = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
        earlier = [c for c in commits if c.committed_at <= at]
        if not earlier:
            first = commits[0].committed_at.isoformat() if commits else "never"
            raise UsageError(f"{relation} did not exist at {at.isoformat()} (first commit: {first})")
        return earlier[-1].version

    # --- reading ---------------------------------------------------------------------------------

    def files(self, relation: Relation, version: int | None = None) -> list[str]:
        """The Parquet files of a version, as absolute paths: its rows are their union (what DuckDB
        and a distributed engine read). StorageIOError for a table that needs more than a file
        list (deletion vectors, column mapping: a foreign table)."""
        version = self.version(relation) if version is None else version
        if version is None:
            return []
        table = self._table(relation, version)
        features = set(table.protocol().reader_features or ())
        if features & {"deletionVectors", "columnMapping"}:
            raise StorageIOError(
                f"the table {relation} at {self.path(relation)} uses {', '.join(sorted(features))}, which the engine does not write; "
                "it was written by another tool: move it aside and apply again"
            )
        return [uri.removeprefix("file://") for uri in table.file_uris()]

    def appended_files(self, relation: Relation, since: int, until: int | None = None) -> list[str] | None:
        """The Parquet files (absolute paths) that the commits after ``since`` up to ``until`` (the
        committed version when None) added, when every one of them only appended; None when any
        replaced, removed or restored rows (an overwrite, a merge, a restore) or the log of
        ``since`` can no longer be read (vacuumed): the caller then reads the whole version."""
        until = self.version(relation) if until is None else until
        if until is None or since > until:
            return None
        if since == until:
            return []
        for version in range(since + 1, until + 1):
            if not self._only_appends(relation, version):
                return None
        try:
            before = set(self.files(relation, since))
        except StorageIOError:
            return None
        return [f for f in self.files(relation, until) if f not in before]

    def _only_appends(self, relation: Relation, version: int) -> bool:
        """Whether Delta commit ``version`` only added files: read from its log entry (delta-rs'
        ``history()`` mislabels versions on a table loaded at an older version)."""
        import json

        entry = self.path(relation) / "_delta_log" / f"{version:020d}.json"
        try:
            lines = [json.loads(line) for line in entry.read_text().splitlines() if line.strip()]
        except (OSError, ValueError):
            return False
        info = next((a["commitInfo"] for a in lines if "commitInfo" in a), {})
        mode = str((info.get("operationParameters") or {}).get("mode", "")).lower()
        return info.get("operation") == "WRITE" and mode == "append" and not any("remove" in a for a in lines)

    def schema(self, relation: Relation, version: int | None = None) -> "pyarrow.Schema":
        """The Arrow schema of a version."""
        import pyarrow

        version = self.version(relation) if version is None else version
        return pyarrow.schema(self._table(relation, version).schema().to_arrow())

    def _table(self, relation: Relation, version: int | None):
        from deltalake import DeltaTable

        path = self.path(relation)
        if version is not None and (relation, version) in self._loaded:
            return self._loaded[(relation, version)]
        try:
            table = DeltaTable(str(path), version=version)
        except Exception as exc:  # deltalake raises TableNotFoundError, DeltaError, OSError …
            raise StorageIOError(f"cannot read the table {relation} at {path} (version {version}): {_first_line(exc)}; {_HINT}") from None
        if version is not None:
            self._loaded[(relation, version)] = table
        return table

    # --- writing ---------------------------------------------------------------------------------

    def write(self, relation: Relation, data: "pyarrow.RecordBatchReader | pyarrow.Table", *, mode: str = "overwrite") -> int:
        """Commit ``data`` to ``relation`` (``overwrite`` replaces its rows, ``append`` adds) and
        return the new version; visible to readers when the transaction records it."""
        from deltalake import CommitProperties, write_deltalake

        self._writable()
        path = self.path(relation)
        current = self.version(relation)
        self._check_writable_folder(relation)
        if mode == "append" and current is not None:
            self._rewind(relation, current)
        elif mode == "append":
            mode = "overwrite"  # the first write of a table (or after a drop) starts it afresh
        path.mkdir(parents=True, exist_ok=True)
        properties = CommitProperties(custom_metadata={"engine.run_id": self.run_id or "", "engine.table": str(relation)})
        with _storage_errors(relation, path, "write"):
            write_deltalake(str(path), data, mode=mode, schema_mode="overwrite" if mode == "overwrite" else "merge", commit_properties=properties)
            version = self._table(relation, None).version()
        self._record(relation, version)
        return version

    def data_dir(self, relation: Relation) -> Path:
        """A new folder inside ``relation``'s table for an engine to write one commit's Parquet
        files into (then ``commit_files``); files nothing commits are removed by ``vacuum``."""
        import uuid

        self._writable()
        self._check_writable_folder(relation)
        folder = self.path(relation) / f"part-{uuid.uuid4().hex}"
        folder.parent.mkdir(parents=True, exist_ok=True)
        return folder

    def commit_files(self, relation: Relation, files: "list[tuple[str, int, int]]", schema: "ArrowSchemaLike", *, mode: str = "overwrite") -> int:
        """Commit Parquet files another engine wrote inside the table's folder ((path, rows, bytes)
        each; ``overwrite`` replaces the table's rows, ``append`` adds) and return the new version:
        the delta-rs counterpart of Iceberg's ``add_files``, how DuckDB (and Spark, without Delta
        jars) write. Visible to readers when the transaction records it."""
        import json
        import time

        from deltalake import CommitProperties, DeltaTable
        from deltalake.transaction import AddAction, create_table_with_add_actions

        self._writable()
        path = self.path(relation)
        current = self.version(relation)
        now = int(time.time() * 1000)
        actions = [
            AddAction(
                path=Path(file).resolve().relative_to(path.resolve()).as_posix(),
                size=int(size),
                partition_values={},
                modification_time=now,
                data_change=True,
                stats=json.dumps({"numRecords": int(rows)}),
            )
            for file, rows, size in files
        ]
        properties = CommitProperties(custom_metadata={"engine.run_id": self.run_id or "", "engine.table": str(relation)})
        delta_schema = _delta_schema(schema)
        with _storage_errors(relation, path, "commit to"):
            if not (path / "_delta_log").is_dir():
                create_table_with_add_actions(str(path), delta_schema, actions, mode="error", commit_properties=properties)
            else:
                if mode == "append" and current is not None:
                    self._rewind(relation, current)
                table = DeltaTable(str(path))
                table.create_write_transaction(
                    actions, mode="append" if mode == "append" and current is not None else "overwrite", schema=delta_schema, commit_properties=properties
                )
            version = self._table(relation, None).version()
        self._record(relation, version)
        return version

    def adopt(self, relation: Relation, files: "list[tuple[str, int]]", schema: "ArrowSchemaLike", *, mode: str = "overwrite") -> int | None:
        """Commit existing Parquet files ((path, rows) each, e.g. a source's own files) to
        ``relation`` without rewriting them: each is hard-linked into a new folder of the table (no
        copy, no extra disk; the table keeps its rows even if the original is later removed or
        replaced by a new file). Returns the new version, or None (nothing committed) when a file
        cannot be linked (another file system, a platform without hard links) or is stored in a way
        the table cannot record (``_adoptable``): the caller then writes the rows itself. The
        caller has checked that every file reads as ``schema``. A file changed in place after its
        commit is caught by the source's digest, which the planner compares on the next apply."""
        import os

        from engine.model.parquet_schema import read_columns

        try:
            delta_schema = _delta_schema(schema)
        except Exception:  # a type the table format cannot record: the caller's general path says which
            return None
        try:
            if not all(_adoptable(read_columns(file), delta_schema) for file, _ in files):
                return None
        except (OSError, ValueError):
            return None
        folder = self.data_dir(relation)
        folder.mkdir(parents=True, exist_ok=True)
        linked: list[tuple[str, int, int]] = []
        try:
            for index, (file, rows) in enumerate(files):
                target = folder / f"{index:05d}-{Path(file).name}"
                os.link(file, target)
                linked.append((str(target), int(rows), target.stat().st_size))
        except OSError:
            for path, _, _ in linked:
                Path(path).unlink(missing_ok=True)
            folder.rmdir()
            return None
        return self.commit_files(relation, linked, delta_schema, mode=mode)

    def _check_writable_folder(self, relation: Relation) -> None:
        """StorageIOError for a damaged or foreign folder: the engine never writes over one."""
        path = self.path(relation)
        if self.version(relation) is not None:
            self._table(relation, None)
        elif path.is_dir() and any(path.iterdir()) and not (path / "_delta_log").is_dir():
            entries = list(path.iterdir())
            if all(e.name.startswith("part-") for e in entries):
                # Data files of a first write that a crash (SIGKILL) stopped before its commit:
                # never committed, so no reader can see them; remove them and write again (I1).
                for entry in entries:
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink(missing_ok=True)
                return
            raise StorageIOError(f"{path} holds files that are not a Delta table the engine wrote; move them aside and apply again (nothing was changed)")

    def drop(self, relation: Relation) -> None:
        """Stop recording ``relation``: readers no longer see it; its files stay until ``vacuum``."""
        self._writable()
        self._loaded.clear()
        if self.version(relation) is None:
            return
        self._pending[relation] = None
        if not self._depth:
            self._flush()

    def _rewind(self, relation: Relation, version: int) -> None:
        """When a crash left commits past the recorded version, add a commit restoring the recorded
        one's rows, and record it (so the next check finds the table consistent)."""
        self._loaded.clear()
        table = self._table(relation, None)
        if table.version() != version:
            table.restore(version)
            self._record(relation, self._table(relation, None).version())

    def _record(self, relation: Relation, version: int) -> None:
        self._pending[relation] = version
        if not self._depth:
            self._flush()

    # --- transactions ----------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Record this block's writes in the catalog when the outermost block ends without error
        (the caller holds the catalog's transaction, so data and metadata commit together)."""
        self._depth += 1
        try:
            yield
            if self._depth == 1:
                self._flush()
        except BaseException:
            if self._depth == 1:
                self._pending.clear()
                self._committed = None
            raise
        finally:
            self._depth -= 1

    def _flush(self) -> None:
        if not self._pending:
            return
        now = _now()
        for relation, version in self._pending.items():
            if version is None:
                self.catalog.execute("DELETE FROM _engine.tables WHERE schema_name = ? AND table_name = ?", [relation.schema, relation.name])
                continue
            self.catalog.execute(
                "INSERT OR REPLACE INTO _engine.tables VALUES (?, ?, ?, ?, ?)", [relation.schema, relation.name, version, self.run_id, now]
            )
            self.catalog.execute(
                "INSERT OR IGNORE INTO _engine.table_commits VALUES (?, ?, ?, ?, ?)", [relation.schema, relation.name, version, self.run_id, now]
            )
        committed = self.committed()
        for relation, version in self._pending.items():
            if version is None:
                committed.pop(relation, None)
            else:
                committed[relation] = version
        self._pending.clear()

    # --- housekeeping ----------------------------------------------------------------------------

    def vacuum(self, retention: timedelta, *, dry_run: bool = False) -> list[Path]:
        """Delete files no version younger than ``retention`` needs, and the folders of tables
        dropped longer ago than that; return what was (or would be) deleted."""
        self._writable()
        self._loaded.clear()
        removed: list[Path] = []
        cutoff = datetime.now(UTC) - retention
        recorded = self.committed()
        for schema_dir in sorted(p for p in self.root.glob("*") if p.is_dir()):
            for table_dir in sorted(p for p in schema_dir.glob("*") if p.is_dir()):
                relation = Relation(schema_dir.name, table_dir.name)
                if relation not in recorded:
                    commits = self.commits(relation)
                    if not commits or commits[-1].committed_at < cutoff:
                        removed.append(table_dir)
                        if not dry_run:
                            shutil.rmtree(table_dir, ignore_errors=True)
                            self.catalog.execute(
                                "DELETE FROM _engine.table_commits WHERE schema_name = ? AND table_name = ?", [relation.schema, relation.name]
                            )
                    continue
                table = self._table(relation, None)
                if table.version() != recorded[relation] and not dry_run:
                    table.restore(recorded[relation])  # unrecorded commits (a crash) lose their files below
                hours = max(int(retention.total_seconds() // 3600), 0)
                files = table.vacuum(retention_hours=hours, enforce_retention_duration=False, dry_run=dry_run)
                removed.extend(table_dir / f for f in files)
                if not dry_run:
                    for folder in table_dir.glob("part-*"):  # a commit's folder, emptied by the vacuum
                        if folder.is_dir() and not any(folder.iterdir()):
                            folder.rmdir()
                if not dry_run:
                    self._forget_commits_before(relation, cutoff, recorded[relation])
        return removed

    def _forget_commits_before(self, relation: Relation, cutoff: datetime, keep: int) -> None:
        """Commits older than the retention window can no longer be read back: unrecord them
        (all but the current one)."""
        for commit in self.commits(relation):
            if commit.committed_at < cutoff and commit.version != keep:
                self.catalog.execute(
                    "DELETE FROM _engine.table_commits WHERE schema_name = ? AND table_name = ? AND version = ?",
                    [relation.schema, relation.name, commit.version],
                )

    def rewind(self) -> list[Relation]:
        """Restore every table whose Delta log runs past its recorded version (a crash between a
        commit and the catalog) to the recorded version; return those tables."""
        self._writable()
        rewound = []
        for relation, version in sorted(self.committed().items(), key=lambda kv: str(kv[0])):
            if self._table(relation, None).version() != version:
                self._rewind(relation, version)
                rewound.append(relation)
        return rewound

    def problems(self) -> list[str]:
        """Tables whose recorded version cannot be read (``engine check``)."""
        out = []
        for relation, version in sorted(self.committed().items(), key=lambda kv: str(kv[0])):
            try:
                self._table(relation, version)
            except StorageIOError as exc:
                out.append(str(exc))
        return out

    # --- helpers ---------------------------------------------------------------------------------

    def _writable(self) -> None:
        if self.read_only:
            raise UsageError("the workspace is open read-only")

    def _has_catalog(self) -> bool:
        return self.catalog.has_table("_engine", "tables")


def _adoptable(columns: "list[ParquetColumn]", schema) -> bool:
    """Whether a Parquet file with ``columns`` (its footer's) can be a data file of a table recording
    the Delta ``schema`` as it is: the same column names, and every timestamp, nested ones too,
    stored as 64-bit microseconds with the table's time zone-ness (all a Delta table records: a
    distributed reader would refuse or misread milliseconds, nanoseconds or INT96). The caller has
    checked the other types (what DuckDB reads each file as)."""
    fields = list(schema.fields)
    if [c.name for c in columns] != [f.name for f in fields]:
        return False
    for column, field in zip(columns, fields, strict=True):
        wanted = _delta_times(field.type)
        if len(column.times) != len(wanted):
            return False
        for (unit, utc), want_utc in zip(column.times, wanted, strict=True):
            if unit != "us" or utc != want_utc:
                return False
    return True


def _delta_times(delta_type) -> list[bool]:
    """Each timestamp in a Delta type, depth first: True for ``timestamp`` (an instant), False for
    ``timestamp_ntz``."""
    kind = getattr(delta_type, "type", None)
    if kind in ("timestamp", "timestamp_ntz"):
        return [kind == "timestamp"]
    if kind == "struct":
        return [t for f in delta_type.fields for t in _delta_times(f.type)]
    if kind == "array":
        return _delta_times(delta_type.element_type)
    if kind == "map":
        return _delta_times(delta_type.key_type) + _delta_times(delta_type.value_type)
    return []


def _delta_schema(schema: "ArrowSchemaLike"):
    """A ``deltalake.Schema`` from an Arrow schema (pyarrow's, arro3's: anything with
    ``__arrow_c_schema__``), or from the schema of an Arrow stream (``__arrow_c_stream__``: a
    DuckDB relation, read through arro3, the Arrow layer delta-rs itself uses, so that the DuckDB
    path never imports pyarrow: 0.2 s and ~60 MB per process)."""
    from deltalake import Schema

    if isinstance(schema, Schema):
        return schema
    if not hasattr(schema, "__arrow_c_schema__") and hasattr(schema, "__arrow_c_stream__"):
        from arro3.core import RecordBatchReader

        schema = RecordBatchReader.from_stream(schema).schema
    return Schema.from_arrow(schema)


@contextmanager
def _storage_errors(relation: Relation, path: Path, verb: str) -> Iterator[None]:
    """Any failure of a Delta write as StorageIOError (exit 74) naming the table and its folder."""
    try:
        yield
    except StorageIOError:
        raise
    except OSError as exc:
        raise StorageIOError(f"cannot {verb} the table {relation} at {path}: {exc.strerror or exc}; free space or fix the folder's permissions, then apply again") from None
    except Exception as exc:
        text = _first_line(exc)
        if "Invalid data type" in text or "Schema error" in text:
            raise StorageIOError(f"cannot store {relation}: {text}; cast the column to a supported type in the feature group's SQL") from None
        raise StorageIOError(f"cannot {verb} the table {relation} at {path}: {text}; {_HINT}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
