"""The change report of a plan: for each object whose definition changed since the workspace last
built it, what changed — columns added, removed and retyped; changed SQL expressions and clauses
(from the normalised sqlglot syntax trees of both queries); changed parameters; changed function
code — its classification, and the downstream objects it affects.

A step's *definition document* (``definition_document``) is recorded with the step when it runs
(``_engine.step_definitions``); ``change_report`` compares the stored documents with the current
ones. Pure: no database, no user code.

Classification (what a consumer of the object sees):

- ``breaking`` — existing outputs change meaning or disappear: a removed or retyped column, a
  changed expression or clause, a changed key, event time, window, join, split or estimator
  parameter, changed function code;
- ``non-breaking`` — only additions (new columns, new aggregations, new on-demand features) or
  changes that leave the stored rows as they are (expectations);
- ``metadata-only`` — descriptions and tags: nothing is rebuilt.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.compiler.steps import Plan, Step, StepKind
from engine.model import objects as m

if TYPE_CHECKING:
    from engine.compiler.semantics import CheckedProject

BREAKING, NON_BREAKING, METADATA = "breaking", "non-breaking", "metadata-only"
_DOCUMENTED = (StepKind.BUILD_FEATURE_GROUP, StepKind.BUILD_FEATURE_VIEW, StepKind.TRAIN_MODEL)
_RETURNS = {"int64": "BIGINT", "float64": "DOUBLE", "string": "VARCHAR", "bool": "BOOLEAN", "timestamp": "TIMESTAMPTZ"}
# Parameters whose change leaves an object's stored rows as they were.
_HARMLESS = {"expectations", "aliases", "gates", "metrics", "online", "retention", "on_late"}


@dataclass(frozen=True)
class Change:
    """What changed in one object since the workspace last built it."""

    object: str  # step key, e.g. feature_group:weather@1
    classification: str  # breaking | non-breaking | metadata-only
    added: tuple[tuple[str, str], ...] = ()  # (column, type)
    removed: tuple[tuple[str, str], ...] = ()
    retyped: tuple[tuple[str, str, str], ...] = ()  # (column, old type, new type)
    expressions: tuple[tuple[str, str, str], ...] = ()  # (column or clause, old SQL, new SQL)
    parameters: tuple[tuple[str, Any, Any], ...] = ()  # (key path, old, new)
    code: tuple[str, ...] = ()  # the Python references whose code changed
    metadata: tuple[str, ...] = ()  # description / tags
    downstream: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "object": self.object,
            "classification": self.classification,
            "columns": {
                "added": [{"name": n, "type": _known(t)} for n, t in self.added],
                "removed": [{"name": n, "type": _known(t)} for n, t in self.removed],
                "retyped": [{"name": n, "from": a, "to": b} for n, a, b in self.retyped],
            },
            "expressions": [{"column": c, "from": a, "to": b, **({"edits": sql_edits(a, b)} if "(none)" not in (a, b) else {})} for c, a, b in self.expressions],
            "parameters": [{"path": p, "from": a, "to": b} for p, a, b in self.parameters],
            "code": list(self.code),
            "metadata": list(self.metadata),
            "downstream": list(self.downstream),
        }

    def lines(self) -> list[str]:
        """The report's text lines for this object (under its header)."""
        new_sql = {c.removeprefix("column "): b for c, a, b in self.expressions if a == "(none)"}
        out = [f"+ column {n} {_known(t) or ''}".rstrip() + (f" = {_short(new_sql[n])}" if n in new_sql else "") for n, t in self.added]
        out += [f"- column {n} {_known(t) or ''}".rstrip() for n, t in self.removed]
        out += [f"~ column {n}: {a} -> {b}" for n, a, b in self.retyped]
        out += [f"~ {c}: {_short(a)} -> {_short(b)}" for c, a, b in self.expressions if not (a == "(none)" and c.removeprefix("column ") in new_sql)]
        out += [f"~ {p}: {_short(_text(a))} -> {_short(_text(b))}" for p, a, b in self.parameters]
        out += [f"~ code of {ref}" for ref in self.code]
        out += [f"~ {what}" for what in self.metadata]
        if self.downstream:
            out.append("affects: " + ", ".join(self.downstream))
        return out


