"""Materialise a feature view: the spine joined point-in-time with its feature groups, filtered,
with on-demand features computed. Owns the view's column layout and its published table; the
join itself is an operation (``engine.sql.ops.PointInTimeJoin``) that the backend compiles.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.backends.base import Backend
from engine.errors import DataError, SpecError
from engine.model import objects as m
from engine.sql.ops import JoinSpec, PointInTimeJoin, Relation, Scan, SpineFilter, UserFilter


@dataclass(frozen=True)
class ViewLayout:
    """Which columns of a materialised view are what. Stored in model manifests."""

    keys: tuple[str, ...]  # spine primary key
    event_time: str | None  # spine event time
    helpers: tuple[str, ...]  # returned, never fed to a model
    labels: tuple[str, ...]
    features: tuple[str, ...]  # model inputs, in order: spine features, joined features, on-demand
    on_demand: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        out: list[str] = []
        for c in (*self.keys, *((self.event_time,) if self.event_time else ()), *self.helpers, *self.labels, *self.features):
            if c not in out:
                out.append(c)
        return tuple(out)

    def as_dict(self) -> dict:
        return {"keys": list(self.keys), "event_time": self.event_time, "helpers": list(self.helpers), "labels": list(self.labels), "features": list(self.features), "on_demand": list(self.on_demand)}


    @classmethod
    def from_dict(cls, d: dict) -> "ViewLayout":
        return cls(tuple(d["keys"]), d["event_time"], tuple(d["helpers"]), tuple(d["labels"]), tuple(d["features"]), tuple(d["on_demand"]))


def view_relation(fv: m.FeatureView) -> Relation:
    return Relation("views", f"{fv.name}__v{fv.version}")


def join_columns(fv: m.FeatureView, join: m.Join, fg_event_time: str | None, fg_columns: list[str], taken: set[str]) -> list[tuple[str, str]]:
    """(feature-group column, output column) pairs a join brings — the one rule offline and online share.

    ``select`` if given, else every column but the join keys, the event time and ``except``;
    outputs are prefixed; an output already in ``taken`` is a SpecError (``taken`` is updated).
    """
    skip = set(join.right_on) | ({fg_event_time} if fg_event_time else set())
    chosen = list(join.select) if join.select is not None else [c for c in fg_columns if c not in skip and c not in join.exclude]
    pairs = []
    for col in chosen:
        if col not in fg_columns:
            raise SpecError(f"{fv.id}: column '{col}' is not a column of feature_group:{join.feature_group}")
        out = join.prefix + col
        if out in taken:
            raise SpecError(f"{fv.id}: column '{out}' from feature_group:{join.feature_group} clashes with another column of the view; add prefix: {join.feature_group}_")
        taken.add(out)
        pairs.append((col, out))
    return pairs


def plan_joins(backend: Backend, fv: m.FeatureView, project: m.Project, relation_of: Callable[[str], Relation]):
    """The join specs and the view layout, from the published tables' real columns."""
    spine = project.feature_groups[fv.spine]
    spine_cols = backend.columns(relation_of(fv.spine))
    taken = set(spine_cols)
    joined: list[str] = []
    specs = []
    for join in fv.joins:
        fg = project.feature_groups[join.feature_group]
        fg_cols = backend.columns(relation_of(fg.name))
        pairs = join_columns(fv, join, fg.event_time, list(fg_cols), taken)
        joined += [out for _, out in pairs]
        specs.append(JoinSpec(relation_of(fg.name), join.left_on, join.right_on, fg.event_time, tuple(pairs), join.ttl_seconds, exclusive=join.exclusive))
    # a helper may come from a join: stored and returned with the rows, never a feature
    features = (*fv.features, *(c for c in joined if c not in fv.helpers), *fv.on_demand)
    layout = ViewLayout(spine.primary_key, spine.event_time, fv.helpers, fv.labels, tuple(features), fv.on_demand)
    return specs, layout, list(spine_cols)


def builtin_callables(backend: Backend, project: m.Project, functions) -> dict[str, object]:
    """The built-in functions among ``functions`` (a group's binning or PCA at request time) as
    callables over the state the group stored with its declared version."""
    from engine.state import metadata
    from engine.transforms.builtin_functions import builtin_function

    out: dict[str, object] = {}
    for f in functions:
        if not f.builtin:
            continue
        kind, group, column = f.builtin
        fg = project.feature_groups[group]
        fgv = metadata.feature_group_version(backend.catalog, group, fg.version)
        labels = {b.name: b.labels for b in fg.transform.bins} if isinstance(fg.transform, m.BinningTransform) else {}
        out[f.name] = builtin_function(kind, group, column, fgv.fitted if fgv else None, labels)
    return out


def spine_filters(fv: m.FeatureView, extra: Sequence[SpineFilter] = ()) -> tuple[SpineFilter, ...]:
    """The view's own ``filter`` (gated again here, as an expression: defence in depth), then ``extra``."""
    from engine.sql.gate import gate_filter

    filters: list[SpineFilter] = []
    if fv.filter:
        condition, messages = gate_filter(fv.filter)
        if condition is None:
            raise SpecError(f"{fv.id}: filter rejected: {'; '.join(messages)}")
        filters.append(UserFilter(condition))
    return (*filters, *extra)


