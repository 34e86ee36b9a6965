"""Incremental feature groups: compute only what new input rows change, and build the group's new
offline rows from its previous ones (DESIGN §3: an incremental group must equal a full recompute).

* ``append`` (row-local SQL): the SQL runs over the new input rows only; the result is merged into
  the previous rows by primary key and event time (the last write wins).
* ``by_time`` (SQL with a lookback; built-in windowed aggregations, lookback = the largest
  window): with T the earliest event time among the new input rows, output rows at T or later are
  recomputed from the input rows at T - lookback or later, and replace the previous rows at T or
  later; earlier rows are kept.

New input rows are the files the input's lake commits appended since the version this step last
consumed (recorded in the catalog with the step). Anything else (an input overwritten, several
inputs changed, no previous version, no record) is a full rebuild. Owns the decision and the
order of operations; the backend does the work (no SQL here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from engine.errors import DataError
from engine.model import objects as m
from engine.sql.ops import EARLIEST, LATEST, NotIn, Relation, Scan, TimeRange, key_columns  # noqa: F401 (EARLIEST, LATEST: re-exported)
from engine.state import metadata
from engine.state.metadata import ConsumedInput


@dataclass
class Increment:
    """How one incremental build reads its inputs and combines the result with the stored rows."""

    relation_of: Callable[[str], Relation]  # input name -> the relation the computation reads
    kept: Scan  # the previous offline rows that stay
    since: datetime | None  # by_time: keep only computed rows at or after this event time
    watermark: datetime | None  # the latest input event time processed after this build
    scratch: tuple[Relation, ...] = ()  # staging tables to drop when the build ends


def as_utc(value: object) -> datetime | None:
    """A time bound from the backend as an aware UTC datetime (a DATE as its midnight)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if hasattr(value, "to_pydatetime"):
        return as_utc(value.to_pydatetime())
    return None


def time_column(fg: m.FeatureGroup) -> str | None:
    mode = fg.incremental_mode
    if mode is None or mode.kind is not m.IncrementalKind.BY_TIME:
        return None
    return mode.time_column or fg.event_time


def watermark(backend, fg: m.FeatureGroup, inputs: dict[str, Relation]) -> datetime | None:
    """The latest input event time of a by_time group's (single) input, after a full build."""
    column = time_column(fg)
    if column is None or len(inputs) != 1:
        return None
    return as_utc(backend.time_bounds(next(iter(inputs.values())), column)[1])


def consumed_now(backend, inputs: dict[str, Relation], mark: datetime | None) -> dict[str, ConsumedInput]:
    """What this build read of each input (its committed lake version), to record with the step."""
    out = {}
    for name, relation in inputs.items():
        version = backend.lake_version(relation)
        if version is not None:
            out[name] = ConsumedInput(str(relation), version, mark)
    return out


def check_replaced_sources(backend, project: m.Project, fg: m.FeatureGroup, step_key: str, inputs: dict[str, Relation]) -> None:
    """An ``append`` group never silently rebuilds history after a consumed source file changed or
    disappeared: DataError (exit 4) naming the files, unless a full refresh was asked for."""
    mode = fg.incremental_mode
    if mode is None or mode.kind is not m.IncrementalKind.APPEND:
        return
    consumed = metadata.consumed_inputs(backend.catalog, step_key)
    for name in inputs:
        if name not in project.sources or name not in consumed:
            continue
        files = metadata.source_changes_since(backend.catalog, name, consumed[name].version)
        if files:
            raise DataError(
                f"{fg.id}: source '{name}' file(s) {', '.join(files)} changed or disappeared after this append-only feature group "
                f"consumed them; its stored rows may no longer match the source. Run `engine apply --full-refresh -s {fg.name}` "
                "to rebuild it from the source as it is now (nothing was published for it)"
            )


