"""Feature-store operations as data: what to compute, never how. Each backend compiles them.

Owns the vocabulary the stores, training and serving use to ask a backend for work: relations,
the point-in-time join, windowed aggregations, binning, latest-per-key and the spine filters of
inference. Holds no SQL text and no connection; ``engine.backends.<name>`` turns each op into its
own dialect (DuckDB's ``ASOF JOIN`` and ``RANGE`` frames, Spark's window formulation, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from typing import TYPE_CHECKING

from engine.model.objects import Aggregation, Binning
from engine.sql.quote import qualified

if TYPE_CHECKING:
    from sqlglot import exp


@dataclass(frozen=True, order=True)
class Relation:
    """A table a backend holds: ``schema.name``. Quoting happens in the backend, never in callers.

    >>> str(Relation("offline", "weather__v1"))
    '"offline"."weather__v1"'
    """

    schema: str
    name: str

    def __str__(self) -> str:
        return qualified(self.schema, self.name)

    @classmethod
    def parse(cls, text: str) -> "Relation":
        """The inverse of ``str()`` for the quoted form the workspace records.

        >>> Relation.parse('"views"."delays__v1"')
        Relation(schema='views', name='delays__v1')
        """
        parts: list[str] = []
        i = 0
        while i < len(text):
            if text[i] != '"':
                raise ValueError(f"not a quoted relation: {text!r}")
            j, name = i + 1, []
            while True:
                if j >= len(text):
                    raise ValueError(f"unterminated identifier in {text!r}")
                if text[j] == '"':
                    if text[j + 1 : j + 2] == '"':
                        name.append('"')
                        j += 2
                        continue
                    break
                name.append(text[j])
                j += 1
            parts.append("".join(name))
            i = j + 1
            if i < len(text):
                if text[i] != ".":
                    raise ValueError(f"not a quoted relation: {text!r}")
                i += 1
        if len(parts) != 2:
            raise ValueError(f"expected schema.name, got {text!r}")
        return cls(parts[0], parts[1])


# --- spine filters: which spine rows an operation keeps -------------------------------------------


@dataclass(frozen=True)
class UserFilter:
    """A feature view's ``filter``: one boolean expression, gated and parsed (``gate_filter``);
    each backend generates it in its own dialect, so it is never pasted into SQL as text."""

    condition: "exp.Expression"


#: Open ends of a TimeRange: before and after every time a column holds.
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)


@dataclass(frozen=True)
class TimeRange:
    """``start <= column < end`` over aware UTC timestamps (batch ranges)."""

    column: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class NotIn:
    """Rows whose ``keys`` have no row in ``relation`` yet (streaming's exactly-once anti-join)."""

    relation: Relation
    keys: tuple[str, ...]


SpineFilter = UserFilter | TimeRange | NotIn


# --- operations -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scan:
    """The rows of ``source`` that every filter keeps, optionally ordered."""

    source: Relation
    filters: tuple[SpineFilter, ...] = ()
    order_by: tuple[str, ...] = ()
    columns: tuple[str, ...] | None = None  # None: every column


@dataclass(frozen=True)
class JoinSpec:
    """One feature group joined to the spine.

    ``left_on`` names spine columns and ``right_on`` the feature group's, pairwise. ``event_time``
    is the feature group's event time column, or None for a group joined on keys alone.
    ``columns`` lists (feature-group column, output column) pairs to bring in. ``ttl_seconds``
    turns a matched row older than the spine time minus the ttl into NULLs. ``exclusive``: only
    rows strictly before the spine time match (``as_of: exclusive``), not rows at it.
    """

    relation: Relation
    left_on: tuple[str, ...]
    right_on: tuple[str, ...]
    event_time: str | None
    columns: tuple[tuple[str, str], ...]
    ttl_seconds: int | None = None
    exclusive: bool = False


@dataclass(frozen=True)
class PointInTimeJoin:
    """Each spine row joined with, per feature group, the row with equal keys and the largest event
    time at or before the spine's (DESIGN §3). One output row per spine row, in spine order."""

    spine: Relation
    spine_event_time: str | None
    spine_columns: tuple[str, ...]
    joins: tuple[JoinSpec, ...]
    filters: tuple[SpineFilter, ...] = ()
    #: The spine is small next to the groups (new spine rows only): read of each group just the
    #: rows whose keys occur in the spine. Same result; a semi-join instead of sorting every row.
    prune: bool = False
    #: False: the rows in any order (written to storage that keeps no order): no row number and
    #: no final sort.
    ordered: bool = True


@dataclass(frozen=True)
class WindowAggregation:
    """Per primary key and event time t, each aggregation over the rows in (t - window, t]."""

    source: Relation
    primary_key: tuple[str, ...]
    event_time: str
    aggregations: tuple[Aggregation, ...]


@dataclass(frozen=True)
class Bin:
    """Every input column kept, plus one bin column per (binning, resolved edges)."""

    source: Relation
    columns: tuple[str, ...]
    bins: tuple[tuple[Binning, tuple[float, ...]], ...]


@dataclass(frozen=True)
class LatestPerKey:
    """The latest row per primary key (largest event time; ties: the last written)."""

    source: Relation
    primary_key: tuple[str, ...]
    event_time: str | None


@dataclass(frozen=True)
class DedupeLatest:
    """One row per (key, event time): the one with the largest ``order_by`` value (NULL lowest),
    ties and ``order_by=None`` broken by the one written last."""

    source: Relation
    key: tuple[str, ...]
    order_by: str | None = None


FeatureStoreOp = Scan | PointInTimeJoin | WindowAggregation | Bin | LatestPerKey | DedupeLatest


@dataclass(frozen=True)
class Constant:
    """A column every written row gets, with one value and a declared engine type."""

    name: str
    value: object
    type: str


@dataclass(frozen=True)
class KeyReport:
    """F1/F2 over a key (primary key, event time): rows with a NULL, rows sharing a key, samples."""

    null_rows: int
    duplicate_rows: int
    samples: tuple[dict, ...] = field(default_factory=tuple)


def key_columns(primary_key: Sequence[str], event_time: str | None) -> tuple[str, ...]:
    """(primary key..., event time): what identifies a row of the offline store.

    >>> key_columns(["origin"], "time_hour")
    ('origin', 'time_hour')
    """
    return (*primary_key, *((event_time,) if event_time else ()))
