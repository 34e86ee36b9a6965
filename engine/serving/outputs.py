"""Where batch and streaming predictions go: the ``predictions`` tables and the optional file.

Owns the predictions-table layout (stamp columns), the atomic table writes (replace for batch,
exactly-once append for stream) and the atomic file writer (temp file in the same directory,
fsync, ``os.replace``). Must not score, resolve models or build feature-view SQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from engine.state.atomic import fsync_directory
from engine.errors import SpecError, StorageIOError
from engine.model import objects as m
from engine.sql.quote import qualified, quote_ident

if TYPE_CHECKING:
    import pandas

PREDICTIONS_SCHEMA = "predictions"
FILE_FORMATS = (".parquet", ".csv", ".jsonl")
STAMP_COLUMNS = ("model", "model_version", "feature_view", "feature_view_version", "scored_at", "run_id")
_FRAME = "_engine_predictions"  # name the rows are registered under while they are written
TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class Stamp:
    """What every prediction row says about how it was made."""

    model: str
    model_version: int
    feature_view: str
    feature_view_version: int
    scored_at: datetime  # the run's timestamp, aware UTC
    run_id: str


def predictions_table(job: m.InferenceJob) -> str:
    """The quoted workspace relation of a job's predictions: ``"predictions"."<table or job>"``."""
    return qualified(PREDICTIONS_SCHEMA, job.output_table or job.name)


def ensure_schema(con) -> None:
    """The ``predictions`` schema and ``_engine.stream_watermarks`` (idempotent; DDL in metadata)."""
    from engine.state import metadata

    metadata.ensure_schema(con)


def table_exists(con, relation_schema: str, table: str) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?", [relation_schema, table]
    ).fetchall()
    return bool(rows[0][0])