def prepare(backend, project: m.Project, fg: m.FeatureGroup, step_key: str, inputs: dict[str, Relation], offline: Relation) -> Increment | None:
    """How to build ``fg`` from only its new input rows, or None for a full rebuild."""
    mode = fg.incremental_mode
    if mode is None or backend.lake_version(offline) is None:
        return None
    consumed = metadata.consumed_inputs(backend.catalog, step_key)
    if set(consumed) != set(inputs) or any(consumed[n].relation != str(r) for n, r in inputs.items()):
        return None
    changed = [n for n, r in inputs.items() if backend.lake_version(r) != consumed[n].version]
    if len(changed) != 1:
        return None  # nothing new (an empty append) or several inputs at once: rebuild
    name = changed[0]
    relation = inputs[name]
    new = backend.appended(relation, consumed[name].version)
    if new is None:
        return None  # the input was overwritten (not only appended to) since
    if mode.kind is m.IncrementalKind.APPEND:
        return Increment(_binding(inputs, {name: new}), Scan(offline), None, None)
    column = mode.time_column or fg.event_time
    low, high, nulls = backend.time_bounds(new, column)
    if nulls:
        return None  # rows without a time: a full rebuild treats them as the SQL says (no range holds them)
    lowest, highest = as_utc(low), as_utc(high)
    previous = consumed[name].watermark
    lookback = timedelta(seconds=mode.lookback_seconds)
    if lowest is None:  # no new row: the stored rows stand
        return Increment(_binding(inputs, {name: new}), Scan(offline), LATEST, previous)
    if previous is not None and lowest < previous - lookback and fg.late_policy is m.OnLate.FAIL:
        raise _late(backend, project, fg, name, new, column, lowest, previous, lookback, consumed[name].version)
    window = Relation("staging", f"_window__{fg.name}")
    backend.drop(window)
    backend.create(window, Scan(relation, filters=(TimeRange(column, lowest - lookback, LATEST),)))
    kept = Scan(offline, filters=(TimeRange(fg.event_time, EARLIEST, lowest),))
    mark = max(highest, previous) if previous is not None else highest
    return Increment(_binding(inputs, {name: window}), kept, lowest, mark, (window,))


def appendable(backend, fg: m.FeatureGroup, increment: Increment, staging: Relation, offline: Relation) -> Relation | None:
    """The computed rows when publishing them only adds rows to the stored table, or None (then
    ``combine`` merges them). That holds when every stored row stays (``append``; ``by_time`` when
    no stored row is at or after ``since``), the new rows have the stored columns and types, and
    none of them has a stored row's primary key and event time (which it would replace): known
    without a scan when they all come after the stored rows' latest event time, else checked by
    an anti-join of the new keys against the stored ones. Publishing an append rewrites nothing
    and lets the groups and views downstream read only these rows in turn."""
    keys = key_columns(fg.primary_key, fg.event_time)
    stored_high = _stored_high(backend, fg, offline) if fg.event_time else None
    computed = staging
    if increment.since is not None:
        if stored_high is not None and stored_high >= increment.since:
            return None  # stored rows at or after ``since`` are replaced
        computed = Relation("staging", f"_range__{fg.name}")
        backend.drop(computed)
        backend.create(computed, Scan(staging, filters=(TimeRange(fg.event_time, increment.since, LATEST),)))
        increment.scratch = (*increment.scratch, computed)
    if list(backend.columns(computed).items()) != list(backend.columns(offline).items()):
        return None
    rows = backend.count(computed)
    if rows == 0:
        return computed
    if fg.event_time and stored_high is not None:
        low, _, nulls = backend.time_bounds(computed, fg.event_time)
        if not nulls and as_utc(low) is not None and as_utc(low) > stored_high:
            return computed  # every new row is later than every stored one
    if backend.count(Scan(computed, filters=(NotIn(offline, keys),))) != rows:
        return None  # some replace stored rows (the last write wins): merged instead
    return computed


def _stored_high(backend, fg: m.FeatureGroup, offline: Relation) -> datetime | None:
    """The latest event time of the stored rows: the published version's statistics record it
    exactly (a maximum merges exactly, ``engine.store.statistics``), so no scan of the table;
    scanned when they do not."""
    version = metadata.feature_group_version(backend.catalog, fg.name, fg.version)
    column = ((version.stats or {}).get(fg.event_time) or {}) if version is not None else {}
    if version is not None and version.offline_table == str(offline) and "max" in column:
        if column["max"] is None:
            return None if not version.row_count or column.get("count") == 0 else _scanned_high(backend, fg, offline)
        try:
            return as_utc(datetime.fromisoformat(column["max"]))
        except (TypeError, ValueError):
            pass
    return _scanned_high(backend, fg, offline)


