"""Materialise a feature view: the spine joined point-in-time with its feature groups, filtered,
with on-demand features computed. Owns the view's column layout; the join SQL itself is the
backend's (engine.sql.point_in_time), and the published tables are the feature store's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.errors import SpecError
from engine.model import objects as m
from engine.sql.quote import qualified, quote_ident


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


def view_relation(fv: m.FeatureView) -> str:
    return qualified("views", f"{fv.name}__v{fv.version}")


def _columns(con, relation: str) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}


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


def plan_joins(con, fv: m.FeatureView, project: m.Project, relation_of: Callable[[str], str]):
    """The join steps and the view layout, from the published tables' real columns."""
    from engine.sql.point_in_time import JoinStep

    spine = project.feature_groups[fv.spine]
    spine_cols = _columns(con, relation_of(fv.spine))
    taken = set(spine_cols)
    joined: list[str] = []
    steps = []
    for join in fv.joins:
        fg = project.feature_groups[join.feature_group]
        fg_cols = _columns(con, relation_of(fg.name))
        pairs = join_columns(fv, join, fg.event_time, list(fg_cols), taken)
        joined += [out for _, out in pairs]
        steps.append(JoinStep(relation_of(fg.name), join.left_on, join.right_on, fg.event_time, tuple(pairs), join.ttl_seconds))
    features = (*fv.features, *joined, *fv.on_demand)
    layout = ViewLayout(spine.primary_key, spine.event_time, fv.helpers, fv.labels, tuple(features), fv.on_demand)
    return steps, layout, list(spine_cols)


SPINE_ALIAS = "_engine_spine_where"  # how a ``spine_where`` expression may qualify spine columns


def materialise(
    con,
    fv: m.FeatureView,
    project: m.Project,
    relation_of: Callable[[str], str],
    *,
    run_sql,
    timeout_s: float | None,
    spine_where: str | None = None,
) -> tuple[str, ViewLayout]:
    """Build the view into a staging table; return (staging relation, layout).

    ``spine_where`` (inference only) restricts the spine before the join: a boolean SQL
    expression over spine columns, qualified by :data:`SPINE_ALIAS` when needed. It is built by
    engine code from quoted identifiers and bound/validated values, never from user text.
    """
    from engine.sql.gate import gate_select
    from engine.sql.point_in_time import point_in_time_sql
    from engine.transforms.on_demand import apply_functions

    steps, layout, spine_cols = plan_joins(con, fv, project, relation_of)
    spine_rel = relation_of(fv.spine)
    if fv.filter:
        gated, messages = gate_select(f"SELECT * FROM {quote_ident(fv.spine)} WHERE {fv.filter}", {fv.spine})
        if gated is None or messages:
            raise SpecError(f"{fv.id}: filter rejected: {'; '.join(messages)}")
        spine_rel = f"(SELECT * FROM {spine_rel} WHERE {fv.filter})"
    if spine_where is not None:
        spine_rel = f"(SELECT * FROM {spine_rel} AS {quote_ident(SPINE_ALIAS)} WHERE {spine_where})"
    needed = set(layout.columns) | {c for f in fv.on_demand for c in project.functions[f].inputs}
    wanted_spine = [c for c in spine_cols if c in needed]
    sql = point_in_time_sql(spine_rel, layout.event_time, wanted_spine, steps)
    staging = qualified("staging", f"view__{fv.name}__v{fv.version}")
    con.execute(f"DROP TABLE IF EXISTS {staging}")
    run_sql(con, f"CREATE TABLE {staging} AS {sql}", timeout_s=timeout_s)
    if fv.on_demand:
        frame = con.execute(f"SELECT * FROM {staging}").df()
        functions = [project.functions[name] for name in fv.on_demand]
        frame = apply_functions(frame, functions, project.root)
        con.execute(f"DROP TABLE {staging}")
        con.register("_engine_view", frame)
        try:
            con.execute(f"CREATE TABLE {staging} AS SELECT * FROM _engine_view")
        finally:
            con.unregister("_engine_view")
    ordered = ", ".join(quote_ident(c) for c in layout.columns)
    con.execute(f"CREATE OR REPLACE TABLE {staging} AS SELECT {ordered} FROM {staging}")
    rows = con.execute(f"SELECT count(*) FROM {staging}").fetchone()[0]
    if rows == 0:
        from engine.errors import DataError

        raise DataError(f"{fv.id}: the feature view has no rows (empty spine{' after the filter' if fv.filter else ''})")
    return staging, layout


def publish_view(con, fv: m.FeatureView, staging: str, layout: ViewLayout, *, fingerprint: str, run_id: str) -> str:
    """Replace the view's table and its metadata row; the caller holds the transaction."""
    import json

    target = view_relation(fv)
    con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {staging}")
    rows = con.execute(f"SELECT count(*) FROM {target}").fetchone()[0]
    con.execute(
        "INSERT OR REPLACE INTO _engine.feature_views VALUES (?, ?, ?, ?, ?, ?, ?, now())",
        [fv.name, fv.version, target, json.dumps(layout.as_dict()), rows, fingerprint, run_id],
    )
    return target


def stored_layout(con, name: str, version: int | None = None) -> tuple[str, ViewLayout, str] | None:
    """(table, layout, fingerprint) of a materialised view version (the highest when None)."""
    import json

    from engine.state.metadata import version_row

    rec = version_row(con, "feature_views", name, version)
    if rec is None:
        return None
    d = json.loads(rec["layout"])
    layout = ViewLayout(tuple(d["keys"]), d["event_time"], tuple(d["helpers"]), tuple(d["labels"]), tuple(d["features"]), tuple(d["on_demand"]))
    return rec["table_name"], layout, rec["fingerprint"]