def view_join(
    backend: Backend,
    fv: m.FeatureView,
    project: m.Project,
    relation_of: Callable[[str], Relation],
    *,
    spine: Relation | None = None,
    spine_where: Sequence[SpineFilter] = (),
) -> tuple[PointInTimeJoin, ViewLayout, bool]:
    """The view's point-in-time join (over ``spine`` instead of the spine group's table when given),
    its layout, and whether the join's output is exactly the published columns in order (no
    on-demand features, no column to move), so it can be written as it is."""
    specs, layout, spine_cols = plan_joins(backend, fv, project, relation_of)
    needed = set(layout.columns) | {c for f in fv.on_demand for c in project.functions[f].inputs}
    if not fv.on_demand:
        wanted_spine = tuple(c for c in layout.columns if c in spine_cols)
    else:
        wanted_spine = tuple(c for c in spine_cols if c in needed)
    output = (*wanted_spine, *(out for spec in specs for _, out in spec.columns))
    direct = not fv.on_demand and output == layout.columns
    # Written straight to its table, the view keeps no row order (readers sort by key), so the
    # join skips the spine-order sort; a staging table built for on-demand features keeps it.
    join = PointInTimeJoin(
        spine or relation_of(fv.spine), layout.event_time, wanted_spine, tuple(specs), spine_filters(fv, spine_where),
        prune=spine is not None, ordered=not direct,
    )
    return join, layout, direct


def materialise(
    backend: Backend,
    fv: m.FeatureView,
    project: m.Project,
    relation_of: Callable[[str], Relation],
    *,
    timeout_s: float | None,
    spine_where: Sequence[SpineFilter] = (),
    spine: Relation | None = None,
) -> tuple[Relation, ViewLayout]:
    """Build the view into a staging table; return (staging relation, layout). The staging table
    may hold extra spine columns (on-demand inputs): read it as ``Scan(staging, layout.columns)``.

    ``spine_where`` (inference only) restricts the spine before the join; ``spine`` (new spine rows
    to append to the view) replaces the spine group's table, and may give no row.
    """
    from engine.transforms.on_demand import OnDemandFrames

    join, layout, _ = view_join(backend, fv, project, relation_of, spine=spine, spine_where=spine_where)
    join = dataclasses.replace(join, ordered=True)  # a staging table keeps spine order
    staging = Relation("staging", f"view__{fv.name}__v{fv.version}")
    backend.drop(staging)
    backend.create(staging, join, timeout_s=timeout_s)
    if fv.on_demand:
        # Row-wise: the backend runs them where the rows are (Spark: on the executors).
        chosen = [project.functions[name] for name in fv.on_demand]
        functions = OnDemandFrames(chosen, project.root, str(fv.id), builtin_callables(backend, project, chosen))
        backend.map_frames(staging, staging, functions, functions.added())
    rows = backend.count(staging)
    if rows == 0 and spine is None:
        raise DataError(f"{fv.id}: the feature view has no rows (empty spine{' after the filter' if fv.filter else ''})")
    return staging, layout


def publish_view(
    backend: Backend, fv: m.FeatureView, staging: Relation | PointInTimeJoin, layout: ViewLayout, *, fingerprint: str, run_id: str, append: bool = False
) -> tuple[int, int]:
    """Replace the view's table (``append``: add to it) and its metadata row; returns the table's
    rows and the rows written. ``staging`` is a built view (read as ``layout.columns``) or a join whose output is exactly
    those columns (``view_join``), written straight into the table: one write, no staging copy.
    DataError for a view with no rows; the caller holds the transaction, so nothing is published."""
    from engine.state import metadata

    target = view_relation(fv)
    source = Scan(staging, columns=layout.columns) if isinstance(staging, Relation) else staging
    if append:
        previous = metadata.feature_view_row(backend.catalog, fv.name, fv.version)
        written = backend.append(target, source)
        rows = int(previous["row_count"]) + written
    else:
        rows = written = backend.create(target, source, replace=True)
    if rows == 0:
        raise DataError(f"{fv.id}: the feature view has no rows (empty spine{' after the filter' if fv.filter else ''})")
    metadata.upsert_feature_view(backend.catalog, fv.name, fv.version, str(target), layout.as_dict(), rows, fingerprint, run_id)
    return rows, written


def stored_layout(backend: Backend, name: str, version: int | None = None) -> tuple[Relation, ViewLayout, str] | None:
    """(table, layout, fingerprint) of a materialised view version (the highest when None)."""
    from engine.state import metadata

    rec = metadata.feature_view_row(backend.catalog, name, version)
    if rec is None:
        return None
    return Relation.parse(rec["table_name"]), ViewLayout.from_dict(rec["layout"]), rec["fingerprint"]