def _known(typ: str | None) -> str | None:
    """A column type as inferred, None where validate could not know it (a CSV column not declared)."""
    return None if typ in (None, "UNKNOWN") else typ


def _text(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value, sort_keys=True, separators=(", ", ": "), default=str)


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- the recorded document -------------------------------------------------------------------------


def definition_document(step: Step, checked: "CheckedProject") -> dict[str, Any] | None:
    """What a run records of a step's definition for later change reports: the canonical
    definition (as fingerprinted), the normalised SQL, the output columns inferred statically, the
    code digests of its Python references, and its description and tags. None for steps without
    a definition worth reporting (sources, scoring)."""
    from engine.compiler.fingerprint import canonical, normalise_sql, python_package_fingerprint

    if step.kind not in _DOCUMENTED:
        return None
    obj = step.payload
    project = checked.project
    doc: dict[str, Any] = {"description": getattr(obj, "description", None), "tags": list(getattr(obj, "tags", ()) or ())}
    code: dict[str, str] = {}
    if isinstance(obj, m.FeatureGroup):
        t = obj.transform
        if isinstance(t, m.SqlTransform):
            doc["sql"] = normalise_sql(t.sql)
            obj = dataclasses.replace(obj, transform=dataclasses.replace(t, sql=doc["sql"]))
        elif isinstance(t, m.PythonTransform):
            code[t.reference] = python_package_fingerprint(project.root, t.module, t.function)
        columns = checked.columns.get(obj.name)
        doc["columns"] = dict(columns) if columns is not None else None
    elif isinstance(obj, m.FeatureView):
        for name in obj.on_demand:
            f = project.functions.get(name)
            if f is not None and not f.builtin:
                code[f"{f.module}:{f.function}"] = python_package_fingerprint(project.root, f.module, f.function)
        doc["columns"] = view_columns(obj, checked)
        doc["functions"] = {name: canonical(project.functions[name]) for name in obj.on_demand if name in project.functions}
        doc["joined"] = joined_versions(obj, project)
    doc["definition"] = canonical(obj)
    doc["code"] = code
    return doc


def joined_versions(fv: m.FeatureView, project: m.Project) -> dict[str, int]:
    """The feature-group versions a view reads (its spine and every join), as the project declares
    them now: what a version of the view means besides its own definition (a view that joins a new
    version of a group is a new view), and what serving an older model needs kept online."""
    names = [fv.spine, *(j.feature_group for j in fv.joins)]
    return {n: project.feature_groups[n].version for n in names if n in project.feature_groups}


def view_columns(fv: m.FeatureView, checked: "CheckedProject") -> dict[str, str] | None:
    """The columns a feature view holds (spine features, joined columns, on-demand features), typed
    as the semantic check inferred them; None when a joined group's columns are unknown statically."""
    project, columns = checked.project, checked.columns
    spine = columns.get(fv.spine)
    if spine is None:
        return None
    out = {c: spine.get(c, "UNKNOWN") for c in fv.features}
    for join in fv.joins:
        target = project.feature_groups.get(join.feature_group)
        cols = columns.get(join.feature_group)
        if target is None or cols is None:
            return None
        skip = set(join.right_on) | ({target.event_time} if target.event_time else set())
        chosen = list(join.select) if join.select is not None else [c for c in cols if c not in skip and c not in join.exclude]
        out.update({join.prefix + c: cols.get(c, "UNKNOWN") for c in chosen if join.prefix + c not in fv.helpers})
    for name in fv.on_demand:
        f = project.functions.get(name)
        if f is not None:
            out[name] = _RETURNS.get(f.returns, f.returns.upper())
    return out


# --- versions in use ------------------------------------------------------------------------------


