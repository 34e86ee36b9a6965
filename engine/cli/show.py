"""`engine show`: every object kind — its definition, its state (up to date, or what the next
apply does), what it reads and what reads it, and what is published (feature-group statistics,
registered model versions). Argument parsing and output only: the facts come from ``engine.api``.
``engine.cli.main`` registers the command; this module must not import it.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from engine.cli.completion import complete_show
from engine.cli.options import FORMATS, PROJECT, WORKSPACE, deprecated, guard, is_project_path, locate
from engine.errors import UsageError

# Singular (one object, or all of them without NAME) -> the spec section (lists them all).
KINDS = {
    "source": "sources",
    "feature_group": "feature_groups",
    "function": "functions",
    "feature_view": "feature_views",
    "model": "models",
    "inference": "inference",
}
_SINGULAR = {plural: kind for kind, plural in KINDS.items()}
_ALIASES = {"job": "inference", "jobs": "inference"}  # an inference job is what users call a job
_ALL = sorted({*KINDS, *KINDS.values(), *_ALIASES})


@click.command()
@click.argument("args", nargs=-1, metavar="[PATH] [KIND [NAME]]", shell_complete=complete_show)
@PROJECT
@click.option("--path", "old_path", type=click.Path(path_type=Path), default=None, hidden=True)
@click.option("--version", "version", default=None, help="Version: a number; for models also latest, best:<metric> or an alias.")
@click.option("--as-of", "as_of", default=None, metavar="COMMIT|TIME", help="A feature group as a past commit left it: a commit number, or an ISO time (the last commit at or before it).")
@WORKSPACE
@click.option("--format", "fmt", type=FORMATS, default="text")
def show(args: tuple[str, ...], project: Path | None, old_path: Path | None, version: str | None, as_of: str | None, workspace: Path | None, fmt: str) -> None:
    """Show the project's objects: one (KIND NAME), a kind (KIND), or all (no KIND).

    \b
    KIND: source, feature_group, function, feature_view, model, inference (or the plural).
    engine show                         every object and its state
    engine show feature_group weather   statistics of the published version
    engine show feature_group weather --as-of 2026-12-01T00:00Z   as the last commit before then
    engine show models                  registered model versions with test metrics
    engine show examples/flights inference live
    """

    @guard(fmt)
    def body(fmt: str) -> None:
        nonlocal project
        if old_path is not None:
            deprecated("engine show --path PATH", "engine show PATH KIND [NAME], or --project PATH")
            if project is not None and Path(project).resolve() != Path(old_path).resolve():
                raise UsageError("--path and --project name different projects; pass --project only")
            project = old_path
        path, kind, name = _parse(args, project)
        where = locate(path, project, workspace)
        if as_of is not None and (kind != "feature_group" or name is None):
            raise UsageError("--as-of applies to one feature group: engine show feature_group NAME --as-of COMMIT|TIME")
        if kind is None:
            _overview(where, fmt)
        elif name is None and kind in ("feature_group", "feature_groups", "model", "models"):
            _published_listing(where, kind, fmt)
        elif name is None:
            _listing(where, _SINGULAR.get(kind, kind), fmt)
        else:
            _one(where, _SINGULAR.get(kind, kind), name, version, fmt, as_of=as_of)

    body(fmt=fmt)


def _parse(args: tuple[str, ...], project: Path | None) -> tuple[Path | None, str | None, str | None]:
    """``[PATH] [KIND [NAME]]``: a first argument that is not a kind and names a project on disk is PATH."""
    from engine.errors import did_you_mean

    rest = list(args)
    path = None
    if project is None and rest and rest[0] not in _ALL and is_project_path(rest[0]):
        path = Path(rest.pop(0))
    if len(rest) > 2:
        raise UsageError(f"expected [PATH] [KIND [NAME]], got {' '.join(args)}")
    kind = rest[0] if rest else None
    kind = _ALIASES.get(kind, kind) if kind is not None else None
    if kind is not None and kind not in _ALL:
        hint = did_you_mean(kind, _ALL)
        raise UsageError(f"'{kind}' is not a kind of object" + (f" ({hint})" if hint else "") + f"; kinds: {', '.join(KINDS)}")
    return path, kind, rest[1] if len(rest) > 1 else None


# --- what the API tells ------------------------------------------------------------------------


def _project_and_plan(where):
    """The checked project and its plan (state of every step against the workspace)."""
    from engine import api
    from engine.errors import LockedError

    checked = api.validate(where.path)
    try:
        the_plan = api.plan(where.path, workspace=where.workspace)
    except LockedError:  # an apply is writing: the definition is still worth showing
        the_plan = None
    return checked, the_plan


def _states(the_plan) -> dict[str, str]:
    """Step key -> what the workspace holds: up to date, or what the next apply does and why."""
    if the_plan is None:
        return {}
    out = {}
    for ps in the_plan.steps:
        if ps.action.value == "skip":
            out[ps.step.key] = "up to date"
        elif ps.reason.value == "new":
            out[ps.step.key] = "not built yet (the next apply builds it)"
        else:
            out[ps.step.key] = f"out of date: {ps.reason.value} (the next apply rebuilds it)"
    return out


def _objects(project) -> list:
    """Every object of the project, in the order of the spec's sections."""
    return [obj for section in KINDS.values() for obj in getattr(project, section).values()]