def run_timestamp(con, run_id: str) -> datetime:
    """The run's start time (``_engine.runs``), else the time in the run id, else now (UTC)."""
    try:
        row = con.execute("SELECT started_at FROM _engine.runs WHERE run_id = ?", [run_id]).fetchall()
    except Exception:  # no metadata yet (a library call outside an apply)
        row = []
    if row and row[0][0] is not None:
        value = row[0][0]
        return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    try:
        return datetime.strptime(run_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return datetime.now(timezone.utc)


@contextmanager
def transaction(con) -> Iterator[None]:
    """BEGIN ... COMMIT, or ROLLBACK on any exception (which propagates)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


@contextmanager
def registered(con, frame: "pandas.DataFrame") -> Iterator[str]:
    """``frame`` visible to SQL as a view for the duration of the block."""
    con.register(_FRAME, frame)
    try:
        yield _FRAME
    finally:
        con.unregister(_FRAME)


def _stamped_select(source: str, columns: Sequence[str]) -> str:
    cols = ", ".join(quote_ident(c) for c in columns)
    return (
        f"SELECT {cols}, ?::VARCHAR AS model, ?::INTEGER AS model_version, ?::VARCHAR AS feature_view, "
        f"?::INTEGER AS feature_view_version, ?::TIMESTAMPTZ AS scored_at, ?::VARCHAR AS run_id FROM {source}"
    )


def _stamp_params(stamp: Stamp) -> list:
    return [stamp.model, stamp.model_version, stamp.feature_view, stamp.feature_view_version, stamp.scored_at, stamp.run_id]


def replace_table(con, relation: str, frame: "pandas.DataFrame", stamp: Stamp) -> int:
    """Replace ``relation`` with ``frame`` + the stamp columns; the caller holds the transaction."""
    with registered(con, frame) as name:
        con.execute(f"CREATE OR REPLACE TABLE {relation} AS {_stamped_select(quote_ident(name), list(frame.columns))}", _stamp_params(stamp))
    return con.execute(f"SELECT count(*) FROM {relation}").fetchall()[0][0]


def append_new(con, relation: str, frame: "pandas.DataFrame", stamp: Stamp, keys: Sequence[str]) -> int:
    """Append the rows of ``frame`` whose ``keys`` are not in ``relation`` yet; return how many.

    Creates the table on first use. The anti-join here (inside the caller's transaction) is what
    makes the append exactly-once by key, whatever the caller selected beforehand.
    """
    if not keys:
        raise SpecError("a streaming job needs a spine with a primary key")
    with registered(con, frame) as name:
        select = _stamped_select(quote_ident(name), list(frame.columns))
        con.execute(f"CREATE TABLE IF NOT EXISTS {relation} AS {select} LIMIT 0", _stamp_params(stamp))
        new, old = quote_ident("_new"), quote_ident("_old")
        match = " AND ".join(f"{old}.{quote_ident(k)} = {new}.{quote_ident(k)}" for k in keys)
        rows = con.execute(
            f"INSERT INTO {relation} BY NAME SELECT * FROM ({select}) AS {new} "
            f"WHERE NOT EXISTS (SELECT 1 FROM {relation} AS {old} WHERE {match})",
            _stamp_params(stamp),
        ).fetchall()
    return int(rows[0][0]) if rows else 0


# --- files -----------------------------------------------------------------------------------------


def output_file(project_root: Path, text: str) -> Path:
    """Resolve a job's ``output.path`` inside the project (re-checked here, P1-P3); its format by suffix."""
    if text.startswith("~") or os.path.isabs(text) or "\x00" in text or "://" in text:
        raise SpecError(f"output path '{text[:60]}' escapes the project; use a path relative to the project root")
    root = Path(project_root).resolve()
    lexical = Path(os.path.normpath(root / text))
    if root not in lexical.parents:
        raise SpecError(f"output path '{text[:60]}' escapes the project; use a path relative to the project root")
    resolved = lexical.parent.resolve() / lexical.name
    if root not in resolved.parents or (resolved.is_symlink() and root not in resolved.resolve().parents):
        raise SpecError(f"output path '{text[:60]}' is a link outside the project")
    if resolved.suffix.lower() not in FILE_FORMATS:
        raise SpecError(f"output path '{text[:60]}': unsupported file type (use {', '.join(FILE_FORMATS)})")
    return resolved


class PendingFile:
    """A file written under a temp name beside ``final``; ``publish`` renames it into place.

    Nothing ever appears under the final name unless the whole file was written and fsynced.
    """

    def __init__(self, final: Path):
        self.final = final
        self.tmp = final.parent / f"{TMP_PREFIX}{final.name}.{uuid.uuid4().hex[:8]}"

    def write(self, table) -> None:
        """Write a ``pyarrow.Table`` in the format of the final name's suffix, fsynced."""
        try:
            self.final.parent.mkdir(parents=True, exist_ok=True)
            suffix = self.final.suffix.lower()
            if suffix == ".parquet":
                import pyarrow.parquet as pq

                pq.write_table(table, self.tmp)
            elif suffix == ".csv":
                import pyarrow.csv as pcsv

                pcsv.write_csv(table, self.tmp)
            else:
                table.to_pandas().to_json(self.tmp, orient="records", lines=True, date_format="iso", date_unit="us")
            with open(self.tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        except OSError as exc:
            self.discard()
            raise StorageIOError(f"writing predictions to '{self.final.name}' failed: {exc}") from exc
        except BaseException:
            self.discard()
            raise

    def publish(self) -> None:
        try:
            os.replace(self.tmp, self.final)
            fsync_directory(self.final.parent)
        except OSError as exc:
            self.discard()
            raise StorageIOError(f"publishing predictions file '{self.final.name}' failed: {exc}") from exc

    def discard(self) -> None:
        try:
            self.tmp.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            pass


def table_arrow(con, relation: str):
    """The rows of ``relation`` (as this connection sees them, uncommitted writes included) as Arrow."""
    con.complete()  # a result left open by an earlier execute() would block con.sql
    return con.sql(f"SELECT * FROM {relation}").to_arrow_table()