def frozen_conflicts(changes: tuple[Change, ...], checked: "CheckedProject", in_use: dict[str, list[str]], already: tuple[str, ...] = ()) -> list[str]:
    """A published version a model version was trained on never changes meaning (DESIGN §3,
    Versions): for each breaking change to a version in ``in_use`` (object key -> models), the
    bump it needs; and, in the same pass, each view version in use that reads a group needing a
    new version (it will read the new one: a new view). ``already``: keys of objects other checks
    block (a removed column), reported there."""
    project = checked.project
    out: list[str] = []
    bumped: set[str] = set()
    for key in already:
        kind, name, _ = _parts(key)
        bumped.add(name if kind == "feature_group" else f"view:{name}")
    for change in changes:
        key = change.object.split(" (from ", 1)[0]
        if change.classification != BREAKING or key not in in_use:
            continue
        kind, name, version = _parts(key)
        bumped.add(name if kind == "feature_group" else f"view:{name}")
        if key in already:
            continue
        what = "; ".join(line for line in change.lines() if not line.startswith("affects: "))
        users = _users(in_use[key])
        out.append(
            f"{key}: breaking change to a version {users} {'was' if len(in_use[key]) == 1 else 'were'} trained on ({_short(what, 200)}). "
            f"Bump {kind}s.{name}.version to {version + 1}; version {version} stays readable and servable for {users}."
        )
    for fv in project.feature_views.values():
        key = f"feature_view:{fv.name}@{fv.version}"
        if key not in in_use or f"view:{fv.name}" in bumped:
            continue
        reads = [g for g in joined_versions(fv, project) if g in bumped]
        if reads:
            users = _users(in_use[key])
            out.append(
                f"{key}: reads {', '.join(f'feature_group:{g}' for g in reads)}, which {'needs a new version' if len(reads) == 1 else 'need new versions'}, and {users} "
                f"{'was' if len(in_use[key]) == 1 else 'were'} trained on it. Bump feature_views.{fv.name}.version to {fv.version + 1} with it; "
                f"version {fv.version} stays readable and servable for {users}."
            )
    return out


def _parts(key: str) -> tuple[str, str, int]:
    kind, _, rest = key.partition(":")
    name, _, version = rest.rpartition("@")
    return kind, name, int(version)


def _users(models: list[str]) -> str:
    return ", ".join(models[:3]) + (f" and {len(models) - 3} more" if len(models) > 3 else "")


# --- comparing documents ---------------------------------------------------------------------------


def change_report(plan: Plan, checked: "CheckedProject", stored: dict[str, dict[str, Any]]) -> tuple[Change, ...]:
    """A ``Change`` for each planned object whose recorded document differs from its current one,
    in plan order, with the planned steps downstream of it."""
    from engine.compiler.steps import Reason

    downstream = _downstream({ps.step.key: (*ps.step.depends_on, *ps.step.after) for ps in plan.steps})
    out = []
    for ps in plan.steps:
        if ps.step.kind not in _DOCUMENTED:
            continue
        before = stored.get(ps.step.key)
        key = ps.step.key
        if before is None:  # a new version of a group or view: compared with the latest earlier one
            earlier = _earlier_version(ps.step, stored)
            if earlier is None:
                continue
            before, key = stored[earlier], f"{ps.step.key} (from @{earlier.rsplit('@', 1)[1]})"
        same = (Reason.UNCHANGED, Reason.UPSTREAM_CHANGED, Reason.DATA_CHANGED, Reason.NEW_DATA, Reason.RANGE_MOVED, Reason.BACKFILL)
        if ps.reason not in same:
            now = definition_document(ps.step, checked)
        else:  # the definition is as it ran (same fingerprint): its description, tags or (from upstream) columns can differ
            obj = ps.step.payload
            now = {**before, "description": getattr(obj, "description", None), "tags": list(getattr(obj, "tags", ()) or ())}
            if isinstance(obj, m.FeatureView):
                now["columns"] = view_columns(obj, checked)
                if "joined" in before:
                    now["joined"] = joined_versions(obj, checked.project)
            elif isinstance(obj, m.FeatureGroup):
                cols = checked.columns.get(obj.name)
                now["columns"] = dict(cols) if cols is not None else None
        if now is None:
            continue
        change = compare(key, before, now)
        if change is not None:
            out.append(dataclasses.replace(change, downstream=tuple(downstream.get(ps.step.key, ()))))
    return tuple(out)


