"""Write the site: one page per feature group, feature view and model, an index with the DAG, a
lineage page and the monitoring page, from the spec and the workspace's last committed state
(read-only stores: never blocked by an apply, never blocking one).

What each page holds (issue 12): feature groups: schema, statistics with histograms (computed from
the committed table: the stored statistics hold no histograms), versions and commits, expectations
evaluated on the committed table; views: joins and point-in-time settings; models: params, metrics
per split, ROC and PR curves, confusion matrix, feature importances, versions side by side;
lineage on every page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from engine.docs_site import dag as dagmod
from engine.docs_site import html as h
from engine.docs_site import svg

if TYPE_CHECKING:
    from engine.compiler.semantics import CheckedProject
    from engine.model import objects as m
    from engine.session import Stores

HISTOGRAM_BINS = 12
HISTOGRAM_MAX_ROWS = 200_000
TOP_CATEGORIES = 12


@dataclass(frozen=True)
class Site:
    root: Path
    pages: tuple[Path, ...]


def page_of(node: str) -> str | None:
    """The site-relative page of a DAG node (kind:name[@version]); None for kinds without a page."""
    kind, rest = node.split(":", 1)
    name = rest.split("@", 1)[0]
    folder = {"source": "sources", "feature_group": "feature_groups", "feature_view": "feature_views", "model": "models", "inference": "inference"}.get(kind)
    return f"{folder}/{name}.html" if folder else None


def project_dag(checked: "CheckedProject") -> dagmod.Dag:
    """The project's object graph (engine.compiler.selection): the compiled DAG, the functions
    the views compute and the online jobs, which are served, not steps."""
    from engine.compiler.lineage import lineage
    from engine.compiler.planner import compile_steps
    from engine.compiler.selection import object_graph

    doc = lineage(object_graph(checked.project, compile_steps(checked))).as_dict()
    return dagmod.Dag(tuple(doc["nodes"]), tuple((e["from"], e["to"]) for e in doc["edges"]))


def build(checked: "CheckedProject", workspace, out: Path, *, monitoring_reports: dict | None = None) -> Site:
    """Write the whole site under ``out`` (created if needed); returns the pages written."""
    from engine.session import reading

    out.mkdir(parents=True, exist_ok=True)
    project = checked.project
    graph = project_dag(checked)
    written: list[Path] = []

    def write(rel: str, title: str, body: str) -> None:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(h.page(title, project.name, body, depth=rel.count("/")), encoding="utf-8")
        written.append(path)

    def lineage_block(node: str, depth: int = 1) -> str:
        near = dagmod.neighbourhood(graph, node)
        return "<h2>Lineage</h2><div class=\"dagbox\">" + dagmod.render(near, lambda n: _rel(page_of(n), depth), highlight=[node]) + "</div>"

    if workspace.exists():
        with reading(workspace, project=project) as stores:
            _write_objects(checked, stores, write, lineage_block)
    else:
        _write_objects(checked, None, write, lineage_block)
    write("index.html", f"Project {project.name}", _index(checked, graph))
    write("lineage.html", "Lineage", _lineage_page(graph))
    write("monitoring.html", "Monitoring", _monitoring_index(monitoring_reports or {}))
    from engine.docs_site.monitoring import write_monitoring_pages

    written += write_monitoring_pages(project.name, monitoring_reports or {}, out)
    return Site(out, tuple(written))


def _rel(page: str | None, depth: int) -> str | None:
    return None if page is None else "../" * depth + page


# --- index and lineage ---------------------------------------------------------------------------


def _index(checked: "CheckedProject", graph: dagmod.Dag) -> str:
    p = checked.project
    parts = ['<div class="dagbox">' + dagmod.render(graph, page_of) + "</div>"]
    for title, kind, names in (
        ("Sources", "source", p.sources), ("Feature groups", "feature_group", p.feature_groups),
        ("Feature views", "feature_view", p.feature_views), ("Models", "model", p.models), ("Inference jobs", "inference", p.inference),
    ):
        if names:
            items = "".join(f"<li>{h.link(page_of(f'{kind}:{n}'), n)}</li>" for n in sorted(names))
            parts.append(f'<h2>{escape(title)}</h2><ul class="objects">{items}</ul>')
    return "".join(parts)


def _lineage_page(graph: dagmod.Dag) -> str:
    rows = [(h.link(page_of(a), a), h.link(page_of(b), b)) for a, b in graph.edges]
    return '<div class="dagbox">' + dagmod.render(graph, page_of) + "</div><h2>Edges</h2>" + h.table(["from", "to"], rows, raw=True)


def _monitoring_index(reports: dict) -> str:
    if not reports:
        return h.para("No monitoring report yet: run `engine monitor MODEL --docs SITE` after serving with monitoring enabled.", "muted")
    rows = []
    for name, report in sorted(reports.items()):
        status = '<span class="bad">drift</span>' if report.get("alerts") else '<span class="ok">ok</span>'
        rows.append((h.link(f"monitoring/{name}.html", name), status, escape(str(report.get("rows", ""))), escape(", ".join(a["feature"] for a in report.get("alerts", [])))))
    return h.table(["model", "status", "serving rows", "features over a threshold"], rows, raw=True)


# --- objects -------------------------------------------------------------------------------------


def _write_objects(checked: "CheckedProject", stores: "Stores | None", write, lineage_block) -> None:
    p = checked.project
    for s in p.sources.values():
        write(f"sources/{s.name}.html", f"Source {s.name}", h.facts([("format", s.format), ("path", s.path), ("description", getattr(s, "description", None))]) + lineage_block(f"source:{s.name}"))
    for fg in p.feature_groups.values():
        write(f"feature_groups/{fg.name}.html", f"Feature group {fg.name}", _feature_group(checked, stores, fg) + lineage_block(str(fg.id)))
    for fv in p.feature_views.values():
        write(f"feature_views/{fv.name}.html", f"Feature view {fv.name}", _feature_view(fv) + lineage_block(str(fv.id)))
    for model in p.models.values():
        write(f"models/{model.name}.html", f"Model {model.name}", _model(stores, model) + lineage_block(str(model.id)))
    for job in p.inference.values():
        body = h.facts([("mode", job.mode.value), ("model", job.model), ("keys", ", ".join(job.keys)), ("request", ", ".join(job.request)),
                        ("range", " – ".join(job.range) if job.range else (f"the last {job.range_last}" if job.range_last else None)), ("output table", job.output_table), ("output file", job.output_path),
                        ("source", job.source), ("description", job.description)])
        write(f"inference/{job.name}.html", f"Inference job {job.name}", body + lineage_block(f"inference:{job.name}"))


def _column_role(fg: "m.FeatureGroup", column: str) -> str:
    from engine.model import objects as m

    if column in fg.primary_key:
        return "primary key"
    if column == fg.event_time:
        return "event time"
    if isinstance(fg.transform, m.AggregationTransform):
        for agg in fg.transform.aggregations:
            if getattr(agg, "name", None) == column or f"{agg.column}_{agg.function.value}_{agg.window}" == column:
                return f"{agg.function.value} of {agg.column} over {agg.window}"
    return "feature"


def _feature_group(checked: "CheckedProject", stores: "Stores | None", fg: "m.FeatureGroup") -> str:
    from engine.model import objects as m

    transform = fg.transform
    how = {m.SqlTransform: "SQL", m.PythonTransform: "Python", m.AggregationTransform: "windowed aggregations",
           m.BinningTransform: "binning", m.PcaTransform: "PCA"}.get(type(transform), type(transform).__name__)
    parts = [h.facts([("description", fg.description), ("version", fg.version), ("primary key", ", ".join(fg.primary_key)),
                      ("event time", fg.event_time), ("online", "yes" if fg.online else "no"), ("transformation", how),
                      ("reads", ", ".join(fg.inputs))])]
    if isinstance(transform, m.SqlTransform):
        parts.append(f"<details><summary>SQL</summary><pre><code>{escape(transform.sql)}</code></pre></details>")
    fgv = stores.offline.version(fg.name, fg.version) if stores is not None else None
    if fgv is None:
        inferred = checked.columns.get(fg.name) or {}
        parts.append("<h2>Schema</h2>" + h.table(["column", "type", "description"], [(c, t, _column_role(fg, c)) for c, t in dict(inferred).items()]))
        parts.append(h.para(f"{fg.id} has not been published yet: run `engine apply`.", "muted"))
        return "".join(parts)
    parts.append("<h2>Schema</h2>" + h.table(["column", "type", "description"], [(c, t, _column_role(fg, c)) for c, t in fgv.columns.items()]))
    versions = [(n, v, rows, at) for (n, v, rows, at) in stores.offline.versions() if n == fg.name]
    parts.append("<h2>Versions</h2>" + h.table(["version", "rows", "published at"], [(v, rows, at) for (_, v, rows, at) in versions], numeric=(1,)))
    commits = stores.offline.commits(fg.name, fg.version)
    if commits:
        parts.append("<h3>Commits of version %d</h3>" % fg.version + h.table(["commit", "run", "committed at"], [(c.version, c.run_id, c.committed_at.isoformat()) for c in commits]))
    frame = stores.offline.read(fg.name, fg.version)
    parts.append("<h2>Statistics</h2>" + _statistics(fgv.stats, frame))
    if fg.expectations:
        parts.append("<h2>Expectations</h2>" + _expectations(stores, fgv, fg))
    return "".join(parts)


def _statistics(stats: dict, frame) -> str:
    keys = ("count", "nulls", "distinct", "mean", "std", "min", "p25", "p50", "p75", "max")
    rows = [(col, s.get("type", ""), *(svg.fmt(s.get(k)) for k in keys)) for col, s in stats.items()]
    table = h.table(["column", "type", *keys], rows, numeric=tuple(range(2, 2 + len(keys))))
    return table + h.charts(_histograms(stats, frame))


def _histograms(stats: dict, frame) -> list[str]:
    """One histogram per numeric column, a bar chart of the most frequent values per text column:
    the stored one when the statistics hold it (``histogram: {edges, counts}``), else computed
    from the committed rows."""
    import numpy as np
    import pandas as pd

    figures = []
    sample = frame if len(frame) <= HISTOGRAM_MAX_ROWS else frame.sample(HISTOGRAM_MAX_ROWS, random_state=0)
    for col in sample.columns:
        stored = (stats.get(col) or {}).get("histogram")
        if isinstance(stored, dict) and len(stored.get("edges", ())) == len(stored.get("counts", ())) + 1:
            figures.append(h.figure(svg.histogram(f"histogram of {col}", stored["edges"], stored["counts"]), f"{col} (stored statistics)"))
            continue
        series = sample[col]
        if pd.api.types.is_bool_dtype(series):
            series = series.astype("string")
        if pd.api.types.is_numeric_dtype(series):
            values = series.dropna().to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            if not len(values):
                continue
            counts, edges = np.histogram(values, bins=HISTOGRAM_BINS if values.min() < values.max() else 1)
            figures.append(h.figure(svg.histogram(f"histogram of {col}", edges.tolist(), counts.tolist()), f"{col} ({len(values)} values)"))
        elif pd.api.types.is_datetime64_any_dtype(series):
            continue
        else:
            top = series.dropna().astype(str).value_counts().head(TOP_CATEGORIES)
            if len(top):
                figures.append(h.figure(svg.bars(f"most frequent values of {col}", list(top.index), top.tolist()), f"{col} (top {len(top)} values)"))
    return figures


def _expectations(stores: "Stores", fgv, fg: "m.FeatureGroup") -> str:
    from engine.sql.ops import Relation

    try:
        results = stores.backend.expectations(Relation.parse(fgv.offline_table), fg.expectations)
    except Exception as exc:  # noqa: BLE001 — the page says what it could not check rather than failing the site
        return h.para(f"could not evaluate the expectations on the committed table: {exc}", "bad")
    rows = []
    for r in results:
        status = '<span class="ok">passed</span>' if r.passed else '<span class="bad">failed</span>'
        samples = escape(", ".join(json.dumps(s, default=str) for s in r.samples))
        rows.append((escape(r.expectation.describe()), status, f"{r.failed_rows} / {r.total_rows}", samples))
    return h.table(["expectation", "last result (committed table)", "failing rows", "examples"], rows, raw=True) + h.para(
        "Evaluated on the last committed table; an apply whose rows fail an expectation publishes nothing, so a failure here means the data was published before the expectation was declared.", "muted")


def _feature_view(fv: "m.FeatureView") -> str:
    from engine.model.objects import transform_text

    parts = [h.facts([("description", fv.description), ("version", fv.version), ("spine", fv.spine), ("label", ", ".join(fv.labels)),
                      ("features from the spine", ", ".join(fv.features)), ("helpers", ", ".join(fv.helpers)), ("filter", fv.filter),
                      ("on-demand features", ", ".join(fv.on_demand))])]
    rows = []
    for j in fv.joins:
        on = ", ".join(a if a == b else f"{a} = {b}" for a, b in zip(j.left_on, j.right_on))
        rows.append((j.feature_group + (f"@{j.version}" if j.version else ""), on, j.prefix, ", ".join(j.select) if j.select else "all",
                     ", ".join(j.exclude), j.ttl or "none"))
    parts.append("<h2>Joins (point-in-time)</h2>" + h.table(["feature group", "on", "prefix", "columns", "except", "ttl"], rows))
    parts.append(h.para(
        f"Point-in-time: each spine row of {fv.spine} at event time t gets, from each joined feature group, the row with the same keys "
        "and the largest event time ≤ t (ties: last written); none, or older than t − ttl, gives NULLs. A group without an event time joins on its keys alone."))
    if fv.transforms:
        parts.append("<h2>Model-dependent transforms</h2>" + h.table(["column", "transform"], [(c, transform_text(t)) for c, t in fv.transforms]))
    return "".join(parts)


def _model(stores: "Stores | None", model: "m.Model") -> str:
    from engine.docs_site.evaluation import evaluate

    parts = [h.facts([("description", model.description), ("estimator", model.estimator), ("feature view", model.feature_view),
                      ("split", json.dumps({k: v for k, v in vars(model.split).items() if v is not None}, default=str)),
                      ("metrics", ", ".join(model.metrics)), ("aliases", ", ".join(model.aliases))])]
    versions = stores.registry.list(model.name) if stores is not None else []
    if not versions:
        parts.append(h.para(f"{model.id} has no registered version yet: run `engine apply`.", "muted"))
        return "".join(parts)
    versions = sorted(versions, key=lambda mv: mv.version)
    parts.append("<h2>Versions side by side</h2>" + _versions_table(versions))
    latest = versions[-1]
    try:
        ev = evaluate(stores, latest)
    except Exception as exc:  # noqa: BLE001 — a version whose artifact cannot be loaded still gets its page
        ev = None
        parts.append(h.para(f"could not score {latest.ref} for its charts: {exc}", "bad"))
    if ev is not None:
        parts.append(f"<h2>Evaluation of {escape(latest.ref)} ({escape(ev.split)} split, {ev.rows} rows)</h2>" + _evaluation_charts(ev))
    return "".join(parts)


def _versions_table(versions) -> str:
    params = sorted({k for mv in versions for k in mv.manifest.get("params", {})})
    metric_keys = sorted({(split, name) for mv in versions for split, ms in mv.info.metrics.items() for name in ms})
    header = ["", *(f"v{mv.version}" for mv in versions)]
    rows = [
        ("created at", *(mv.created_at for mv in versions)),
        ("aliases", *(", ".join(mv.aliases) for mv in versions)),
        ("estimator", *(mv.info.estimator for mv in versions)),
        ("feature view", *(mv.info.feature_view_ref for mv in versions)),
        ("training rows", *(", ".join(f"{k}: {v}" for k, v in mv.info.training_data.rows.items()) for mv in versions)),
        *((f"param {p}", *(json.dumps(mv.manifest.get("params", {}).get(p)) if p in mv.manifest.get("params", {}) else "" for mv in versions)) for p in params),
        *((f"{split} {name}", *(svg.fmt(mv.info.metrics.get(split, {}).get(name)) for mv in versions)) for split, name in metric_keys),
    ]
    return h.table(header, rows, numeric=tuple(range(1, len(header))))


def _evaluation_charts(ev) -> str:
    figures = []
    if ev.roc is not None:
        figures.append(h.figure(svg.lines("ROC curve", [("ROC", *ev.roc)], x_label="false positive rate", y_label="true positive rate", diagonal=True), "ROC curve"))
    if ev.pr is not None:
        figures.append(h.figure(svg.lines("precision-recall curve", [("PR", *ev.pr)], x_label="recall", y_label="precision"), "Precision-recall curve"))
    if ev.confusion is not None:
        figures.append(h.figure(svg.heatmap("confusion matrix", ev.classes, ev.classes, ev.confusion, row_title="actual", col_title="predicted"), "Confusion matrix"))
    if ev.importances:
        names, values = zip(*ev.importances[:20])
        figures.append(h.figure(svg.bars("feature importances", names, values, horizontal=True, width=420), "Feature importances"))
    if ev.residuals:
        import numpy as np

        counts, edges = np.histogram(np.asarray(ev.residuals), bins=HISTOGRAM_BINS)
        figures.append(h.figure(svg.histogram("residuals", edges.tolist(), counts.tolist()), "Residuals (actual − predicted)"))
    return h.charts(figures)


def write_site(path: str | Path, out: str | Path | None = None, *, workspace: str | Path | None = None) -> Site:
    """The `engine docs` verb: validate -> read the workspace (read-only) -> write the site
    (default: ``<workspace>/site``)."""
    from engine.monitor.report import saved_reports
    from engine.project import validate, workspace_of

    checked = validate(path)
    ws = workspace_of(checked, workspace)
    target = Path(out) if out is not None else ws.root / "site"
    if target.exists() and not target.is_dir():
        from engine.errors import UsageError

        raise UsageError(f"--out {target}: exists and is not a folder; pass a folder for the site")
    reports = saved_reports(ws.root) if ws.exists() else {}
    return build(checked, ws, target, monitoring_reports=reports)