def _state_of(obj, states: dict[str, str], project) -> str:
    from engine.model import objects as m

    if isinstance(obj, m.Function):
        users = [fv.name for fv in project.feature_views.values() if obj.name in fv.on_demand]
        return f"computed on demand by {', '.join(users)}" if users else "not used by any feature view"
    if isinstance(obj, m.InferenceJob) and obj.mode == "online":
        return "online: answered by `engine serve` from the last apply's snapshot"
    return states.get(str(obj.id), "unknown (another apply is writing)" if not states else "not planned")


def _overview(where, fmt: str) -> None:
    from engine.cli.render import emit
    from engine.cli.tables import render_table

    checked, the_plan = _project_and_plan(where)
    p = checked.project
    states = _states(the_plan)
    rows = [{"id": str(o.id), "kind": o.id.kind.value, "name": o.name, "state": _state_of(o, states, p)} for o in _objects(p)]
    if fmt == "json":
        emit(json.dumps({"project": p.name, "root": str(p.root), "objects": rows}, indent=2))
        return
    head = f"project '{p.name}' at {p.root} ({len(p.files)} spec file{'s' if len(p.files) != 1 else ''})"
    emit(head + "\n" + render_table("objects", ("kind", "name", "state"), [(r["kind"], r["name"], r["state"]) for r in rows]))


def _published_listing(where, kind: str, fmt: str) -> None:
    from engine import api
    from engine.cli.render import emit
    from engine.cli.tables import feature_group_listing, model_listing

    if kind.startswith("feature_group"):
        rows = api.list_feature_groups(where.path, workspace=where.workspace)
        emit(json.dumps(rows, indent=2) if fmt == "json" else feature_group_listing(rows))
    else:
        rows = api.list_models(where.path, workspace=where.workspace)
        emit(json.dumps(rows, indent=2) if fmt == "json" else model_listing(rows))


_LIST_COLUMNS = {
    "source": ("format", "path", "files"),
    "function": ("python", "inputs", "returns"),
    "feature_view": ("spine", "label", "features"),
    "inference": ("mode", "model", "output"),
}


def _listing(where, kind: str, fmt: str) -> None:
    from engine.cli.render import emit
    from engine.cli.tables import render_table

    checked, the_plan = _project_and_plan(where)
    p = checked.project
    states = _states(the_plan)
    objs = list(getattr(p, KINDS[kind]).values())
    docs = [{"id": str(o.id), "name": o.name, "state": _state_of(o, states, p), **definition(o, p)} for o in objs]
    if fmt == "json":
        emit(json.dumps(docs, indent=2, default=str))
        return
    if not docs:
        emit(f"No {KINDS[kind].replace('_', ' ')} in project '{p.name}'.")
        return
    cols = _LIST_COLUMNS[kind]
    rows = [(d["name"], *(_cell(d.get(c)) for c in cols), d["state"]) for d in docs]
    emit(render_table(KINDS[kind].replace("_", " "), ("name", *cols, "state"), rows))


def _cell(value: object) -> str:
    from engine.cli.render import flow

    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) if all(isinstance(v, str) for v in value) else flow(value)
    return value if isinstance(value, str) else flow(value)


