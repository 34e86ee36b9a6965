"""Build the typed model (frozen dataclasses) from a schema-valid raw document.

The one place raw dicts are read. Assumes the JSON Schema already passed, so shapes are right.
Owns no I/O: the files a spec names (source paths, SQL files) are resolved and read by
``engine.spec.resources`` and passed in. No DuckDB, no pandas, no user imports.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from engine.errors import ProblemCollector, SpecError, did_you_mean
from engine.model import objects as m
from engine.model.formats import FORMATS
from engine.spec.resources import ProjectFiles
from engine.spec.sourcemap import SourceMap

_DURATION = re.compile(r"^([1-9][0-9]{0,8})(s|m|h|d|w)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_seconds(text: str) -> int:
    """Seconds in a duration such as ``3h``.

    >>> duration_seconds("3h"), duration_seconds("7d"), duration_seconds("30m")
    (10800, 604800, 1800)
    """
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r}")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def split_reference(ref: str) -> tuple[str, str | None]:
    """Split ``name@qualifier``.

    >>> split_reference("weather@2"), split_reference("weather")
    (('weather', '2'), ('weather', None))
    """
    name, _, qualifier = ref.partition("@")
    return name, (qualifier or None)


class _Builder:
    def __init__(self, data: dict[str, Any], source_map: SourceMap, root: Path, spec_files: tuple[Path, ...], files: ProjectFiles):
        self.data = data
        self.smap = source_map
        self.root = root
        self.spec_files = spec_files
        self.files = files
        self.problems = ProblemCollector()

    def fail(self, path: tuple, message: str, hint: str | None = None, *, value: bool = True) -> None:
        self.problems.add(self.smap.problem(path, message, hint, value=value))

    # --- objects -------------------------------------------------------------------------------

    def section(self, name: str) -> dict[str, Any]:
        value = self.data.get(name) or {}
        return value if isinstance(value, dict) else {}

    def build(self) -> m.Project:
        sources = {n: _tagged(self.source(n, d), d) for n, d in self.section("sources").items()}
        groups = {n: _tagged(self.feature_group(n, d), d) for n, d in self.section("feature_groups").items()}
        functions = {n: _tagged(self.function(n, d), d) for n, d in self.section("functions").items()}
        views = {n: _tagged(self.feature_view(n, d), d) for n, d in self.section("feature_views").items()}
        models = {n: _tagged(self.model(n, d), d) for n, d in self.section("models").items()}
        inference = {n: _tagged(self.inference(n, d), d) for n, d in self.section("inference").items()}
        backend = self.backend_settings()
        self.problems.raise_if_any(SpecError)
        return m.Project(
            name=str(self.data.get("project", self.root.name)),
            root=self.root,
            files=self.spec_files,
            sources=sources,
            feature_groups=groups,
            functions=functions,
            feature_views=views,
            models=models,
            inference=inference,
            retention_seconds=duration_seconds((self.data.get("storage") or {}).get("retention", "7d")),
            versioning=str(self.data.get("versioning") or "manual"),
            registry=m.RegistrySettings(**(self.data.get("registry") or {})),
            backend=backend,
            requires=tuple(
                m.Requirement(str(r["package"]), r.get("version"), m.Origin(("requires", i)))
                for i, r in enumerate(self.data.get("requires") or [])
                if isinstance(r, dict) and r.get("package")
            ),
        )

    def backend_settings(self) -> m.BackendSettings:
        d = self.data.get("backend") or {}
        kind = d.get("kind")
        if kind != "spark":
            for key in ("master", "conf"):
                if key in d:
                    self.fail(("backend", key), f"backend.{key} is a Spark setting, but backend.kind is {kind}", "remove it, or set kind: spark")
        conf = tuple(sorted((str(k), _conf_text(v)) for k, v in (d.get("conf") or {}).items()))
        return m.BackendSettings(kind=kind, master=d.get("master"), conf=conf)

    def source(self, name: str, d: dict[str, Any]) -> m.Source:
        path = ("sources", name)
        csv = d.get("csv") or {}
        if d["format"] not in FORMATS:  # also checked by the schema when validate passes it the registry
            self.fail(path + ("format",), f"unknown source format '{d['format']}' (known: {', '.join(FORMATS)})", did_you_mean(d["format"], list(FORMATS)))
        return m.Source(
            name=name,
            format=d["format"],
            path=d["path"],
            resolved_paths=self.files.source_paths.get(name, ()),
            timezone=d.get("timezone", "UTC"),
            columns=tuple((str(k), str(v).upper()) for k, v in (d.get("columns") or {}).items()),
            timestamp_format=self.timestamp_format(path, d),
            csv=m.CsvOptions(delimiter=csv.get("delimiter", ","), header=csv.get("header", True), max_line_size=csv.get("max_line_size"),
                             null_strings=tuple(csv["null_strings"]) if "null_strings" in csv else None),
            allow_empty=bool(d.get("allow_empty", False)),
            on_bad_rows=m.BadRows(d.get("on_bad_rows", "fail")),
            max_bad_rows=int(d.get("max_bad_rows", 100)),
            description=d.get("description"),
            origin=m.Origin(path),
        )

    def timestamp_format(self, path: tuple, d: dict[str, Any]) -> str | None:
        fmt = d.get("timestamp_format")
        if fmt is None:
            return None
        if d["format"] == m.SourceFormat.PARQUET:
            self.fail(path + ("timestamp_format",), "parquet columns carry their own timestamp type (with or without a time zone, one per column); timestamp_format is for csv and jsonl sources", value=False)
        elif d["format"] not in (m.SourceFormat.CSV, m.SourceFormat.JSONL):
            self.fail(path + ("timestamp_format",), f"timestamp_format is for csv and jsonl sources, not '{d['format']}'", value=False)
        elif "%Z" in fmt:
            self.fail(path + ("timestamp_format",), "zone names (%Z) are not read reliably by the CSV and JSON readers (the name is dropped)", "give the values a numeric offset and use %z, e.g. '%Y-%m-%d %H:%M:%S%z'")
        return fmt

    def feature_group(self, name: str, d: dict[str, Any]) -> m.FeatureGroup:
        path = ("feature_groups", name)
        return m.FeatureGroup(
            name=name,
            version=int(d.get("version", 1)),
            primary_key=tuple(d["primary_key"]),
            transform=self.transform(path, d),
            event_time=d.get("event_time"),
            online=bool(d.get("online", True)),
            expectations=tuple(self.expectation(path + ("expectations", i), e) for i, e in enumerate(d.get("expectations") or [])),
            dedupe=m.Dedupe.LATEST if isinstance(d.get("dedupe"), dict) else m.Dedupe(d.get("dedupe", "error")),
            dedupe_by=d["dedupe"]["latest_by"] if isinstance(d.get("dedupe"), dict) else None,
            non_finite=m.NonFinite(d.get("non_finite", "reject")),
            incremental=self.incremental(d.get("incremental")),
            on_late=m.OnLate(d["on_late"]) if "on_late" in d else None,
            description=d.get("description"),
            origin=m.Origin(path),
        )

    @staticmethod
    def incremental(d: dict[str, Any] | None) -> m.Incremental | None:
        if not d:
            return None
        lookback = d.get("lookback")
        return m.Incremental(
            kind=m.IncrementalKind(d["kind"]),
            lookback=lookback,
            lookback_seconds=duration_seconds(lookback) if lookback else 0,
            time_column=d.get("time_column"),
        )

    def transform(self, path: tuple, d: dict[str, Any]) -> m.Transform:
        if "sql" in d:
            return m.SqlTransform(sql=d["sql"])
        if "sql_file" in d:
            return m.SqlTransform(sql=self.files.sql_texts.get(path[-1], ""), sql_file=d["sql_file"])
        if "python" in d:
            module, _, function = d["python"].partition(":")
            return m.PythonTransform(module=module, function=function, inputs=tuple(d.get("inputs") or ()))
        source = d["from"]
        if "aggregations" in d:
            aggs = []
            for a in d["aggregations"]:
                fn = m.AggFunction(a["function"])
                default = f"{a['column']}_{fn.value}_{a['window']}"
                aggs.append(m.Aggregation(a["column"], fn, a["window"], duration_seconds(a["window"]), a.get("name", default)))
            return m.AggregationTransform(input=source, aggregations=tuple(aggs))
        if "binning" in d:
            bins = []
            for b in d["binning"]:
                bins.append(
                    m.Binning(
                        column=b["column"],
                        name=b.get("name", f"{b['column']}_bin"),
                        edges=tuple(float(x) for x in b["edges"]) if "edges" in b else None,
                        quantiles=b.get("quantiles"),
                        labels=tuple(b["labels"]) if "labels" in b else None,
                    )
                )
            return m.BinningTransform(input=source, bins=tuple(bins))
        p = d["pca"]
        return m.PcaTransform(
            input=source,
            pca=m.Pca(tuple(p["columns"]), int(p["n_components"]), p.get("prefix", "pc_"), tuple(p.get("keep") or ())),
        )

    def expectation(self, path: tuple, e: dict[str, Any]) -> m.Expectation:
        origin = m.Origin(path)
        if "row_count" in e:
            rc = e["row_count"] or {}
            return m.Expectation(m.ExpectationKind.ROW_COUNT, None, rc.get("min"), rc.get("max"), origin=origin)
        column = e.get("column")
        if "not_null" in e:
            return m.Expectation(m.ExpectationKind.NOT_NULL, column, origin=origin)
        if "unique" in e:
            return m.Expectation(m.ExpectationKind.UNIQUE, column, origin=origin)
        if "between" in e:
            low, high = e["between"]
            return m.Expectation(m.ExpectationKind.BETWEEN, column, low, high, origin=origin)
        if "in_set" in e:
            return m.Expectation(m.ExpectationKind.IN_SET, column, values=tuple(e["in_set"]), origin=origin)
        if "regex" in e:
            try:
                re.compile(e["regex"])
            except re.error as exc:
                self.fail(path + ("regex",), f"invalid regular expression: {exc}")
            return m.Expectation(m.ExpectationKind.REGEX, column, pattern=e["regex"], origin=origin)
        raise AssertionError("schema guarantees one expectation kind")

    def function(self, name: str, d: dict[str, Any]) -> m.Function:
        for kind in ("binning", "pca"):
            if kind in d:  # a built-in: the group's stored binning or PCA, at request time
                group, _, column = str(d[kind]).partition(".")
                returns = d.get("returns") or ("float64" if kind == "pca" else "string" if self._labelled_bin(group, column) else "int64")
                return m.Function(name, "", "", tuple(d.get("inputs") or ()), returns, d.get("description"),
                                  origin=m.Origin(("functions", name)), builtin=(kind, group, column))
        module, _, function = d["python"].partition(":")
        if "returns" not in d:
            self.fail(("functions", name), "missing required key 'returns'", "declare the type the function returns: int64, float64, string, bool or timestamp", value=False)
        return m.Function(name, module, function, tuple(d.get("inputs") or ()), d.get("returns", "float64"), d.get("description"), origin=m.Origin(("functions", name)))

    def _labelled_bin(self, group: str, column: str) -> bool:
        bins = (self.section("feature_groups").get(group) or {}).get("binning") or []
        return any(isinstance(b, dict) and b.get("name", f"{b.get('column')}_bin") == column and b.get("labels") for b in bins)

    def feature_view(self, name: str, d: dict[str, Any]) -> m.FeatureView:
        path = ("feature_views", name)
        joins = []
        for i, j in enumerate(d.get("join") or []):
            fg, qualifier = split_reference(j["feature_group"])
            version = j.get("version", int(qualifier) if qualifier else None)
            left = tuple(j.get("on") or j.get("left_on") or ())
            right = tuple(j.get("on") or j.get("right_on") or ())
            ttl = j.get("ttl")
            joins.append(
                m.Join(
                    feature_group=fg,
                    version=version,
                    left_on=left,
                    right_on=right,
                    prefix=j.get("prefix", ""),
                    select=tuple(j["select"]) if "select" in j else None,
                    exclude=tuple(j.get("except") or ()),
                    ttl=ttl,
                    ttl_seconds=duration_seconds(ttl) if ttl else None,
                    exclusive=j.get("as_of") == "exclusive",
                    origin=m.Origin(path + ("join", i)),
                )
            )
        label = d.get("label")
        labels = tuple(label) if isinstance(label, list) else ((label,) if label else ())
        return m.FeatureView(
            name=name,
            version=int(d.get("version", 1)),
            spine=d["spine"],
            labels=labels,
            features=tuple(d.get("features") or ()),
            helpers=tuple(d.get("helpers") or ()),
            filter=d.get("filter"),
            joins=tuple(joins),
            on_demand=tuple(d.get("on_demand") or ()),
            transforms=transform_specs(d.get("transforms")),
            description=d.get("description"),
            origin=m.Origin(path),
        )

    def model(self, name: str, d: dict[str, Any]) -> m.Model:
        fv, qualifier = split_reference(d["feature_view"])
        s = d.get("split") or {"by": "random", "test_size": 0.2}
        split = m.Split(
            by=m.SplitKind(s["by"]),
            test_from=s.get("test_from"),
            validation_from=s.get("validation_from"),
            test_until=s.get("test_until"),
            test_size=s.get("test_size"),
            validation_size=s.get("validation_size"),
            seed=int(s.get("seed", 0)),
        )
        return m.Model(
            name=name,
            feature_view=fv,
            feature_view_version=int(qualifier) if qualifier else None,
            estimator=d["estimator"],
            params=tuple(sorted((d.get("params") or {}).items())),
            split=split,
            metrics=tuple(d.get("metrics") or ()),
            class_weight=tuple(sorted(d["class_weight"].items())) if isinstance(d.get("class_weight"), dict) else d.get("class_weight"),
            aliases=tuple(d.get("aliases") or ()),
            gates=self.gates(("models", name, "aliases"), d.get("aliases") or ()),
            threshold=float(d["threshold"]) if isinstance(d.get("threshold"), int | float) and not isinstance(d.get("threshold"), bool) else None,
            threshold_tune=d["threshold"]["tune"] if isinstance(d.get("threshold"), dict) else None,
            features=tuple(d.get("features") or ()),
            exclude=tuple(d.get("exclude") or ()),
            transforms=transform_specs(d.get("transforms")),
            description=d.get("description"),
            origin=m.Origin(("models", name)),
        )

    def gates(self, path: tuple, aliases: list | dict) -> tuple[m.Gate, ...]:
        """The aliases' promotion gates (``aliases: {production: {when: ...}}``); a list of names,
        or an alias without ``when``, moves to every new version."""
        from engine.model.gates import parse_condition

        names = list(aliases) if isinstance(aliases, (list, dict)) else []
        for i, alias in enumerate(names):
            if alias == "latest":  # a selector already: model@latest is the newest version
                where = path + ((alias,) if isinstance(aliases, dict) else (i,))
                self.fail(where, "'latest' cannot be an alias: model@latest already selects the newest version", "name the alias otherwise, e.g. newest or candidate", value=not isinstance(aliases, dict))
        if not isinstance(aliases, dict):
            return ()
        gates = []
        for alias, spec in aliases.items():
            when = (spec or {}).get("when") or ()
            texts = [when] if isinstance(when, str) else list(when)
            conditions = []
            for i, text in enumerate(texts):
                where = path + (alias, "when") + ((i,) if not isinstance(when, str) else ())
                try:
                    conditions.append(parse_condition(text))
                except ValueError as exc:
                    self.fail(where, str(exc), "e.g. when: roc_auc >= current, or when: [rmse < current, rmse < 10]")
            if conditions:
                gates.append(m.Gate(alias, tuple(conditions)))
        return tuple(gates)

    def inference(self, name: str, d: dict[str, Any]) -> m.InferenceJob:
        output = d.get("output") or {}
        rng = d.get("range")
        on_missing = d.get("on_missing") or "null"  # YAML null is the default, "null"
        if d["mode"] == "batch" and not rng:
            self.fail(("inference", name), f"inference:{name} is a batch job without a range", 'add range: [start, end), e.g. range: ["2024-01-01", "2024-02-01"]', value=False)
        if "on_missing" in d and d["mode"] != "online":
            self.fail(("inference", name, "on_missing"), f"on_missing applies to online jobs only, and inference:{name} is a {d['mode']} job", "remove it")
        return m.InferenceJob(
            name=name,
            mode=m.InferenceMode(d["mode"]),
            model=d["model"],
            range=(rng[0], rng[1]) if isinstance(rng, list) else None,
            range_last=rng["last"] if isinstance(rng, dict) else None,
            range_last_seconds=duration_seconds(rng["last"]) if isinstance(rng, dict) else None,
            output_table=output.get("table"),
            output_path=output.get("path"),
            source=d.get("source"),
            keys=tuple(d.get("keys") or ()),
            request=tuple(d.get("request") or ()),
            description=d.get("description"),
            origin=m.Origin(("inference", name)),
            on_missing=on_missing,
        )


def build_project(data: dict[str, Any], source_map: SourceMap, root: Path, spec_files: tuple[Path, ...] = (), files: ProjectFiles | None = None) -> m.Project:
    """Typed project from a schema-valid document and the files it names (``engine.spec.resources``);
    raises SpecError with every problem found. Reads nothing itself."""
    return _Builder(data, source_map, root, spec_files, files or ProjectFiles()).build()


def _tagged(obj, d: dict[str, Any]):
    """``obj`` with the spec's ``tags`` (every object kind may carry them)."""
    import dataclasses

    tags = d.get("tags") if isinstance(d, dict) else None
    return dataclasses.replace(obj, tags=tuple(dict.fromkeys(tags))) if tags else obj


def _conf_text(value: object) -> str:
    """A Spark setting as Spark reads it: YAML ``true`` is ``"true"``, not Python's ``"True"``."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def transform_specs(d: dict | None) -> tuple[tuple[str, m.TransformSpec], ...]:
    """``transforms:`` (column -> a transformer's name, or a chain) as typed specs, by column.
    A chain step is a name (``log1p``), ``{impute: median}``, ``{clip: [LOW, HIGH]}`` or
    ``{kbins: N}``; the schema has checked the shapes."""
    out = []
    for column, spec in sorted((d or {}).items()):
        if isinstance(spec, str):
            out.append((str(column), spec))
            continue
        steps = []
        for step in spec:
            if isinstance(step, str):
                steps.append((step, ()))
            elif "impute" in step:
                steps.append((f"impute_{step['impute']}", ()))
            elif "clip" in step:
                steps.append(("clip", (float(step["clip"][0]), float(step["clip"][1]))))
            else:
                steps.append(("kbins", (int(step["kbins"]),)))
        out.append((str(column), tuple(steps)))
    return tuple(out)
