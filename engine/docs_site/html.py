"""The page shell and small HTML helpers: one stylesheet inlined in every page (no external
request of any kind), tables, definition lists. Every value is escaped here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#23395d;color:#fff;padding:10px 20px}header a{color:#fff;text-decoration:none;margin-right:16px}
main{padding:16px 24px;max-width:1200px}h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0;font-size:13px;background:#fff}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}.num{text-align:right;font-variant-numeric:tabular-nums}.ok{color:#237a3b}.bad{color:#b3261e;font-weight:600}
.charts{display:flex;flex-wrap:wrap;gap:12px}.charts figure{margin:0;background:#fff;border:1px solid #ddd;padding:6px}
figcaption{font-size:12px;color:#555}.muted{color:#777}.dagbox{overflow:auto;background:#fff;border:1px solid #ddd;padding:6px}
code{background:#eee;padding:1px 4px;border-radius:3px}ul.objects{columns:3}
"""


def page(title: str, project: str, body: str, *, depth: int = 1) -> str:
    """A complete HTML document; ``depth``: how many folders below the site root the page is."""
    up = "../" * depth
    nav = "".join(f'<a href="{up}{href}">{escape(text)}</a>' for href, text in (("index.html", project), ("lineage.html", "Lineage"), ("monitoring.html", "Monitoring")))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{escape(title)} · {escape(project)}</title>"
        f"<style>{CSS}</style></head><body><header>{nav}</header><main><h1>{escape(title)}</h1>{body}</main></body></html>\n"
    )


def table(header: Sequence[str], rows: Iterable[Sequence[object]], *, raw: bool = False, numeric: Sequence[int] = ()) -> str:
    """A table; cells are escaped unless ``raw`` (cells already HTML)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    out = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text = str(cell) if raw else escape("" if cell is None else str(cell))
            cells.append(f'<td class="num">{text}</td>' if i in numeric else f"<td>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(out)}</tbody></table>"


def facts(pairs: Iterable[tuple[str, object]]) -> str:
    """A two-column table of (name, value), values escaped; empty values left out."""
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in pairs if v not in (None, "", (), []))
    return f'<table class="facts"><tbody>{rows}</tbody></table>' if rows else ""


def link(href: str, text: str) -> str:
    return f'<a href="{escape(href)}">{escape(text)}</a>'


def figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def charts(figures: Iterable[str]) -> str:
    items = "".join(figures)
    return f'<div class="charts">{items}</div>' if items else ""


def para(text: str, cls: str = "") -> str:
    return f'<p class="{cls}">{escape(text)}</p>' if cls else f"<p>{escape(text)}</p>"