def _one(where, kind: str, name: str, version: str | None, fmt: str, *, as_of: str | None = None) -> None:
    from engine import api
    from engine.cli.render import emit
    from engine.cli.tables import feature_group_table, model_table

    if version is not None and kind not in ("feature_group", "model"):
        raise UsageError(f"--version applies to feature groups and models, not to a {kind}")
    if kind == "feature_group" and version is not None and not version.isdigit():
        raise UsageError(f"--version for a feature group is a number, not '{version}'")
    checked, the_plan = _project_and_plan(where)
    p = checked.project
    objs = getattr(p, KINDS[kind])
    if name not in objs:
        from engine.errors import did_you_mean

        hint = did_you_mean(name, sorted(objs))
        raise UsageError(f"no {kind} named '{name}' in project '{p.name}'" + (f" ({hint})" if hint else ""))
    obj = objs[name]
    published = scored = None
    try:
        if kind == "feature_group":
            published = api.show_feature_group(where.path, name, version=int(version) if version else None, as_of=as_of, workspace=where.workspace)
        elif kind == "model":
            published = api.show_model(where.path, name, version=version, workspace=where.workspace)
        elif kind == "inference" and obj.mode.value != "online":
            scored = api.show_predictions(where.path, name, workspace=where.workspace)
    except UsageError:
        if version is not None or as_of is not None:
            raise  # a version or commit that does not exist is the user's mistake, not "not published yet"
    doc = _describe(where, obj, p, _states(the_plan))
    if kind == "inference" and obj.mode.value != "online":
        doc["predictions"] = scored
    if fmt == "json":  # a published version's fields at the top level, as before; then the spec's view
        extra = {k: doc[k] for k in ("state", "reads", "read_by", "definition")}
        emit(json.dumps({**published, **extra} if published is not None else {**doc, "published": None}, indent=2, default=str))
        return
    text = _definition_text(doc)
    if kind == "inference" and obj.mode.value != "online":
        if scored is None:
            text += "\nnothing scored yet: run `engine apply`" + (f" (or `engine run {name}`)" if obj.mode.value == "stream" else "")
        else:
            text += (
                f"\npredictions: {scored['rows']:,} rows in {scored['table']} from {scored['runs']} run{'s' if scored['runs'] != 1 else ''} "
                f"({', '.join(scored['model_versions'])}); last scored {scored['last_scored_at']} by run {scored['last_run_id']}"
                f"\nread them with engine.api.read_predictions(project, '{name}')"
            )
    if published is not None:
        text += "\n" + (feature_group_table(published) if kind == "feature_group" else model_table(published))
    elif kind in ("feature_group", "model"):
        text += "\n" + ("not published yet: run `engine apply`" if kind == "feature_group" else "no version registered yet: run `engine apply`")
    emit(text)


def _describe(where, obj, project, states: dict[str, str]) -> dict:
    """Identity, state, direct lineage and definition of one object."""
    from engine import api
    from engine.model import objects as m

    reads: tuple[str, ...] = ()
    read_by: tuple[str, ...] = ()
    if isinstance(obj, m.Function):  # not a step: it runs inside the feature views that use it
        read_by = tuple(str(fv.id) for fv in project.feature_views.values() if obj.name in fv.on_demand)
    elif isinstance(obj, m.InferenceJob) and obj.mode == "online":  # not a step: `engine serve` runs it
        reads = (f"model:{obj.model}",)
    else:
        lin = api.lineage(where.path, str(obj.id))
        reads, read_by = lin.upstream.get(lin.root, ()), lin.downstream.get(lin.root, ())
    return {
        "id": str(obj.id),
        "kind": obj.id.kind.value,
        "name": obj.name,
        "description": obj.description,
        "state": _state_of(obj, states, project),
        "reads": list(reads),
        "read_by": list(read_by),
        "definition": definition(obj, project),
    }


def _definition_text(doc: dict) -> str:
    from engine.cli.render import flow
    from engine.cli.tables import wrap

    lines = [doc["id"] + (f"  {doc['description']}" if doc.get("description") else "")]
    pairs = [("state", doc["state"]), ("reads", doc["reads"]), ("read by", doc["read_by"]), *doc["definition"].items()]
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        if value in (None, (), [], {}) and key not in ("reads", "read by"):
            continue
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            lines.append(f"  {key + ':':<{width + 1}}")
            lines += [f"    - {flow(v)}" for v in value]
            continue
        shown = _cell(value) if value not in ([], ()) else "-"
        lines.append(f"  {key + ':':<{width + 1}} {shown}")
    return wrap(lines, indent=width + 2)