def _earlier_version(step: Step, stored: dict[str, dict[str, Any]]) -> str | None:
    """The stored key of the latest earlier version of a versioned object (``kind:name@N``)."""
    kind, _, rest = step.key.partition(":")
    name, at, version = rest.rpartition("@")
    if not at or not version.isdigit():
        return None
    earlier = [(int(v), k) for k in stored for n, _, v in [k.partition(":")[2].rpartition("@")] if k.startswith(kind + ":") and n == name and v.isdigit() and int(v) < int(version)]
    return max(earlier)[1] if earlier else None


def _downstream(depends: dict[str, tuple[str, ...]]) -> dict[str, list[str]]:
    readers: dict[str, list[str]] = {}
    for key, deps in depends.items():
        for d in deps:
            readers.setdefault(d, []).append(key)
    out: dict[str, list[str]] = {}
    for key in depends:
        seen: list[str] = []
        stack = list(readers.get(key, ()))
        while stack:
            k = stack.pop(0)
            if k not in seen:
                seen.append(k)
                stack += readers.get(k, [])
        out[key] = [k for k in depends if k in seen]  # in plan order
    return out


def compare(key: str, before: dict[str, Any], now: dict[str, Any]) -> Change | None:
    """The change from document ``before`` to ``now`` of object ``key``; None when they agree."""
    added: list[tuple[str, str]] = []
    removed: list[tuple[str, str]] = []
    retyped: list[tuple[str, str, str]] = []
    old_cols, new_cols = before.get("columns"), now.get("columns")
    if old_cols is not None and new_cols is not None:
        added = [(c, t) for c, t in new_cols.items() if c not in old_cols]
        removed = [(c, t) for c, t in old_cols.items() if c not in new_cols]
        retyped = [(c, old_cols[c], t) for c, t in new_cols.items() if c in old_cols and _family(old_cols[c]) != _family(t) and "UNKNOWN" not in (old_cols[c], t)]
    expressions = sql_changes(before.get("sql"), now.get("sql"), {c for c, _ in added})
    old_def, new_def = dict(before.get("definition") or {}), dict(now.get("definition") or {})
    for d in (old_def, new_def):
        if isinstance(d.get("transform"), dict):
            d["transform"] = {k: v for k, v in d["transform"].items() if k not in ("sql", "inputs")}
    # durations are shown as written (window: 3h); a new version's number is in the object's key
    parameters = [p for p in _parameter_changes(old_def, new_def) if not p[0].endswith("_seconds") and p[0] != "version"]
    if before.get("functions") != now.get("functions"):
        parameters += _parameter_changes(before.get("functions") or {}, now.get("functions") or {}, "functions")
    if before.get("joined") is not None and now.get("joined") is not None and before["joined"] != now["joined"]:
        parameters += _parameter_changes(before["joined"], now["joined"], "joined")  # a group's version: a breaking change
    old_code, new_code = before.get("code") or {}, now.get("code") or {}
    code = [ref for ref in sorted(set(old_code) & set(new_code)) if old_code[ref] != new_code[ref]]
    metadata = []
    if (before.get("description") or None) != (now.get("description") or None):
        metadata.append("description")
    if sorted(before.get("tags") or []) != sorted(now.get("tags") or []):
        metadata.append(f"tags: {', '.join(sorted(before.get('tags') or [])) or '(none)'} -> {', '.join(sorted(now.get('tags') or [])) or '(none)'}")
    if not (added or removed or retyped or expressions or parameters or code or metadata):
        return None
    new_names = {f"column {a}" for a, _ in added}
    substantive = removed or retyped or code or any(c not in new_names for c, _, _ in expressions)
    substantive = substantive or any(not _additive(path, a, b) for path, a, b in parameters)
    if substantive:
        classification = BREAKING
    elif added or expressions or parameters:
        classification = NON_BREAKING
    else:
        classification = METADATA
    return Change(key, classification, tuple(added), tuple(removed), tuple(retyped), tuple(expressions), tuple(parameters), tuple(code), tuple(metadata))


