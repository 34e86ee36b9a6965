"""The DAG picture: the whole system (sources -> feature groups -> views -> models -> inference
jobs) laid out in layers and drawn as clickable SVG, each node a link to its page.

Layout: a node's column is the longest path from a root (so an edge always points right); within
a column, nodes are ordered by the mean position of their parents (one barycentre pass), then by
id, so the same DAG always gives the same picture.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

NODE_W, NODE_H, COL_GAP, ROW_GAP, MARGIN = 150, 34, 40, 14, 10
KIND_COLORS = {
    "source": "#e8e8e8", "feature_group": "#d7e6f5", "feature_view": "#dcefd9",
    "model": "#f7e1c8", "inference": "#efd6df",
}


@dataclass(frozen=True)
class Dag:
    nodes: tuple[str, ...]  # ids: kind:name[@version]
    edges: tuple[tuple[str, str], ...]


def kind_of(node: str) -> str:
    return node.split(":", 1)[0]


def label_of(node: str) -> str:
    return node.split(":", 1)[1]


def layout(dag: Dag) -> dict[str, tuple[int, int]]:
    """(column, row) of each node.

    >>> layout(Dag(("a:x", "b:y", "b:z"), (("a:x", "b:y"), ("b:y", "b:z"))))
    {'a:x': (0, 0), 'b:y': (1, 0), 'b:z': (2, 0)}
    """
    parents: dict[str, list[str]] = {n: [] for n in dag.nodes}
    for a, b in dag.edges:
        if a in parents and b in parents:
            parents[b].append(a)
    column: dict[str, int] = {}

    def col(n: str, seen: frozenset = frozenset()) -> int:
        if n not in column:
            column[n] = 0 if n in seen else max((col(p, seen | {n}) + 1 for p in parents[n]), default=0)
        return column[n]

    for n in dag.nodes:
        col(n)
    rows: dict[str, int] = {}
    for c in range(max(column.values(), default=-1) + 1):
        members = [n for n in dag.nodes if column[n] == c]

        def weight(n: str) -> float:
            placed = [rows[p] for p in parents[n] if p in rows]
            return sum(placed) / len(placed) if placed else 0.0

        for i, n in enumerate(sorted(members, key=lambda n: (weight(n), n))):
            rows[n] = i
    return {n: (column[n], rows[n]) for n in dag.nodes}


def render(dag: Dag, href: Callable[[str], str | None], *, highlight: Sequence[str] = ()) -> str:
    """The DAG as an SVG element; ``href(node)`` is the link of a node's page (None: no link)."""
    pos = layout(dag)
    cols = max((c for c, _ in pos.values()), default=0) + 1
    rows = max((r for _, r in pos.values()), default=0) + 1
    width = MARGIN * 2 + cols * NODE_W + (cols - 1) * COL_GAP
    height = MARGIN * 2 + rows * NODE_H + (rows - 1) * ROW_GAP

    def xy(n: str) -> tuple[int, int]:
        c, r = pos[n]
        return MARGIN + c * (NODE_W + COL_GAP), MARGIN + r * (NODE_H + ROW_GAP)

    body = []
    for a, b in sorted(dag.edges):
        if a not in pos or b not in pos:
            continue
        (x0, y0), (x1, y1) = xy(a), xy(b)
        sx, sy, ex, ey = x0 + NODE_W, y0 + NODE_H / 2, x1, y1 + NODE_H / 2
        mid = (sx + ex) / 2
        body.append(f'<path class="edge" d="M{sx} {sy}C{mid} {sy} {mid} {ey} {ex - 6} {ey}" fill="none" stroke="#777" marker-end="url(#arrow)"/>')
    for n in sorted(dag.nodes):
        x, y = xy(n)
        kind = kind_of(n)
        stroke = "#c0392b" if n in highlight else "#555"
        text = label_of(n)
        shown = text if len(text) <= 21 else text[:20] + "…"
        node = (f'<g class="node {escape(kind)}"><rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="5" '
                f'fill="{KIND_COLORS.get(kind, "#fff")}" stroke="{stroke}" stroke-width="{2 if n in highlight else 1}"/>'
                f'<text x="{x + 8}" y="{y + 13}" font-size="9" fill="#555">{escape(kind.replace("_", " "))}</text>'
                f'<text x="{x + 8}" y="{y + 27}" font-size="12">{escape(shown)}</text><title>{escape(n)}</title></g>')
        link = href(n)
        body.append(f'<a href="{escape(link)}">{node}</a>' if link else node)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dag" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="DAG"><defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        f'orient="auto"><path d="M0 0L10 5L0 10z" fill="#777"/></marker></defs>' + "".join(body) + "</svg>"
    )


def neighbourhood(dag: Dag, node: str) -> Dag:
    """``node`` with everything upstream and downstream of it (its lineage)."""
    keep = {node}
    for forward in (True, False):
        frontier = [node]
        while frontier:
            n = frontier.pop()
            for a, b in dag.edges:
                src, dst = (a, b) if forward else (b, a)
                if src == n and dst not in keep:
                    keep.add(dst)
                    frontier.append(dst)
    return Dag(tuple(n for n in dag.nodes if n in keep), tuple(e for e in dag.edges if e[0] in keep and e[1] in keep))