def definition(obj, project) -> dict:
    """What the spec says about ``obj``, as plain data (the JSON of `engine show --format json`)."""
    from engine.model import objects as m

    match obj:
        case m.Source():
            files = [_relative(f, project.root) for f in obj.resolved_paths]
            doc = {"format": obj.format, "path": obj.path, "files": files, "timezone": obj.timezone}
            if obj.columns:
                doc["columns"] = dict(obj.columns)
            if obj.format == m.SourceFormat.CSV:
                doc["csv"] = {"delimiter": obj.csv.delimiter, "header": obj.csv.header}
            doc["on_bad_rows"] = _value(obj.on_bad_rows)
            if _value(obj.on_bad_rows) == "quarantine":
                doc["max_bad_rows"] = obj.max_bad_rows
            return doc
        case m.FeatureGroup():
            return {
                "version": obj.version,
                "primary_key": list(obj.primary_key),
                "event_time": obj.event_time,
                **_transform(obj.transform),
                "expectations": [_expectation(e) for e in obj.expectations],
                "online": obj.online,
                "dedupe": _value(obj.dedupe) if obj.dedupe_by is None else {"latest_by": obj.dedupe_by},
                "non_finite": _value(obj.non_finite),
            }
        case m.Function():
            return {"python": f"{obj.module}:{obj.function}", "inputs": list(obj.inputs), "returns": obj.returns}
        case m.FeatureView():
            return {
                "version": obj.version,
                "spine": obj.spine,
                "label": list(obj.labels),
                "features": list(obj.features),
                "helpers": list(obj.helpers),
                "filter": obj.filter,
                "joins": [_join(j) for j in obj.joins],
                "on_demand": list(obj.on_demand),
                "transforms": {c: m.transform_text(t) for c, t in obj.transforms},
            }
        case m.Model():
            fv = obj.feature_view + (f"@{obj.feature_view_version}" if obj.feature_view_version is not None else "")
            split = {k: v for k, v in vars(obj.split).items() if v is not None}
            weight = dict(obj.class_weight) if isinstance(obj.class_weight, tuple) else obj.class_weight
            doc = {"feature_view": fv, "estimator": obj.estimator, "params": dict(obj.params), "split": split, "metrics": list(obj.metrics), "class_weight": weight, "aliases": list(obj.aliases)}
            if obj.features or obj.exclude:
                doc["features" if obj.features else "exclude"] = list(obj.features or obj.exclude)
            if obj.transforms:
                doc["transforms"] = {c: m.transform_text(t) for c, t in obj.transforms}
            return doc
        case m.InferenceJob():
            output = ", ".join(x for x in (obj.output_table and f"table {obj.output_table}", obj.output_path) if x) or None
            doc = {"mode": obj.mode, "model": obj.model, "range": list(obj.range) if obj.range else ({"last": obj.range_last} if obj.range_last else None), "source": obj.source, "output": output}
            if obj.mode == "online":
                doc.update({"keys": list(obj.keys), "request": list(obj.request), "endpoint": f"POST /jobs/{obj.name}/predict (engine serve)"})
            return doc
    return {}


def _value(x: object) -> object:
    return getattr(x, "value", x)


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _transform(t) -> dict:
    from engine.model import objects as m

    match t:
        case m.SqlTransform():
            return {"sql_file": t.sql_file} if t.sql_file else {"sql": " ".join(t.sql.split())}
        case m.PythonTransform():
            return {"python": t.reference, "inputs": list(t.inputs)}
        case m.AggregationTransform():
            return {"from": t.input, "aggregations": [{"name": a.name, "column": a.column, "function": _value(a.function), "window": a.window} for a in t.aggregations]}
        case m.BinningTransform():
            bins = []
            for b in t.bins:
                doc = {"name": b.name, "column": b.column}
                if b.edges is not None:
                    doc["edges"] = list(b.edges)
                if b.quantiles is not None:
                    doc["quantiles"] = b.quantiles
                bins.append(doc)
            return {"from": t.input, "binning": bins}
        case m.PcaTransform():
            return {"from": t.input, "pca": {"columns": list(t.pca.columns), "n_components": t.pca.n_components, "prefix": t.pca.prefix}}
    return {}


def _expectation(e) -> str:
    """``Expectation.describe()``, with sets and patterns written as YAML rather than Python reprs."""
    from engine.cli.render import flow
    from engine.model.objects import ExpectationKind

    if e.kind is ExpectationKind.IN_SET:
        return f"{e.column} in_set {flow(list(e.values))}"
    if e.kind is ExpectationKind.REGEX:
        return f"{e.column} regex {flow(e.pattern)}"
    return e.describe()


def _join(j) -> dict:
    doc: dict = {"feature_group": j.feature_group + (f"@{j.version}" if j.version is not None else "")}
    if j.left_on == j.right_on:
        doc["on"] = list(j.left_on)
    else:
        doc.update({"left_on": list(j.left_on), "right_on": list(j.right_on)})
    if j.prefix:
        doc["prefix"] = j.prefix
    if j.select is not None:
        doc["select"] = list(j.select)
    if j.exclude:
        doc["exclude"] = list(j.exclude)
    if j.ttl:
        doc["ttl"] = j.ttl
    return doc
