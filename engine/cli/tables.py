"""Text tables for `engine show`."""

from __future__ import annotations

import io


def _render(table) -> str:
    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=120, highlight=False, color_system=None).print(table)
    return buf.getvalue()


def feature_group_listing(rows: list[dict]) -> str:
    from rich.table import Table

    if not rows:
        return "No feature groups published yet."
    table = Table(title="feature groups", title_justify="left")
    for col in ("name", "version", "rows", "published_at"):
        table.add_column(col, justify="right" if col in ("version", "rows") else "left")
    for r in rows:
        table.add_row(r["name"], str(r["version"]), f"{r['rows']:,}", r["published_at"])
    return _render(table)


def _fmt(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def feature_group_table(info: dict) -> str:
    from rich.table import Table

    head = [
        f"{info['id']}  ({info['row_count']:,} rows, published {info['published_at']}, run {info['run_id']})",
        f"primary key: {', '.join(info['primary_key'])}    event time: {info['event_time'] or '-'}",
        f"offline: {info['offline_table']}    online: {info['online_table'] or '-'}    versions: {', '.join(map(str, info['versions']))}",
    ]
    table = Table(title="features", title_justify="left")
    cols = ("column", "type", "count", "nulls", "distinct", "mean", "std", "min", "p25", "p50", "p75", "max")
    for col in cols:
        table.add_column(col, justify="left" if col in ("column", "type") else "right")
    stats = info.get("stats") or {}
    for name, typ in info["columns"].items():
        s = stats.get(name, {})
        table.add_row(name, typ, *(_fmt(s.get(k)) for k in cols[2:]))
    return "\n".join(head) + "\n" + _render(table)
