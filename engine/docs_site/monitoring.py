"""The monitoring pages of the site: per model, the last `engine monitor` report (serving against
training, per feature and for the prediction) with a chart per feature."""

from __future__ import annotations

from html import escape
from pathlib import Path

from engine.docs_site import html as h
from engine.docs_site import svg


def monitoring_page(report: dict) -> str:
    alerts = report.get("alerts", [])
    flagged = {a["feature"] for a in alerts}
    crossed = "; ".join(f"{a['feature']}: {a['statistic']} {a['value']:.3f} > {a['threshold']:g}" for a in alerts)
    status = f'<p class="bad">Drift: {escape(crossed)}</p>' if alerts else '<p class="ok">No threshold crossed.</p>'
    parts = [status, h.facts([("model version", report.get("model")), ("jobs", ", ".join(report.get("jobs", []))), ("serving rows", report.get("rows")),
                              ("since", report.get("since")), ("thresholds", ", ".join(f"{k} {v}" for k, v in report.get("thresholds", {}).items()))])]
    for note in report.get("notes", []):
        parts.append(h.para(note, "muted"))
    rows = []
    for f in report.get("features", []):
        mark = '<span class="bad">drift</span>' if f["feature"] in flagged else '<span class="ok">ok</span>'
        rows.append((escape(f["feature"]), escape(f["kind"]), f"{f['psi']:.4f}", "" if f["ks"] is None else f"{f['ks']:.4f}",
                     f"{f['missing_train']:.3f}", f"{f['missing_serving']:.3f}", mark))
    if rows:
        parts.append("<h2>Features</h2>" + h.table(["feature", "kind", "PSI", "KS", "missing (training)", "missing (serving)", "status"], rows, raw=True, numeric=(2, 3, 4, 5)))
        figures = [h.figure(svg.bars(f"{f['feature']}: training vs serving", f["bins"], f["train"], series=[f["serving"]], names=["training", "serving"]),
                            f"{f['feature']} (PSI {f['psi']:.3f})") for f in report.get("features", [])]
        parts.append("<h2>Distributions</h2>" + h.charts(figures))
    return "".join(parts)


def write_monitoring_pages(project: str, reports: dict[str, dict], out: Path) -> list[Path]:
    """``monitoring/<model>.html`` per saved report."""
    written = []
    for model, report in sorted(reports.items()):
        path = out / "monitoring" / f"{model}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(h.page(f"Monitoring of {model}", project, monitoring_page(report), depth=1), encoding="utf-8")
        written.append(path)
    return written