def _family(typ: str) -> str:
    from engine.compiler.semantics import _type_family

    return _type_family(str(typ))


_ADDITIVE_LISTS = {"aggregations", "binnings", "on_demand", "features", "functions", "joined"}


def _additive(path: str, old: Any, new: Any) -> bool:
    """A parameter change that only adds outputs, or leaves stored rows as they are."""
    segments = [s for s in re.split(r"[.\[\]]", path) if s]
    if segments and segments[0] in _HARMLESS:
        return True
    # a new aggregation, binning, on-demand feature, spine feature or function
    return old is None and any(s in _ADDITIVE_LISTS for s in segments[:2])


def _parameter_changes(old: Any, new: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Leaf differences between two canonical definitions, as (dotted path, old, new). Lists of
    named items (aggregations, joins) are matched by name, so reordering is not a change."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            if k == "__type__":
                continue
            sub = f"{path}.{k}" if path else str(k)
            if k not in old:
                out.append((sub, None, new[k]))
            elif k not in new:
                out.append((sub, old[k], None))
            elif old[k] != new[k]:
                out += _parameter_changes(old[k], new[k], sub)
        return out
    if isinstance(old, list) and isinstance(new, list) and old != new and _pairs(old) and _pairs(new):
        return _parameter_changes(dict(old), dict(new), path)  # a mapping kept as (key, value) pairs: params, conf
    if isinstance(old, list) and isinstance(new, list) and old != new:
        named_old, named_new = _by_name(old), _by_name(new)
        if named_old is not None and named_new is not None:
            out = []
            for name in list(named_old) + [n for n in named_new if n not in named_old]:
                sub = f"{path}[{name}]"
                if name not in named_new:
                    out.append((sub, named_old[name], None))
                elif name not in named_old:
                    out.append((sub, None, named_new[name]))
                elif named_old[name] != named_new[name]:
                    out += _parameter_changes(named_old[name], named_new[name], sub)
            return out
        if all(not isinstance(v, (dict, list)) for v in old + new):
            gone = [v for v in old if v not in new]
            came = [v for v in new if v not in old]
            if not gone and came:  # only additions to a plain list (features, on_demand)
                return [(f"{path}[{_text(v)}]", None, v) for v in came]
    return [] if old == new else [(path, old, new)]


def _pairs(items: list) -> bool:
    return all(isinstance(i, list) and len(i) == 2 and isinstance(i[0], str) for i in items)


def _by_name(items: list) -> dict[str, Any] | None:
    """``items`` keyed by their name (an aggregation's output name, a join's group), or None."""
    out: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, dict):
            return None
        name = item.get("name") or item.get("output") or item.get("feature_group") or item.get("column")
        if name is None or str(name) in out:
            return None
        out[str(name)] = item
    return out


