"""Where batch and streaming predictions go: the ``predictions`` tables and the optional file.

Owns the predictions-table layout (stamp columns; the backend writes them: replace for batch,
exactly-once append for stream) and the atomic file writer (temp file in the same directory,
fsync, ``os.replace``). Must not score, resolve models or build feature-view SQL.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from engine.state.atomic import fsync_directory
from engine.errors import SpecError, StorageIOError
from engine.model import objects as m
from engine.spec.resources import OUTPUT_SUFFIXES, ProjectReads, check_output_path
from engine.sql.ops import Constant, Relation

PREDICTIONS_SCHEMA = "predictions"
FILE_FORMATS = OUTPUT_SUFFIXES  # what PendingFile.write can write
STAMP_COLUMNS = ("model", "model_version", "feature_view", "feature_view_version", "scored_at", "run_id")
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


def predictions_table(job: m.InferenceJob) -> Relation:
    """The workspace relation of a job's predictions: ``predictions.<table or job>``."""
    return Relation(PREDICTIONS_SCHEMA, job.output_table or job.name)


def stamp_columns(stamp: Stamp) -> tuple[Constant, ...]:
    """The stamp as typed constant columns, in :data:`STAMP_COLUMNS` order."""
    return (
        Constant("model", stamp.model, "VARCHAR"),
        Constant("model_version", stamp.model_version, "INTEGER"),
        Constant("feature_view", stamp.feature_view, "VARCHAR"),
        Constant("feature_view_version", stamp.feature_view_version, "INTEGER"),
        Constant("scored_at", stamp.scored_at, "TIMESTAMPTZ"),
        Constant("run_id", stamp.run_id, "VARCHAR"),
    )


def run_timestamp(catalog, run_id: str) -> datetime:
    """The run's start time (``_engine.runs``), else the time in the run id, else now (UTC)."""
    from engine.state import metadata

    value = metadata.run_started_at(catalog, run_id)
    if value is not None:
        return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    try:
        return datetime.strptime(run_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return datetime.now(timezone.utc)


# --- files -----------------------------------------------------------------------------------------


def output_file(project_root: Path, text: str, *, reads: ProjectReads | None = None) -> Path:
    """Resolve a job's ``output.path`` inside the project; its format by suffix. The rule is
    ``engine validate``'s (``engine.spec.resources.check_output_path``), applied again here, before
    anything is written, because links and files may have changed since (P1-P3). Given what the
    project ``reads`` (``engine.compiler.semantics.project_reads``), an output over a source's files
    (or one its glob could match), a spec, SQL or Python file is refused too (I4)."""
    checked = check_output_path(project_root, text, reads)
    if checked.file is None:
        raise SpecError(f"{checked.problem} ({checked.hint})" if checked.hint else str(checked.problem))
    return checked.file


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
