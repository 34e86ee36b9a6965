"""Semantic checks over the typed project: references, cycles, SQL gate, columns and types.

Runs without a database and without importing user code (``engine validate`` is pure). Column
sets flow from sources (declared or sniffed) through each feature group's transform; where a set
is unknown (a Python transform), checks that need it are skipped and happen at run time.
Must not touch DuckDB connections or user data beyond file headers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engine.compiler.references import ReferenceChecks
from engine.errors import ProblemCollector, SpecError, did_you_mean
from engine.model import objects as m
from engine.model.graph import find_cycle, topological_order
from engine.spec.sourcemap import SourceMap

if TYPE_CHECKING:
    from engine.spec.resources import ProjectReads

Columns = dict[str, str]  # column name -> DuckDB type name ("UNKNOWN" where not known statically)

_TIME_TYPES = {"TIMESTAMP", "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE", "DATE", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S"}
_NUMERIC = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "REAL"}


@dataclass
class CheckedProject:
    """The project after semantic checks: SQL inputs resolved, columns inferred where possible."""

    project: m.Project
    columns: dict[str, Columns | None] = field(default_factory=dict)  # by source / feature group name
    order: list[str] = field(default_factory=list)  # feature groups, dependencies first
    source_map: SourceMap | None = field(default=None, compare=False, repr=False)  # to position run-time errors


def project_reads(project: m.Project) -> "ProjectReads":
    """What ``project`` reads, which an output file may never replace (I4): every source's path or
    glob and the files it matched, the spec files, SQL files and the Python modules it names. Used
    by validate's output-path check and again by the predictions writer."""
    from engine.spec.resources import ProjectReads

    root = project.root
    patterns: list[tuple[str, str]] = []
    files: list[tuple[str, Path]] = []
    for name, source in project.sources.items():
        what = f"source '{name}' ({source.path})"
        patterns.append((what, source.path))
        files.extend((what, f) for f in source.resolved_paths)
    for f in project.files:
        files.append((f"spec file {_shown(root, f)}", f))
    modules: dict[str, str] = {}
    for fg in project.feature_groups.values():
        t = fg.transform
        if isinstance(t, m.SqlTransform) and t.sql_file:
            files.append((f"SQL file {t.sql_file} of feature group '{fg.name}'", root / t.sql_file))
        elif isinstance(t, m.PythonTransform):
            modules.setdefault(t.module, f"feature group '{fg.name}'")
    for fn in project.functions.values():
        if not fn.builtin:
            modules.setdefault(fn.module, f"function '{fn.name}'")
    for module, user in modules.items():
        rel = Path(*module.split("."))
        for base in (root, root / "src"):
            for f in ((base / rel).with_suffix(".py"), base / rel / "__init__.py"):
                files.append((f"Python module {module} of {user}", f))
    return ProjectReads(tuple(patterns), tuple(files))


def _shown(root: Path, file: Path) -> str:
    try:
        return Path(file).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(file)


def _type_family(typ: str) -> str:
    t = typ.upper()
    if t in _NUMERIC or t.startswith("DECIMAL"):
        return "number"
    if t in _TIME_TYPES:
        return "time"
    if t in ("VARCHAR", "TEXT", "STRING"):
        return "string"
    return t