def _scanned_high(backend, fg: m.FeatureGroup, offline: Relation) -> datetime | None:
    return as_utc(backend.time_bounds(offline, fg.event_time)[1])


def combine(backend, fg: m.FeatureGroup, increment: Increment, staging: Relation) -> tuple[Relation, int]:
    """The group's new rows: the kept previous rows merged with the computed ones (by_time: those
    at or after ``since``) by primary key and event time, the last write winning; returns that
    staging relation and how many rows were computed into it."""
    computed = staging
    if increment.since is not None:
        computed = Relation("staging", f"_range__{fg.name}")
        backend.drop(computed)
        backend.create(computed, Scan(staging, filters=(TimeRange(fg.event_time, increment.since, LATEST),)))
    written = backend.count(computed)
    merged = Relation("staging", f"_merged__{fg.name}")
    backend.drop(merged)
    backend.create(merged, increment.kept)
    backend.merge(merged, computed, key_columns(fg.primary_key, fg.event_time))
    if computed != staging:
        backend.drop(computed)
    return merged, written


def view_spine(backend, project: m.Project, fv: m.FeatureView, step_key: str, inputs: dict[str, Relation], view: Relation) -> Relation | None:
    """The new spine rows, when joining just them and appending the result brings the view to
    what a rebuild would give; None for a rebuild.

    That holds when every input (the spine and each joined group) only got rows appended since the
    view last consumed it, and every new feature row is later than the latest spine row already in
    the view: a point-in-time join matches a spine row at time t only with feature rows at or
    before t, so those rows are unchanged, and the new spine rows are joined against every feature
    row. A group joined without an event time, or a feature row at or before a stored spine row
    (late data), means a rebuild."""
    if backend.lake_version(view) is None:
        return None
    consumed = metadata.consumed_inputs(backend.catalog, step_key)
    if set(consumed) != set(inputs) or any(consumed[n].relation != str(r) for n, r in inputs.items()):
        return None
    spine_time = project.feature_groups[fv.spine].event_time
    new_spine = backend.appended(inputs[fv.spine], consumed[fv.spine].version)
    if new_spine is None:
        return None
    latest = as_utc(backend.time_bounds(view, spine_time)[1]) if spine_time else None
    joined = {j.feature_group for j in fv.joins}
    for name, relation in inputs.items():
        if name not in joined or backend.lake_version(relation) == consumed[name].version:
            continue
        new = new_spine if name == fv.spine else backend.appended(relation, consumed[name].version)
        if new is None:
            return None
        event_time = project.feature_groups[name].event_time
        if event_time is None or spine_time is None:
            if backend.count(new):
                return None
            continue
        low, _, nulls = backend.time_bounds(new, event_time)
        if nulls or (latest is not None and low is not None and as_utc(low) <= latest):
            return None
    return new_spine


def _binding(inputs: dict[str, Relation], overrides: dict[str, Relation]) -> Callable[[str], Relation]:
    table = {**inputs, **overrides}
    return lambda name: table[name]


def _late(backend, project, fg, name, new, column, lowest, previous, lookback, since) -> DataError:
    """The late-row error: which row, from which file, and the two ways out."""
    rows = backend.fetch(Scan(new, filters=(TimeRange(column, EARLIEST, previous - lookback),), order_by=(column,)))
    first = rows.slice(0, 1).to_pylist()[0] if rows.num_rows else {}
    shown = ", ".join(f"{k}={first[k]}" for k in dict.fromkeys([*key_columns(fg.primary_key, None), column]) if k in first)
    where = f"input '{name}'"
    if name in project.sources:
        files = [f for f, rec in metadata.source_files(backend.catalog, name).get(name, {}).items() if rec.lake_version > since]
        if files:
            where = f"source '{name}' file {files[0]}" if len(files) == 1 else f"source '{name}' (one of the new files {', '.join(sorted(files))})"
    return DataError(
        f"{fg.id}: a late row in {where}: {shown} is older than the latest event time already processed ({previous.isoformat()}) "
        f"minus the lookback ({fg.incremental_mode.lookback}); {rows.num_rows} such row(s). Set on_late: rebuild on the feature group "
        f"to recompute from that time on, or run `engine apply --full-refresh -s {fg.name}` (nothing was published for it)"
    )
