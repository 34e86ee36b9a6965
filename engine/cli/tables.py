"""Text tables for `engine show`."""

from __future__ import annotations

import io


def _render(table) -> str:
    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=200, highlight=False, color_system=None).print(table)
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


def _metric_cell(metrics: dict, split: str, name: str) -> str:
    value = metrics.get(split, {}).get(name)
    return "" if value is None else f"{value:.4f}"


def model_listing(rows: list[dict]) -> str:
    from rich.table import Table

    if not rows:
        return "No models registered yet."
    names = sorted({k for r in rows for split in r["metrics"].values() for k in split})
    table = Table(title="models (test metrics)", title_justify="left")
    for col in ("model", "version", "aliases", "estimator", "trained on", *names, "created"):
        table.add_column(col, justify="right" if col in names or col == "version" else "left")
    for r in rows:
        table.add_row(
            r["name"], str(r["version"]), ", ".join(r["aliases"]), r["estimator"].rsplit(".", 1)[-1],
            r["feature_view"].removeprefix("feature_view:"), *(_metric_cell(r["metrics"], "test", n) for n in names), r["created_at"][:10],
        )
    return _render(table)


def model_table(info: dict) -> str:
    from rich.table import Table

    m = info["manifest"]
    rows = info["training_rows"]
    head = [
        f"{info['id']}  {info['estimator']}  (aliases: {', '.join(info['aliases']) or '-'}, created {info['created_at'][:19]})",
        f"trained on {info['feature_view']}, label '{m['label']}', split {m['split']}: " + ", ".join(f"{k} {v:,}" for k, v in rows.items()) + " rows",
        f"features ({len(m['feature_columns'])}): {', '.join(m['feature_columns'])}",
        f"artifact: {m['artifact']['file']} ({m['artifact']['format']}, sha256 {m['artifact']['sha256'][:16]}…)",
    ]
    names = sorted({k for split in info["metrics"].values() for k in split})
    table = Table(title="metrics", title_justify="left")
    table.add_column("split")
    for n in names:
        table.add_column(n, justify="right")
    for split in ("validation", "test"):
        if split in info["metrics"]:
            table.add_row(split, *(_metric_cell(info["metrics"], split, n) for n in names))
    warnings = [f"warning: {w}" for w in m.get("metric_warnings", [])]
    return "\n".join(head) + "\n" + _render(table) + "\n".join(warnings)
