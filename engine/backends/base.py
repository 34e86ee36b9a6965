"""The Backend protocol: what the stores, training and serving may ask of a compute engine.

Owns the seam, not an engine: capability flags, the ``Backend`` and ``Catalog`` protocols and the
small records that cross them. Feature-store operations travel as data (``engine.sql.ops``) and each
backend compiles them in its own dialect; tables cross as ``Relation`` (a name) or Arrow/pandas
(rows). Nothing here imports an engine library.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

from engine.sql.ops import Constant, FeatureStoreOp, KeyReport, Relation

if TYPE_CHECKING:
    from pathlib import Path

    import pandas
    import pyarrow

    from engine.model.objects import Expectation, Source

WriteMode = Literal["create", "replace", "append"]


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; a spec that needs more fails ``engine validate`` (exit 3), positioned.

    ``source_formats``: the source formats it reads. ``quarantine_rows``: CSV rows that fail to
    parse can be set aside (``on_bad_rows: quarantine``). ``python_transforms``: Python feature
    functions run inside the engine's process or executors. ``sandboxed_sql``: user SQL cannot reach
    files, network or settings. ``transactions``: several writes publish atomically. ``asof_join``:
    a native point-in-time join (else a window formulation: same result, more work).
    ``csv_null_strings``: how many ``csv.null_strings`` its CSV reader takes.
    """

    source_formats: frozenset[str]
    quarantine_rows: bool
    python_transforms: bool
    sandboxed_sql: bool
    transactions: bool
    asof_join: bool
    csv_null_strings: int = 20


@dataclass(frozen=True)
class IngestReport:
    """What reading a source produced: rows stored, and rows set aside by quarantine (F6)."""

    rows: int
    rejected: tuple[tuple, ...]  # (file, line, column, error type, csv line, message)
    appended: bool = False  # the rows were appended (only the files asked for were read)
    file_rows: tuple[tuple[str, int | None], ...] = field(default=(), compare=False)  # (absolute path, rows; None: not counted)


@dataclass(frozen=True)
class ExpectationResult:
    """The outcome of one expectation over one table."""

    expectation: "Expectation"
    failed_rows: int  # 0 means passed (row_count: 0/1)
    total_rows: int
    samples: tuple[dict, ...]  # up to 5 distinct failing values, JSON-safe

    @property
    def passed(self) -> bool:
        return self.failed_rows == 0


def stat_number(value: Any) -> int | float | None:
    """A statistic as a JSON number: bools and Decimals converted, NaN and ±inf as None, anything
    else (text, times) None. Shared by every backend's statistics."""
    import math
    from decimal import Decimal

    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal | float):
        value = float(value)
        return value if math.isfinite(value) else None
    return None


def json_safe(value: Any) -> Any:
    """A value as str/int/float/bool/None: times as ISO text, non-finite floats as 'NaN'/'Infinity'.

    >>> from decimal import Decimal
    >>> from datetime import date
    >>> [json_safe(v) for v in (1, 2.5, float("nan"), Decimal("1.5"), date(2024, 1, 2), None)]
    [1, 2.5, 'NaN', 1.5, '2024-01-02', None]
    """
    import math
    from datetime import date, datetime, time, timedelta
    from decimal import Decimal

    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, Decimal):
        return json_safe(float(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, timedelta):
        return str(value)
    return str(value)


@runtime_checkable
class Catalog(Protocol):
    """Where the workspace's metadata tables live; statements are portable SQL with ``?`` parameters.

    A SQLite file in WAL mode (``engine.backends.catalog``): one writer and many readers across
    processes. The backend records the lake's commits in the catalog's transaction, so one
    transaction covers data and metadata.
    """

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple]: ...
    def query_dicts(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]: ...
    def execute(self, sql: str, params: Sequence[object] = ()) -> int: ...
    def has_table(self, schema: str, name: str) -> bool: ...
    def transaction(self) -> AbstractContextManager[None]: ...
    def close(self) -> None: ...