def sql_changes(old: str | None, new: str | None, added: set[str]) -> list[tuple[str, str, str]]:
    """Changed SELECT expressions (by output name) and clauses between two normalised queries,
    from their sqlglot syntax trees: (column or clause, old SQL, new SQL). Expressions of columns
    that are new (``added``) are listed too, as additions."""
    if not old or not new or old == new:
        return []
    import sqlglot
    from sqlglot import exp

    try:
        a, b = sqlglot.parse_one(old, dialect="duckdb"), sqlglot.parse_one(new, dialect="duckdb")
    except Exception:
        return [("query", old, new)]
    if not isinstance(a, exp.Select) or not isinstance(b, exp.Select):
        return [("query", old, new)]
    out: list[tuple[str, str, str]] = []
    pa = {e.alias_or_name: e.sql(dialect="duckdb") for e in a.expressions}
    pb = {e.alias_or_name: e.sql(dialect="duckdb") for e in b.expressions}
    for name, text in pb.items():
        if name in pa and pa[name] != text:
            out.append((f"column {name}", pa[name], text))
        elif name not in pa and name in added:
            out.append((f"column {name}", "(none)", text))
    for clause in ("from", "joins", "where", "group", "having", "qualify", "order", "limit", "distinct"):
        ca, cb = a.args.get(clause), b.args.get(clause)
        ta = _clause_sql(ca)
        tb = _clause_sql(cb)
        if ta != tb:
            out.append((clause.upper() if clause != "group" else "GROUP BY", ta or "(none)", tb or "(none)"))
    if a.args.get("with") != b.args.get("with"):
        out.append(("WITH", _clause_sql(a.args.get("with")) or "(none)", _clause_sql(b.args.get("with")) or "(none)"))
    return out


def sql_edits(old: str, new: str, limit: int = 12) -> list[str]:
    """The leaf-level edit script between two SQL fragments, from ``sqlglot.diff`` (Chawathe et
    al.'s algorithm over the syntax trees): ``- 7``, ``+ 14``, ``~ a -> b``. The ancestors every
    edit also updates are left out, so the script reads as what the user changed."""
    import sqlglot
    from sqlglot import diff as tree_diff
    from sqlglot import exp
    from sqlglot.diff import Insert, Remove, Update

    clauses = (("from", exp.From), ("where", exp.Where), ("group by", exp.Group), ("having", exp.Having), ("qualify", exp.Qualify),
               ("order by", exp.Order), ("limit", exp.Limit), ("join", exp.Join), ("left", exp.Join), ("right", exp.Join), ("inner", exp.Join),
               ("full", exp.Join), ("cross", exp.Join), ("asof", exp.Join))

    def parse(text: str):
        head = text.lstrip().lower()
        kind = next((k for word, k in clauses if head.startswith(word)), None)  # a clause, parsed as one
        return sqlglot.parse_one(text, into=kind, dialect="duckdb") if kind else sqlglot.parse_one(text, dialect="duckdb")

    try:
        a, b = parse(old), parse(new)
        edits = tree_diff(a, b, delta_only=True)
    except Exception:  # noqa: BLE001 — a fragment sqlglot cannot read alone: no script, the texts stay
        return []

    atoms = (exp.Column, exp.Literal, exp.Null, exp.Boolean, exp.Star, exp.Var, exp.Table)

    def leaf(node) -> bool:
        if isinstance(node, exp.Identifier):  # a name inside a column or table: that one is reported
            return not isinstance(node.parent, (exp.Column, exp.Table))
        return isinstance(node, atoms) or not any(True for _ in node.iter_expressions())

    def text(node) -> str:
        if isinstance(node, exp.Table) and node.args.get("joins"):  # the table alone; its joins are edits of their own
            node = node.copy()
            node.set("joins", None)
        return node.sql(dialect="duckdb")

    out: list[str] = []
    for edit in edits:
        if isinstance(edit, Remove) and leaf(edit.expression):
            out.append(f"- {text(edit.expression)}")
        elif isinstance(edit, Insert) and leaf(edit.expression):
            out.append(f"+ {text(edit.expression)}")
        elif isinstance(edit, Update) and leaf(edit.source) and leaf(edit.target):
            out.append(f"~ {text(edit.source)} -> {text(edit.target)}")
    return out[:limit] + ([f"… {len(out) - limit} more"] if len(out) > limit else [])


def _clause_sql(node) -> str:
    if node is None:
        return ""
    if isinstance(node, list):
        return " ".join(n.sql(dialect="duckdb") for n in node)
    return node.sql(dialect="duckdb")


__all__ = ["BREAKING", "Change", "METADATA", "NON_BREAKING", "change_report", "compare", "definition_document", "frozen_conflicts", "joined_versions", "sql_changes", "sql_edits", "view_columns"]
