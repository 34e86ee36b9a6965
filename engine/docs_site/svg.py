"""Charts as inline SVG strings: histograms, bar charts, line charts (ROC, PR) and heat maps.

Pure functions of plain numbers; no plotting library, no JavaScript. Every text is escaped, every
number is formatted with a fixed precision, so the same data always gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 360, 180
PAD_L, PAD_R, PAD_T, PAD_B = 44, 10, 14, 34
COLORS = ("#3b6ea5", "#d9822b", "#4c9a5a", "#b5485d", "#7a5ca8")


def _n(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".") if x == x else "0"


def fmt(value: object) -> str:
    """A number as a short label.

    >>> fmt(0.123456), fmt(12345678.5), fmt(3), fmt(None)
    ('0.1235', '1.235e+07', '3', '')
    """
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.4g}"


def _frame(title: str, body: list[str], width: int = WIDTH, height: int = HEIGHT) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
        + "".join(body) + "</svg>"
    )


def _axes(x0: float, y0: float, x1: float, y1: float) -> str:
    return f'<path d="M{_n(x0)} {_n(y0)}V{_n(y1)}H{_n(x1)}" fill="none" stroke="#888"/>'


def bars(title: str, labels: Sequence[str], values: Sequence[float], *, series: Sequence[Sequence[float]] = (), names: Sequence[str] = (),
         width: int = WIDTH, height: int = HEIGHT, horizontal: bool = False) -> str:
    """Bars per label (one series, or several side by side with ``series`` and ``names``)."""
    groups = [list(values)] + [list(s) for s in series]
    top = max((v for g in groups for v in g if v == v), default=0.0) or 1.0
    if horizontal:
        return _hbars(title, labels, groups[0], top, width)
    plot_w, plot_h = width - PAD_L - PAD_R, height - PAD_T - PAD_B
    n = max(len(labels), 1)
    slot = plot_w / n
    bw = max(slot * 0.8 / len(groups), 1.0)
    body = [_axes(PAD_L, PAD_T, width - PAD_R, PAD_T + plot_h)]
    for gi, group in enumerate(groups):
        for i, v in enumerate(group):
            h = plot_h * (v / top if v == v else 0)
            x = PAD_L + i * slot + slot * 0.1 + gi * bw
            name = f"{names[gi]}: " if gi < len(names) else ""
            body.append(f'<rect x="{_n(x)}" y="{_n(PAD_T + plot_h - h)}" width="{_n(bw)}" height="{_n(h)}" fill="{COLORS[gi % len(COLORS)]}">'
                        f"<title>{escape(labels[i] if i < len(labels) else '')}: {escape(name)}{fmt(v)}</title></rect>")
    step = max(1, n // 6)
    for i in range(0, len(labels), step):
        body.append(f'<text x="{_n(PAD_L + (i + 0.5) * slot)}" y="{height - PAD_B + 14}" font-size="9" text-anchor="middle">{escape(str(labels[i])[:10])}</text>')
    body.append(f'<text x="{PAD_L - 4}" y="{PAD_T + 8}" font-size="9" text-anchor="end">{fmt(top)}</text>')
    body.append(f'<text x="{PAD_L - 4}" y="{PAD_T + plot_h}" font-size="9" text-anchor="end">0</text>')
    for gi, name in enumerate(names):
        body.append(f'<rect x="{PAD_L + 4 + gi * 90}" y="{height - 12}" width="8" height="8" fill="{COLORS[gi % len(COLORS)]}"/>'
                    f'<text x="{PAD_L + 15 + gi * 90}" y="{height - 4}" font-size="9">{escape(name)}</text>')
    return _frame(title, body, width, height)


def _hbars(title: str, labels: Sequence[str], values: Sequence[float], top: float, width: int) -> str:
    row = 16
    label_w = 150
    height = PAD_T + row * max(len(labels), 1) + 10
    plot_w = width - label_w - PAD_R - 40
    body = []
    for i, (label, v) in enumerate(zip(labels, values)):
        y = PAD_T + i * row
        w = plot_w * (v / top if v == v else 0)
        body.append(f'<text x="{label_w - 4}" y="{y + 11}" font-size="10" text-anchor="end">{escape(str(label)[:24])}</text>'
                    f'<rect x="{label_w}" y="{y + 2}" width="{_n(w)}" height="{row - 4}" fill="{COLORS[0]}"><title>{escape(str(label))}: {fmt(v)}</title></rect>'
                    f'<text x="{_n(label_w + w + 4)}" y="{y + 11}" font-size="9">{fmt(v)}</text>')
    return _frame(title, body, width, height)


def histogram(title: str, edges: Sequence[float], counts: Sequence[float], *, other: Sequence[float] = (), names: Sequence[str] = ()) -> str:
    """A histogram over bin ``edges`` (len(counts) + 1 of them); ``other``: a second distribution
    over the same bins, drawn beside it (e.g. serving against training)."""
    labels = [fmt(e) for e in edges[:-1]]
    return bars(title, labels, counts, series=[other] if len(other) else (), names=names)


def lines(title: str, curves: Sequence[tuple[str, Sequence[float], Sequence[float]]], *, x_label: str = "", y_label: str = "",
          diagonal: bool = False, width: int = 260, height: int = 240) -> str:
    """Curves on [0, 1] x [0, 1] (ROC, precision-recall): (name, xs, ys) each."""
    pl, pb = 36, 30
    plot_w, plot_h = width - pl - PAD_R, height - PAD_T - pb
    body = [_axes(pl, PAD_T, width - PAD_R, PAD_T + plot_h)]

    def at(x: float, y: float) -> str:
        return f"{_n(pl + x * plot_w)} {_n(PAD_T + (1 - y) * plot_h)}"

    if diagonal:
        body.append(f'<path d="M{at(0, 0)}L{at(1, 1)}" stroke="#bbb" stroke-dasharray="4 3" fill="none"/>')
    for ci, (name, xs, ys) in enumerate(curves):
        points = "L".join(at(min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)) for x, y in zip(xs, ys))
        if points:
            body.append(f'<path d="M{points}" fill="none" stroke="{COLORS[ci % len(COLORS)]}" stroke-width="2"><title>{escape(name)}</title></path>')
        body.append(f'<text x="{pl + 6}" y="{PAD_T + 12 + ci * 12}" font-size="10" fill="{COLORS[ci % len(COLORS)]}">{escape(name)}</text>')
    for v in (0, 0.5, 1):
        body.append(f'<text x="{_n(pl + v * plot_w)}" y="{height - pb + 12}" font-size="9" text-anchor="middle">{v}</text>')
        body.append(f'<text x="{pl - 4}" y="{_n(PAD_T + (1 - v) * plot_h + 3)}" font-size="9" text-anchor="end">{v}</text>')
    body.append(f'<text x="{_n(pl + plot_w / 2)}" y="{height - 4}" font-size="10" text-anchor="middle">{escape(x_label)}</text>')
    body.append(f'<text x="10" y="{_n(PAD_T + plot_h / 2)}" font-size="10" text-anchor="middle" transform="rotate(-90 10 {_n(PAD_T + plot_h / 2)})">{escape(y_label)}</text>')
    return _frame(title, body, width, height)


def heatmap(title: str, row_labels: Sequence[str], col_labels: Sequence[str], cells: Sequence[Sequence[float]], *, row_title: str = "", col_title: str = "") -> str:
    """A matrix of counts with the values written in the cells (a confusion matrix)."""
    cell = 44
    left, top = 70, 34
    width = left + cell * max(len(col_labels), 1) + 10
    height = top + cell * max(len(row_labels), 1) + 10
    peak = max((v for row in cells for v in row), default=0) or 1
    body = [f'<text x="{left + cell * len(col_labels) / 2}" y="12" font-size="10" text-anchor="middle">{escape(col_title)}</text>']
    for j, label in enumerate(col_labels):
        body.append(f'<text x="{left + j * cell + cell / 2}" y="{top - 6}" font-size="10" text-anchor="middle">{escape(str(label))}</text>')
    for i, label in enumerate(row_labels):
        body.append(f'<text x="{left - 6}" y="{top + i * cell + cell / 2 + 4}" font-size="10" text-anchor="end">{escape(str(label))}</text>')
        for j, v in enumerate(cells[i]):
            shade = int(235 - 170 * (v / peak))
            ink = "#fff" if v / peak > 0.55 else "#222"
            body.append(f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell - 2}" height="{cell - 2}" fill="rgb({shade},{shade + 10},{min(255, shade + 40)})"/>'
                        f'<text x="{left + j * cell + cell / 2 - 1}" y="{top + i * cell + cell / 2 + 4}" font-size="11" text-anchor="middle" fill="{ink}">{fmt(v)}</text>')
    body.append(f'<text x="10" y="{top + cell * len(row_labels) / 2}" font-size="10" text-anchor="middle" transform="rotate(-90 10 {top + cell * len(row_labels) / 2})">{escape(row_title)}</text>')
    return _frame(title, body, width, height)