class _Checker(ReferenceChecks):
    def __init__(self, project: m.Project, smap: SourceMap):
        self.p = project
        self.smap = smap
        self.problems = ProblemCollector()
        self.columns: dict[str, Columns | None] = {}

    def fail(self, path: tuple, message: str, hint: str | None = None) -> None:
        self.problems.add(self.smap.problem(path, message, hint, value=True))

    def missing_column(self, path: tuple, column: str, where: str, columns: Columns) -> None:
        self.fail(path, f"column '{column}' is not a column of {where}", did_you_mean(column, list(columns)))

    # ---------------------------------------------------------------------------------------------

    def run(self) -> CheckedProject:
        from engine.compiler.fingerprint import memo
        from engine.model.sniff import sniff_columns

        for name, source in self.p.sources.items():
            if source.on_bad_rows == m.BadRows.QUARANTINE and source.format != m.SourceFormat.CSV:
                self.fail(("sources", name, "on_bad_rows"), f"quarantine works for CSV sources; '{name}' is {source.format}", "remove on_bad_rows, or fix the file")
            if not source.resolved_paths:
                # Missing data is allowed at validate time (CI may not have it); apply reports it.
                self.columns[name] = dict(source.columns) or None
            else:
                self.columns[name] = sniff_columns(source, memo)
        self.check_requires()
        groups = {n: self.resolve_inputs(fg) for n, fg in self.p.feature_groups.items()}
        project = dataclasses.replace(self.p, feature_groups=groups)
        edges = {n: [i for i in fg.inputs if i in groups] for n, fg in groups.items()}
        cycle = find_cycle(edges)
        order: list[str] = []
        if cycle:
            self.fail(("feature_groups", cycle[0]), "feature groups form a cycle: " + " -> ".join(cycle), "break the cycle: a feature group cannot read itself, even indirectly")
        else:
            order = topological_order(edges)
            for name in order:
                self.columns[name] = self.feature_group_columns(groups[name])
                self.check_incremental(groups[name])
        for fn in project.functions.values():
            if fn.builtin:
                self.check_builtin(project, fn)
            else:
                self.check_python_module(("functions", fn.name, "python"), fn.module, fn.function)
        for fv in project.feature_views.values():
            self.check_feature_view(project, fv)
        for model in project.models.values():
            self.check_model(project, model)
        for job in project.inference.values():
            self.check_inference(project, job, edges)
        self.problems.raise_if_any(SpecError)
        return CheckedProject(project, self.columns, order, self.smap)

    def resolve_inputs(self, fg: m.FeatureGroup) -> m.FeatureGroup:
        path = ("feature_groups", fg.name)
        tables = self.p.table_names() - {fg.name}
        t = fg.transform
        if isinstance(t, m.SqlTransform):
            from engine.sql.gate import gate_select

            key = path + (("sql_file",) if t.sql_file else ("sql",))
            if not t.sql.strip():
                if not t.sql_file:
                    self.fail(key, "SQL is empty", "write one SELECT over declared sources and feature groups")
                return fg
            gated, messages = gate_select(t.sql, tables)
            for message in messages:
                self.fail(key, message)
            if gated is None:
                return fg
            if fg.name in {tbl.lower() for tbl in gated.tables}:
                self.fail(key, f"feature group '{fg.name}' reads itself")
            return dataclasses.replace(fg, transform=dataclasses.replace(t, inputs=gated.tables))
        if isinstance(t, m.PythonTransform):
            self.check_python_module(path + ("python",), t.module, t.function)
            for i, name in enumerate(t.inputs):
                if name not in tables:
                    self.unknown_input(path + ("inputs", i), name, tables)
            return fg
        if t.input not in tables:
            self.unknown_input(path + ("from",), t.input, tables)
        return fg

    def unknown_input(self, path: tuple, name: str, tables: set[str]) -> None:
        known = ", ".join(sorted(tables)) or "none"
        self.fail(path, f"unknown input '{name}': not a source or feature group (known: {known})", did_you_mean(name, tables))

    # --- columns -------------------------------------------------------------------------------

    def feature_group_columns(self, fg: m.FeatureGroup) -> Columns | None:
        path = ("feature_groups", fg.name)
        t = fg.transform
        out: Columns | None = None
        if isinstance(t, m.SqlTransform):
            out = self.sql_columns(fg, t)
        elif isinstance(t, m.PythonTransform):
            out = None
        else:
            source_cols = self.columns.get(t.input)
            if source_cols is not None:
                out = self.builtin_columns(fg, t, source_cols)
        if out is None:
            return None
        for i, key in enumerate(fg.primary_key):
            if key not in out:
                self.fail(path + ("primary_key", i), f"primary key column '{key}' is not an output column of {fg.id}", did_you_mean(key, list(out)))
        if len(set(fg.primary_key)) != len(fg.primary_key):
            self.fail(path + ("primary_key",), "primary key lists a column twice")
        if fg.event_time:
            if fg.event_time not in out:
                self.fail(path + ("event_time",), f"event time column '{fg.event_time}' is not an output column of {fg.id}", did_you_mean(fg.event_time, list(out)))
            elif out[fg.event_time] not in ("UNKNOWN",) and _type_family(out[fg.event_time]) != "time":
                self.fail(path + ("event_time",), f"event time column '{fg.event_time}' has type {out[fg.event_time]}, expected TIMESTAMP, TIMESTAMPTZ or DATE", "cast it in the SELECT, e.g. CAST(x AS TIMESTAMP)")
        if fg.dedupe_by is not None and fg.dedupe_by not in out:
            self.fail(path + ("dedupe", "latest_by"), f"dedupe column '{fg.dedupe_by}' is not an output column of {fg.id}", did_you_mean(fg.dedupe_by, list(out)))
        for e in fg.expectations:
            if e.column is not None and e.column not in out:
                self.missing_column(e.origin.path + ("column",), e.column, f"{fg.id}", out)
        return out

    def check_incremental(self, fg: m.FeatureGroup) -> None:
        """``incremental`` and ``on_late``: which groups may declare them, and what by_time needs."""
        path = ("feature_groups", fg.name)
        t = fg.transform
        inc = fg.incremental
        if inc is not None and not isinstance(t, m.SqlTransform):
            if isinstance(t, m.AggregationTransform):
                self.fail(path + ("incremental",), "built-in aggregations are incremental by themselves (lookback: the largest window)", "remove incremental")
            else:
                kind = "python" if isinstance(t, m.PythonTransform) else "binning" if isinstance(t, m.BinningTransform) else "pca"
                self.fail(path + ("incremental",), f"{kind} feature groups are always rebuilt from their full inputs", "remove incremental")
            return
        mode = fg.incremental_mode
        if fg.on_late is not None and (mode is None or mode.kind is not m.IncrementalKind.BY_TIME):
            self.fail(path + ("on_late",), "on_late is for by_time feature groups (incremental: {kind: by_time}) and built-in aggregations", "remove on_late")
        if inc is not None and inc.kind is m.IncrementalKind.APPEND:
            for key in ("lookback", "time_column"):
                if getattr(inc, key):
                    self.fail(path + ("incremental", key), f"{key} is for kind: by_time; an append group processes each new input row on its own", f"remove {key}, or use kind: by_time")
        if inc is None or inc.kind is not m.IncrementalKind.BY_TIME:
            return
        if not fg.event_time:
            self.fail(path + ("incremental", "kind"), "by_time needs the group's event_time: rows are recomputed from a time on", "add event_time: <timestamp column>, or use kind: append")
        if len(t.inputs) != 1:
            self.fail(path + ("incremental", "kind"), f"by_time reads exactly one input; this SQL reads {len(t.inputs)} ({', '.join(t.inputs) or 'none'})", "use kind: append, or no incremental")
            return
        column = inc.time_column or fg.event_time
        if not column:
            return
        src = self.columns.get(t.inputs[0])
        key = path + ("incremental", "time_column") if inc.time_column else path + ("event_time",)
        where = f"input '{t.inputs[0]}'"
        if src is not None and column not in src:
            hint = did_you_mean(column, list(src)) or f"declare incremental.time_column: the time column of {where}"
            self.fail(key, f"time column '{column}' is not a column of {where} (by_time filters the input on it)", hint)
        elif src is not None and src[column] != "UNKNOWN" and _type_family(src[column]) != "time":
            self.fail(key, f"time column '{column}' of {where} has type {src[column]}, expected TIMESTAMP, TIMESTAMPTZ or DATE")

    def sql_columns(self, fg: m.FeatureGroup, t: m.SqlTransform) -> Columns | None:
        from engine.sql.columns import infer_output_columns
        from engine.sql.gate import gate_select

        schemas = {name: self.columns.get(name) for name in t.inputs}
        if any(cols is None for cols in schemas.values()):
            return None
        gated, messages = gate_select(t.sql, set(schemas))
        if gated is None or messages:
            return None
        columns, problems = infer_output_columns(gated, {k: v for k, v in schemas.items() if v is not None})
        key = ("feature_groups", fg.name, "sql_file" if t.sql_file else "sql")
        for message in problems:
            self.fail(key, message)
        return columns

    def builtin_columns(self, fg: m.FeatureGroup, t, src: Columns) -> Columns | None:
        path = ("feature_groups", fg.name)
        where = f"input '{t.input}'"
        for i, key in enumerate(fg.primary_key):
            if key not in src:
                self.fail(path + ("primary_key", i), f"primary key column '{key}' is not a column of {where}", did_you_mean(key, list(src)))
        if fg.event_time and fg.event_time not in src:
            self.fail(path + ("event_time",), f"event time column '{fg.event_time}' is not a column of {where}", did_you_mean(fg.event_time, list(src)))
        keys: Columns = {k: src.get(k, "UNKNOWN") for k in fg.primary_key}
        if fg.event_time:
            keys[fg.event_time] = src.get(fg.event_time, "UNKNOWN")
        if isinstance(t, m.AggregationTransform):
            if not fg.event_time:
                self.fail(path, "aggregations need an event_time: windows are measured on event time", "add event_time: <timestamp column>")
            out = dict(keys)
            for i, a in enumerate(t.aggregations):
                if a.column not in src:
                    self.missing_column(path + ("aggregations", i, "column"), a.column, where, src)
                typ = src.get(a.column, "UNKNOWN")
                if a.function.numeric_input and typ != "UNKNOWN" and _type_family(typ) != "number":
                    self.fail(path + ("aggregations", i, "function"), f"{a.function.value} needs a numeric column; '{a.column}' is {typ}")
                if a.name in out:
                    self.fail(path + ("aggregations", i), f"output column '{a.name}' is produced twice", "give the aggregation a distinct name")
                out[a.name] = a.function.output_type(typ)
            return out
        if isinstance(t, m.BinningTransform):
            out = dict(src)
            for i, b in enumerate(t.bins):
                if b.column not in src:
                    self.missing_column(path + ("binning", i, "column"), b.column, where, src)
                if b.edges is not None and list(b.edges) != sorted(set(b.edges)):
                    self.fail(path + ("binning", i, "edges"), "bin edges must be strictly increasing")
                n_bins = (len(b.edges) + 1) if b.edges is not None else (b.quantiles or 0)
                if b.labels is not None and len(b.labels) != n_bins:
                    self.fail(path + ("binning", i, "labels"), f"{len(b.labels)} labels for {n_bins} bins", "give one label per bin (edges + 1)")
                if b.name in out:
                    self.fail(path + ("binning", i), f"output column '{b.name}' already exists", "set name: to a new column name")
                out[b.name] = "VARCHAR" if b.labels else "BIGINT"
            return out
        pca = t.pca
        out = dict(keys)
        for i, c in enumerate(pca.columns):
            if c not in src:
                self.missing_column(path + ("pca", "columns", i), c, where, src)
        for i, c in enumerate(pca.keep):
            if c not in src:
                self.missing_column(path + ("pca", "keep", i), c, where, src)
            out[c] = src.get(c, "UNKNOWN")
        if pca.n_components > len(pca.columns):
            self.fail(path + ("pca", "n_components"), f"n_components {pca.n_components} is more than the {len(pca.columns)} input columns")
        for k in range(1, pca.n_components + 1):
            out[f"{pca.prefix}{k}"] = "DOUBLE"
        return out

    # --- inference ---------------------------------------------------------------------------

    def check_inference(self, project: m.Project, job: m.InferenceJob, edges: dict) -> None:
        from engine.model.graph import ancestors

        path = ("inference", job.name)
        model_name = job.model.partition("@")[0]
        model = project.models.get(model_name)
        if model is None:
            self.fail(path + ("model",), f"unknown model '{model_name}' (known: {', '.join(sorted(project.models)) or 'none'})", did_you_mean(model_name, list(project.models)))
            return
        fv = project.feature_views.get(model.feature_view)
        if fv is None:
            return
        if job.range is not None and job.range[0] >= job.range[1]:
            self.fail(path + ("range",), f"empty range: start {job.range[0]} is not before end {job.range[1]}", "the range is [start, end): start inclusive, end exclusive")
        if job.output_path is not None:
            self.check_output_path(path + ("output", "path"), job.output_path)
        if job.source is not None:
            if job.source not in project.sources:
                self.fail(path + ("source",), f"unknown source '{job.source}'", did_you_mean(job.source, list(project.sources)))
            elif fv.spine in edges and job.source not in ancestors({**edges, **{n: list(g.inputs) for n, g in project.feature_groups.items()}}, [fv.spine]):
                self.fail(path + ("source",), f"source '{job.source}' does not feed the spine '{fv.spine}' of feature view '{fv.name}'", "name the source whose new rows become spine rows")
        if job.mode == m.InferenceMode.ONLINE:
            joined_inputs = {c for j in fv.joins for c in j.left_on}
            produced = {j.prefix + c for j in fv.joins for c in (j.select if j.select is not None else (self.columns.get(j.feature_group) or {}))}
            fn_inputs = {c for f in fv.on_demand if f in project.functions for c in project.functions[f].inputs}
            needed = sorted((set(fv.features) | joined_inputs | (fn_inputs - produced)) - set(job.keys) - set(job.request))
            if needed:
                self.fail(path, f"an online request must carry {', '.join(needed)} (used by feature view '{fv.name}')", "add them to keys: or request:")

    def check_output_path(self, path: tuple, text: str) -> None:
        from engine.spec.resources import check_output_path

        checked = check_output_path(self.p.root, text, project_reads(self.p))
        if checked.problem is not None:
            self.fail(path, checked.problem, checked.hint)

    # --- models ------------------------------------------------------------------------------

    def check_model(self, project: m.Project, model: m.Model) -> None:
        path = ("models", model.name)
        fv = project.feature_views.get(model.feature_view)
        if fv is None:
            self.fail(path + ("feature_view",), f"unknown feature view '{model.feature_view}' (known: {', '.join(sorted(project.feature_views)) or 'none'})", did_you_mean(model.feature_view, list(project.feature_views)))
        else:
            if model.feature_view_version is not None and model.feature_view_version != fv.version:
                self.fail(path + ("feature_view",), f"feature view '{fv.name}' is declared at version {fv.version}, not {model.feature_view_version}")
            if len(fv.labels) != 1:
                self.fail(path + ("feature_view",), f"a model trains on exactly one label; feature view '{fv.name}' has {len(fv.labels)} ({', '.join(fv.labels) or 'none'})", "set label: <column> on the feature view")
            spine = project.feature_groups.get(fv.spine)
            if model.split.by == m.SplitKind.TIME and spine is not None and not spine.event_time:
                self.fail(path + ("split", "by"), f"a time split needs the spine's event time, and feature group '{fv.spine}' has none", "use split: {by: random, test_size: 0.2} or give the spine an event_time")
        from engine.model.catalogue import check_metrics, check_model_params
        from engine.model.catalogue import check_split

        class_weight = dict(model.class_weight) if isinstance(model.class_weight, tuple) else model.class_weight
        problems = check_model_params(model.estimator, dict(model.params), class_weight)
        for sub, message, hint in problems:
            self.fail(path + tuple(sub), message, hint)
        if not any(message.startswith("unknown estimator") for _, message, _ in problems):
            for sub, message, hint in check_metrics(model.estimator, list(model.metrics), dict(model.params)):
                self.fail(path + tuple(sub), message, hint)
            self.check_gates(path, model)
            self.check_threshold(path, model)
        s = model.split
        for sub, message, hint in check_split(s.by, s.test_from, s.validation_from, s.test_size, s.validation_size, s.test_until):
            self.fail(path + ("split",) + tuple(sub), message, hint)

    def check_threshold(self, path: tuple, model: m.Model) -> None:
        """A decision threshold needs a classifier with predicted probabilities; tuning it, a
        validation split to tune on."""
        from engine.model.catalogue import estimator_entry, supports_proba

        if model.threshold is None and model.threshold_tune is None:
            return
        entry = estimator_entry(model.estimator)
        if entry is None:
            return  # reported by check_model_params
        if entry["task"] != "classifier" or not supports_proba(model.estimator, dict(model.params)):
            self.fail(path + ("threshold",), f"a decision threshold applies to classifiers with predicted probabilities; {model.estimator} {'is a regressor' if entry['task'] != 'classifier' else 'gives none'}", "remove threshold")
        elif model.threshold_tune is not None and model.split.validation_size is None and model.split.validation_from is None:
            self.fail(path + ("threshold", "tune"), f"tuning the threshold needs a validation split, and model '{model.name}' has none", "add validation_size (or validation_from) to its split, or give the threshold as a number")

    def check_gates(self, path: tuple, model: m.Model) -> None:
        """A gate names a metric the model computes (on a split it has: validation needs
        ``validation_size`` or ``validation_from``)."""
        from engine.model.catalogue import computed_metrics, metric_kind

        computed = computed_metrics(model.estimator, list(model.metrics), dict(model.params))
        has_validation = model.split.validation_size is not None or model.split.validation_from is not None
        for gate in model.gates:
            for i, c in enumerate(gate.conditions):
                where = path + ("aliases", gate.alias, "when") + ((i,) if len(gate.conditions) > 1 else ())
                if c.metric not in computed:
                    listed = "its metrics" if model.metrics else "its task's default metrics"
                    hint = did_you_mean(c.metric, list(computed)) or (f"list it in models.{model.name}.metrics" if metric_kind(c.metric) else None)
                    self.fail(where, f"the gate of alias '{gate.alias}' needs {c.metric!r}, which model '{model.name}' does not compute ({listed}: {', '.join(computed) or 'none'})", hint)
                elif c.split == "validation" and not has_validation:
                    self.fail(where, f"the gate of alias '{gate.alias}' reads the validation split, and model '{model.name}' has none", "add validation_size (or validation_from) to its split, or gate on the test split")

    # --- feature views (columns checked where known; executed by the training pipeline) ----------

    def check_feature_view(self, project: m.Project, fv: m.FeatureView) -> None:
        path = ("feature_views", fv.name)
        groups = project.feature_groups
        if fv.spine not in groups:
            self.fail(path + ("spine",), f"unknown feature group '{fv.spine}' (known: {', '.join(sorted(groups)) or 'none'})", did_you_mean(fv.spine, list(groups)))
            return
        spine = groups[fv.spine]
        spine_cols = self.columns.get(fv.spine)
        if fv.filter is not None:
            from engine.sql.gate import gate_filter

            for message in gate_filter(fv.filter, spine_cols)[1]:
                self.fail(path + ("filter",), message)
        produced: dict[str, str] = {}
        if spine_cols is not None:
            for i, label in enumerate(fv.labels):
                if label not in spine_cols:
                    self.fail(path + ("label",), f"label '{label}' is not a column of feature group '{fv.spine}'", did_you_mean(label, list(spine_cols)))
            for i, col in enumerate(fv.features):
                if col not in spine_cols:
                    self.fail(path + ("features", i), f"feature '{col}' is not a column of feature group '{fv.spine}'", did_you_mean(col, list(spine_cols)))
        timed = [j for j in fv.joins if j.feature_group in groups and groups[j.feature_group].event_time]
        if not spine.event_time and timed:
            self.fail(path + ("spine",), f"feature group '{fv.spine}' has no event time, so '{timed[0].feature_group}' cannot be joined point-in-time", "give the spine an event_time")
        seen: dict[str, str] = {}
        for i, col in enumerate(fv.features):
            if col in seen:
                self.fail(path + ("features", i), f"feature '{col}' is listed twice")
            seen[col] = "spine"
            if col in fv.labels:
                self.fail(path + ("features", i), f"label '{col}' is also used as a feature", "a label cannot be a feature of its own model")
            produced[col] = fv.spine
        for i, join in enumerate(fv.joins):
            jpath = path + ("join", i)
            if join.feature_group not in groups:
                self.fail(jpath + ("feature_group",), f"unknown feature group '{join.feature_group}' (known: {', '.join(sorted(groups)) or 'none'})", did_you_mean(join.feature_group, list(groups)))
                continue
            target = groups[join.feature_group]
            if join.version is not None and join.version != target.version:
                self.fail(jpath + ("feature_group",), f"feature group '{join.feature_group}' is declared at version {target.version}, not {join.version}")
            if len(join.left_on) != len(join.right_on) or not join.left_on:
                self.fail(jpath, "join keys: give on: [...] or left_on/right_on of the same length")
            if join.exclusive and not target.event_time:
                self.fail(jpath + ("as_of",), f"as_of: exclusive needs event times, and feature group '{join.feature_group}' has none (it is joined on its keys alone)",
                          f"remove as_of, or give feature group '{join.feature_group}' an event_time")
                continue
            tcols = self.columns.get(join.feature_group)
            for k, (lk, rk) in enumerate(zip(join.left_on, join.right_on)):
                if spine_cols is not None and lk not in spine_cols:
                    self.fail(jpath + ("on" if join.left_on == join.right_on else "left_on", k), f"join key '{lk}' is not a column of feature group '{fv.spine}'", did_you_mean(lk, list(spine_cols)))
                if tcols is not None and rk not in tcols:
                    self.fail(jpath + ("on" if join.left_on == join.right_on else "right_on", k), f"join key '{rk}' is not a column of feature group '{join.feature_group}'", did_you_mean(rk, list(tcols)))
                if spine_cols is not None and tcols is not None and lk in spine_cols and rk in tcols:
                    a, b = spine_cols[lk], tcols[rk]
                    if "UNKNOWN" not in (a, b) and _type_family(a) != _type_family(b):
                        self.fail(jpath, f"join key types differ: {fv.spine}.{lk} is {a}, {join.feature_group}.{rk} is {b}", "cast one side in its feature group")
            if tcols is None:
                continue
            skip = set(join.right_on) | ({target.event_time} if target.event_time else set())
            chosen = list(join.select) if join.select is not None else [c for c in tcols if c not in skip and c not in join.exclude]
            for k, col in enumerate(join.select or ()):
                if col not in tcols:
                    self.fail(jpath + ("select", k), f"column '{col}' is not a column of feature group '{join.feature_group}'", did_you_mean(col, list(tcols)))
            for k, col in enumerate(join.exclude):
                if col not in tcols:
                    self.fail(jpath + ("except", k), f"column '{col}' is not a column of feature group '{join.feature_group}'", did_you_mean(col, list(tcols)))
            for col in chosen:
                out_name = join.prefix + col
                if out_name in produced or (spine_cols is not None and out_name in (set(fv.labels) | {h for h in fv.helpers if h in spine_cols})):
                    self.fail(jpath, f"column '{out_name}' from feature group '{join.feature_group}' clashes with a column from '{produced.get(out_name, fv.spine)}'", f"add prefix: {join.feature_group}_")
                    break
                produced[out_name] = join.feature_group
        available = set(produced) | set(spine_cols or ()) if spine_cols is not None else None
        if available is not None and all(self.columns.get(j.feature_group) is not None for j in fv.joins if j.feature_group in groups):
            for i, col in enumerate(fv.helpers):  # a spine column, or a column a join brings
                if col not in available:
                    self.fail(path + ("helpers", i), f"helper column '{col}' is not a column of feature group '{fv.spine}' nor of a joined group", did_you_mean(col, sorted(available)))
        self.check_model_inputs(project, fv, path, spine_cols)
        for i, name in enumerate(fv.on_demand):
            fn = project.functions.get(name)
            if fn is not None and available is not None and all(self.columns.get(j.feature_group) is not None for j in fv.joins):
                for k, col in enumerate(fn.inputs):
                    if col not in available:
                        self.fail(path + ("on_demand", i), f"function '{name}' needs column '{col}', which the feature view does not have", did_you_mean(col, list(available)))
            if name not in project.functions:
                self.fail(path + ("on_demand", i), f"unknown function '{name}' (known: {', '.join(sorted(project.functions)) or 'none'})", did_you_mean(name, list(project.functions)))


    def check_model_inputs(self, project: m.Project, fv: m.FeatureView, path: tuple, spine_cols) -> None:
        """What the view feeds its models must become numbers: a timestamp or date feature cannot
        (training would stop on it, exit 4, after every feature was built); a transform must name
        a feature and suit its type. Checked where the columns' types are known."""
        if not any(model.feature_view == fv.name for model in project.models.values()):
            return  # no model trains on it: its rows and vectors may hold any type
        if spine_cols is None or any(self.columns.get(j.feature_group) is None for j in fv.joins if j.feature_group in project.feature_groups):
            return
        features: dict[str, tuple[str, tuple]] = {}  # name -> (type, where it comes from)
        for i, col in enumerate(fv.features):
            if col in spine_cols:
                features[col] = (spine_cols[col], path + ("features", i))
        groups = project.feature_groups
        for i, join in enumerate(fv.joins):
            target = groups.get(join.feature_group)
            tcols = self.columns.get(join.feature_group)
            if target is None or tcols is None:
                continue
            skip = set(join.right_on) | ({target.event_time} if target.event_time else set())
            for k, col in enumerate(list(join.select) if join.select is not None else [c for c in tcols if c not in skip and c not in join.exclude]):
                if col in tcols:
                    where = path + ("join", i) + (("select", k) if join.select is not None else ())
                    features.setdefault(join.prefix + col, (tcols[col], where))
        for helper in fv.helpers:  # a joined helper is returned with the vector, never a feature
            features.pop(helper, None)
        returns = {"int64": "BIGINT", "float64": "DOUBLE", "string": "VARCHAR", "bool": "BOOLEAN", "timestamp": "TIMESTAMP"}
        for i, name in enumerate(fv.on_demand):
            fn = project.functions.get(name)
            if fn is not None:
                features[name] = (returns.get(fn.returns, "UNKNOWN"), path + ("on_demand", i))
        reported: set[tuple] = set()
        for model in (mo for mo in project.models.values() if mo.feature_view == fv.name):
            mpath = model.origin.path
            if model.features and model.exclude:
                self.fail(mpath + ("exclude",), "features and exclude are alternatives: name the features the model uses, or those it does not", "keep one of them")
            for key, names in (("features", model.features), ("exclude", model.exclude)):
                for i, col in enumerate(names):
                    if col not in features:
                        self.fail(mpath + (key, i), f"'{col}' is not a feature of feature view '{fv.name}'", did_you_mean(col, list(features)))
            inputs = [c for c in features if (c in model.features if model.features else c not in model.exclude)]
            for name in inputs:
                typ, where = features[name]
                if model.features:
                    where = mpath + ("features", model.features.index(name))
                if typ != "UNKNOWN" and _type_family(typ) == "time" and where not in reported:
                    reported.add(where)
                    self.fail(where, f"feature '{name}' is a {typ}, and a model takes numbers",
                              "derive a number from it (an on-demand function: hour, days since ...), leave it out of the model (exclude: [...]), or keep it out of the view (except: [...] on a join)")
            for column, spec in model.transforms:
                tpath = mpath + ("transforms", column)
                if column not in inputs:
                    self.fail(tpath, f"transform for '{column}', which is not an input of model '{model.name}'", did_you_mean(column, inputs))
                    continue
                self.check_transform_type(tpath, column, spec, features[column][0])
        for column, spec in fv.transforms:
            tpath = path + ("transforms", column)
            if column not in features:
                self.fail(tpath, f"transform for '{column}', which is not a feature of feature view '{fv.name}'", did_you_mean(column, list(features)))
                continue
            self.check_transform_type(tpath, column, spec, features[column][0])

    def check_transform_type(self, tpath: tuple, column: str, spec, typ: str) -> None:
        """A numeric transformer (or any chain: chains are numeric) on a column that is not a number."""
        numeric_only = {"standard_scaler", "min_max_scaler", "robust_scaler", "impute_mean", "impute_median", "impute_constant", "log1p"}
        if not isinstance(spec, str):
            for i, (kind, params) in enumerate(spec):
                if kind == "clip" and params[0] >= params[1]:
                    self.fail(tpath + (i, "clip"), f"clip bounds must be increasing, got [{params[0]:g}, {params[1]:g}]", "write [LOW, HIGH]")
        numeric = not isinstance(spec, str) or spec in numeric_only
        if numeric and typ != "UNKNOWN" and _type_family(typ) != "number":
            what = "a chain of numeric steps" if not isinstance(spec, str) else spec
            hint = "use one_hot_encoder or label_encoder for text" if _type_family(typ) == "string" else None
            self.fail(tpath, f"{what} applies to numbers, and '{column}' is a {typ}", hint)


def check_project(project: m.Project, source_map: SourceMap) -> CheckedProject:
    """Run every semantic check; raise one SpecError with all problems, sorted by position."""
    return _Checker(project, source_map).run()