@runtime_checkable
class Backend(Protocol):
    """One compute engine. ``engine.backends.load(name)`` picks the class; ``Session`` opens it."""

    name: ClassVar[str]
    dialect: ClassVar[str]  # sqlglot dialect user SQL is transpiled to
    capabilities: ClassVar[Capabilities]

    catalog: Catalog
    lake: Any  # an ``engine.backends.lake.Lake``: the persistent tables; None when the backend keeps every table itself

    # --- tables ------------------------------------------------------------------------------
    def exists(self, relation: Relation) -> bool: ...
    def columns(self, source: Relation | FeatureStoreOp) -> dict[str, str]: ...
    def count(self, source: Relation | FeatureStoreOp) -> int: ...
    def drop(self, relation: Relation) -> None: ...
    def create(self, target: Relation, source: Relation | FeatureStoreOp, *, replace: bool = False, timeout_s: float | None = None) -> int: ...
    def run_select(
        self, target: Relation, sql: str, tables: Mapping[str, Relation], *, timeout_s: float | None, order_by: Sequence[str] = ()
    ) -> int:
        """``target`` from gated user SQL whose table names map to ``tables``; returns the rows.
        ``order_by`` (the key of a feature group) is a storage hint: a backend may store a lake
        ``target``'s rows sorted by it, which changes no result."""
        ...
    def write(self, target: Relation, rows: Any, *, mode: WriteMode = "create", constants: Sequence[Constant] = ()) -> int: ...
    def append(self, target: Relation, source: Relation | FeatureStoreOp) -> int: ...
    def map_frames(self, target: Relation, source: Relation | FeatureStoreOp, fn: "Callable[[pandas.DataFrame], pandas.DataFrame]", added: Mapping[str, str]) -> int:
        """Store ``fn`` over ``source``'s rows as ``target`` (which may be ``source``): ``fn`` takes a
        pandas frame and returns it with the ``added`` columns (name -> engine type). ``fn`` is
        row-wise, so a backend may call it on any slices of the rows, in other processes (it is
        picklable); an ExecutionError it raises reaches the caller with its message. A ``fn`` with a
        ``modules()`` method names the Python modules it imports: a backend whose workers run in
        other environments ships the installed feature libraries among them with the job."""
        ...
    def append_new(self, target: Relation, rows: Any, keys: Sequence[str], *, constants: Sequence[Constant] = ()) -> int: ...
    def merge(self, target: Relation, staged: Relation, keys: Sequence[str]) -> None: ...
    def add_column(self, relation: Relation, column: str, type_: str) -> None: ...
    def cast_column(self, relation: Relation, column: str, type_: str) -> None: ...
    def fetch(self, source: Relation | FeatureStoreOp) -> "pyarrow.Table": ...
    def frame(self, source: Relation | FeatureStoreOp) -> "pandas.DataFrame": ...
    def at_version(self, relation: Relation, version: int) -> Relation: ...
    def appended(self, relation: Relation, since: int) -> Relation | None: ...
    def lake_version(self, relation: Relation) -> int | None: ...
    def time_bounds(self, source: Relation | FeatureStoreOp, column: str) -> tuple[object, object, int]: ...

    # --- data checks and statistics -----------------------------------------------------------
    def key_report(self, relation: Relation, key: Sequence[str]) -> KeyReport: ...
    def non_finite_counts(self, relation: Relation) -> dict[str, int]: ...
    def nullify_non_finite(self, relation: Relation, columns: Sequence[str]) -> None: ...
    def expectations(self, relation: Relation, expectations: Sequence["Expectation"]) -> list[ExpectationResult]: ...
    def statistics(self, relation: Relation) -> dict[str, dict[str, object]]: ...
    def quantiles(self, relation: Relation, column: str, quantiles: int) -> list[float]: ...

    # --- sources and lifecycle ----------------------------------------------------------------
    def read_source(self, source: "Source", target: Relation, *, files: Sequence[Path] | None = None, mode: WriteMode = "replace") -> IngestReport: ...
    def transaction(self) -> AbstractContextManager[None]: ...
    def lock_down(self) -> None: ...
    def interrupt(self) -> None: ...
    def close(self) -> None: ...
