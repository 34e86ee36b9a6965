"""Online feature vectors: one feature-view row built from request values, the online store and
the on-demand functions, equal to the offline view row at a time later than every feature row.
Owns the online column layout and request-value typing; must not touch HTTP, storage or training.

Semantics (the online side of DESIGN §3; the skew test in tests/serving/test_vectors.py pins them):

* **Spine values** (the view's spine features, join keys, on-demand inputs that are spine
  columns, helpers) come from the request.
* **Joined values**: for each join, the key tuple is the request's ``left_on`` values; the
  feature group's latest row for that key (the online table) gives the selected columns with the
  join's prefix — the same selection rule as ``engine.store.views.plan_joins``. An
  unknown key, or a key with a NULL part, gives NULLs and names the group in ``missing``; never a
  row of another key (H4).
* **as_of: exclusive** joins, when the request gives the spine's event time t, use the latest row
  only if it is strictly before t. A latest row at or after t (the request's own event already
  ingested) gives NULLs and names the group in ``missing``: the online store keeps only the
  latest row, so the one before it is not there to give. Scoring an event before it is ingested
  — the usual online order — matches the offline row exactly.
* **ttl** is applied only when the request gives the spine's event-time column: a row older than
  ``t - ttl`` then gives NULLs (as offline) and the group is listed in ``expired``. Without the
  event time the latest row is used as is (the online store holds only the latest row, so a
  request time earlier than that row's time still gets it: online serves "now").
* The view's ``filter`` is not applied online (there is no spine row to filter).
* **On-demand features**: the functions declared under ``functions`` (same objects as offline,
  via ``import_function``) called with scalars, the result cast to the declared ``returns`` type.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from operator import itemgetter
from typing import Any

from engine.errors import ExecutionError, SpecError
from engine.model import objects as m
from engine.store.views import ViewLayout, join_columns


class OnDemandError(ValueError):
    """An on-demand function raised or returned a value of the wrong type for one request row."""


# --- request typing --------------------------------------------------------------------------------

_INT_TYPES = frozenset({"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"})
_FLOAT_TYPES = frozenset({"FLOAT", "DOUBLE", "REAL"})


def input_kind(duckdb_type: str) -> str:
    """The JSON kind a request value of this column type must have.

    >>> [input_kind(t) for t in ("BIGINT", "DECIMAL(10,2)", "VARCHAR", "BOOLEAN", "TIMESTAMP WITH TIME ZONE")]
    ['int', 'float', 'str', 'bool', 'timestamp']
    """
    t = duckdb_type.upper()
    if t in _INT_TYPES:
        return "int"
    if t in _FLOAT_TYPES or t.startswith("DECIMAL") or t.startswith("NUMERIC"):
        return "float"
    if t == "BOOLEAN":
        return "bool"
    if t.startswith("TIMESTAMP") or t == "DATE":
        return "timestamp"
    if t == "VARCHAR" or t.startswith("VARCHAR"):
        return "str"
    return "any"


@dataclass(frozen=True)
class InputField:
    """One accepted request field: its kind (int, float, str, bool, timestamp, any)."""

    name: str
    kind: str
    required: bool
    key: bool = False  # entity keys may not be null


# Request integers must fit DuckDB's widest integer types (HUGEINT / UHUGEINT): no column holds a
# value outside, and a wider one would overflow later (float conversion, numpy) with a 500.
_INT_MIN, _INT_MAX = -(2**127), 2**128 - 1
# Timestamps must fit pandas' nanosecond range (what online vectors compute with, ``Timestamp.value``).
TIMESTAMP_RANGE = "1677-09-21T00:12:44Z..2262-04-11T23:47:16Z"

_KIND_WORD = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false", "timestamp": "an ISO 8601 timestamp string", "any": "a scalar"}
_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})


class TimestampRangeError(ValueError):
    """A valid ISO 8601 timestamp outside :data:`TIMESTAMP_RANGE`."""


def parse_timestamp(text: str):
    """An ISO 8601 string as a UTC nanosecond ``pandas.Timestamp`` (naive strings are UTC);
    ValueError if not one, :class:`TimestampRangeError` if outside :data:`TIMESTAMP_RANGE`
    (year 1 or 9999 parse, but would overflow later with a 500)."""
    import pandas as pd

    value = datetime.fromisoformat(text.strip().replace("z", "Z"))
    try:
        value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
        return pd.Timestamp(value).as_unit("ns")
    except (OverflowError, pd.errors.OutOfBoundsDatetime):
        raise TimestampRangeError(f"outside the supported range {TIMESTAMP_RANGE}") from None


def _shown(value: str, limit: int = 60) -> str:
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}... ({len(value)} characters)"


def coerce_value(f: InputField, value: object, *, from_text: bool = False) -> object:
    """The typed value of one request field, or ValueError with what was expected.

    ``from_text`` (CSV input) parses strings into the field's kind; an empty string is NULL.
    """
    if from_text and isinstance(value, str) and f.kind != "str":
        text = value.strip()
        if text == "":
            value = None
        elif f.kind == "int":
            value = int(text) if re.fullmatch(r"[+-]?\d+", text) else value
        elif f.kind == "float":
            try:
                number = float(text)
            except ValueError:
                number = None
            value = number if number is not None and math.isfinite(number) else value
        elif f.kind == "bool" and text.lower() in _TRUE | _FALSE:
            value = text.lower() in _TRUE
    if value is None:
        if f.key:
            raise ValueError("must not be null (an entity key)")
        return None
    kind = type(value)
    if f.kind == "int" and kind is int:
        if not _INT_MIN <= value <= _INT_MAX:  # type: ignore[operator]
            raise ValueError("must be an integer between -2**127 and 2**128-1")
        return value
    if f.kind == "float" and kind in (int, float):
        try:
            number = float(value)  # type: ignore[arg-type]
        except OverflowError:  # an int beyond 1.8e308
            number = math.inf
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
        return number
    if f.kind == "str" and kind is str:
        return value
    if f.kind == "bool" and kind is bool:
        return value
    if f.kind == "timestamp" and kind is str:
        try:
            return parse_timestamp(value)  # type: ignore[arg-type]
        except TimestampRangeError:
            raise ValueError(f"must be {_KIND_WORD['timestamp']} within {TIMESTAMP_RANGE}, got {_shown(value)}") from None  # type: ignore[arg-type]
        except ValueError:
            raise ValueError(f"must be {_KIND_WORD['timestamp']}, got {_shown(value)}") from None  # type: ignore[arg-type]
    if f.kind == "any" and kind in (int, float, str, bool):
        if kind is int and not _INT_MIN <= value <= _INT_MAX:  # type: ignore[operator]
            raise ValueError("must be an integer between -2**127 and 2**128-1")
        return value
    shown = "null" if value is None else type(value).__name__.replace("dict", "object").replace("list", "array")
    raise ValueError(f"must be {_KIND_WORD[f.kind]}, got {shown}")


def coerce_row(row: object, fields: Mapping[str, InputField], path: str, *, from_text: bool = False) -> tuple[dict, list[dict]]:
    """Check one request row against ``fields``: (typed values, errors with JSON paths)."""
    if not isinstance(row, dict):
        return {}, [{"path": path, "message": "must be an object of field values"}]
    errors: list[dict] = []
    out: dict[str, object] = {}
    for name, value in row.items():
        f = fields.get(name)
        if f is None:
            from engine.errors import did_you_mean

            hint = did_you_mean(str(name), list(fields))
            errors.append({"path": f"{path}.{name}", "message": f"unknown field{f' ({hint})' if hint else ''}; expected: {', '.join(fields)}"})
            continue
        try:
            out[name] = coerce_value(f, value, from_text=from_text)
        except ValueError as exc:
            errors.append({"path": f"{path}.{name}", "message": str(exc)})
    for name, f in fields.items():
        if f.required and name not in row:
            errors.append({"path": f"{path}.{name}", "message": f"missing required field ({_KIND_WORD[f.kind]})"})
    return out, errors


# --- layout ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _JoinPlan:
    group: str
    left_on: tuple[str, ...]
    rows: dict
    times: dict
    outs: tuple[str, ...]
    getter: Any  # row tuple -> tuple of selected values
    ttl_us: int | None
    exclusive: bool = False  # as_of: exclusive — the row must be strictly before the request time


@dataclass(frozen=True)
class _OnDemand:
    name: str
    fn: Any
    inputs: tuple[str, ...]
    returns: str


@dataclass(slots=True)
class VectorResult:
    """``values``: every feature of the view in ``ViewLayout.features`` order; ``helpers``: helper
    values the request gave; ``missing``/``expired``: groups with no row for the key / a row
    older than the ttl."""

    values: dict[str, object]
    missing: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    helpers: dict[str, object] = field(default_factory=dict)


def _cast(fn: _OnDemand, value: object) -> object:
    if value is None:
        return None
    kind = type(value).__name__
    if kind in ("NAType", "NaTType"):
        return None
    try:
        if fn.returns == "int64":
            if isinstance(value, float):
                if math.isnan(value):
                    return None
                if not value.is_integer():
                    raise ValueError(f"{value!r} is not an integer")
            return int(value)  # type: ignore[arg-type]
        if fn.returns == "float64":
            return float(value)  # type: ignore[arg-type]
        if fn.returns == "bool":
            return bool(value)
        if fn.returns == "string":
            return str(value)
        import pandas as pd

        stamp = pd.Timestamp(value)
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    except (TypeError, ValueError) as exc:
        raise OnDemandError(f"function '{fn.name}' returned {value!r}, which is not {fn.returns}: {exc}") from None


def _getter(idx: list[int]):
    """row tuple -> tuple of the values at ``idx`` (itemgetter returns a bare value for one index)."""
    if len(idx) > 1:
        return itemgetter(*idx)
    if idx:
        i = idx[0]
        return lambda row: (row[i],)
    return lambda row: ()


def _at(version: int | None) -> str:
    return f"@{version}" if version is not None else ""


class FeatureVectorService:
    """Builds online vectors of one feature view from an :class:`~engine.store.online.OnlineSnapshot`."""

    def __init__(self, project: m.Project, feature_view: m.FeatureView, store, *, joined: Mapping[str, int] | None = None, functions: Mapping[str, m.Function] | None = None) -> None:
        """The vectors of ``feature_view`` as the spec declares it, or, with ``joined`` (group ->
        version) and ``functions``, an older version of it a model version was trained on, read
        back from its recorded definition (the group versions it read are kept in the snapshot)."""
        from engine.transforms.on_demand import import_function

        self.project, self.feature_view, self.store = project, feature_view, store
        fv = feature_view
        versions = dict(joined or {})
        functions = project.functions if functions is None else functions
        spine_entry = store.feature_group(fv.spine, versions.get(fv.spine))
        if spine_entry is None:
            raise SpecError(f"{fv.id}: its spine feature_group:{fv.spine}{_at(versions.get(fv.spine))} is not in the online snapshot {store.snapshot_id}")
        spine_types: dict[str, str] = dict(spine_entry["columns"])
        taken = set(spine_types)
        joins: list[_JoinPlan] = []
        joined: list[str] = []
        for join in fv.joins:
            table = store.table(join.feature_group, versions.get(join.feature_group))
            if table is None:
                raise SpecError(f"{fv.id}: feature_group:{join.feature_group}{_at(versions.get(join.feature_group))} has no online table in snapshot {store.snapshot_id} (online: false?)")
            pairs = join_columns(fv, join, table.event_time, list(table.columns), taken)
            idx = [table.index(c) for c, _ in pairs]
            getter = _getter(idx)
            ttl_us = join.ttl_seconds * 1_000_000 if join.ttl_seconds is not None and table.event_time else None
            exclusive = join.exclusive and bool(table.event_time)
            joins.append(_JoinPlan(join.feature_group, join.left_on, table.rows, table.times, tuple(o for _, o in pairs), getter, ttl_us, exclusive))
            joined += [o for _, o in pairs]
        self._joins = tuple(joins)
        self._on_demand = tuple(
            _OnDemand(name, self._builtin(project, f, versions) if f.builtin else import_function(project.root, f.module, f.function, str(f.id)), f.inputs, f.returns)
            for name in fv.on_demand
            for f in (functions[name],)
        )
        spine_key, spine_time = tuple(spine_entry["primary_key"]), spine_entry.get("event_time")
        self.layout = ViewLayout(spine_key, spine_time, fv.helpers, fv.labels, (*fv.features, *(c for c in joined if c not in fv.helpers), *fv.on_demand), fv.on_demand)
        self._spine_features = tuple(fv.features)
        self._joined_helpers = tuple(h for h in fv.helpers if h in joined)  # from the online rows, not the request
        self._helpers = tuple(h for h in fv.helpers if h not in joined)
        self.event_time = spine_time
        produced = set(joined) | set(fv.features)
        needed = [*fv.features, *(k for j in fv.joins for k in j.left_on)]
        needed += [c for name in fv.on_demand for c in functions[name].inputs if c not in produced]
        keys = {k for j in fv.joins for k in j.left_on}
        fields: dict[str, InputField] = {}
        for name in needed:
            if name not in fields:
                fields[name] = InputField(name, input_kind(spine_types.get(name, "")), True, name in keys)
        for name in (*self._helpers, *((spine_time,) if spine_time else ())):
            if name not in fields:
                fields[name] = InputField(name, input_kind(spine_types.get(name, "")), False)
        self.fields = fields  # what a request may give: required inputs, then optional helpers/event time
        self.spine_types = spine_types

    def _builtin(self, project: m.Project, f: m.Function, versions: Mapping[str, int]):
        """A built-in function over the state its group stored, from the snapshot (as offline)."""
        from engine.transforms.builtin_functions import builtin_function

        kind, group, column = f.builtin
        entry = self.store.feature_group(group, versions.get(group)) or {}
        fg = project.feature_groups.get(group)
        labels = {b.name: b.labels for b in fg.transform.bins} if fg is not None and isinstance(fg.transform, m.BinningTransform) else {}
        try:
            return builtin_function(kind, group, column, entry.get("fitted"), labels)
        except ExecutionError as exc:
            raise SpecError(f"{f.id}: {exc.message} (online snapshot {self.store.snapshot_id})") from None

    def vector(self, entity: Mapping[str, object], request: Mapping[str, object]) -> VectorResult:
        """The feature vector for entity keys and request values (already typed, see ``coerce_row``)."""
        inputs = {**request, **entity} if request else dict(entity)
        get = inputs.get
        values: dict[str, object] = {f: get(f) for f in self._spine_features}
        result = VectorResult(values)
        t_us = None
        if self._joins and self.event_time is not None:
            t = get(self.event_time)
            if t is not None:
                t_us = t.value // 1000  # pandas.Timestamp: ns since the epoch
        for j in self._joins:
            key = tuple(map(get, j.left_on))
            row = j.rows.get(key) if None not in key else None
            if row is None:
                result.missing.append(j.group)
                for out in j.outs:
                    values[out] = None
                continue
            if t_us is not None and j.exclusive and j.times[key] >= t_us:
                # The latest row is the request's own event (or later), and the online store
                # keeps no older one: nothing strictly before t to give.
                result.missing.append(j.group)
                for out in j.outs:
                    values[out] = None
                continue
            if t_us is not None and j.ttl_us is not None and j.times[key] < t_us - j.ttl_us:
                result.expired.append(j.group)
                for out in j.outs:
                    values[out] = None
                continue
            values.update(zip(j.outs, j.getter(row)))
        for od in self._on_demand:
            args = [values[c] if c in values else get(c) for c in od.inputs]
            try:
                raw = od.fn(*args)
            except Exception as exc:  # user code: reported per row, never a 500
                raise OnDemandError(f"function '{od.name}' raised {type(exc).__name__}: {exc}") from None
            values[od.name] = _cast(od, raw)
        for h in self._helpers:
            if h in inputs:
                result.helpers[h] = inputs[h]
        for h in self._joined_helpers:  # given to the on-demand functions above, never to a model
            result.helpers[h] = values.pop(h, None)
        return result
