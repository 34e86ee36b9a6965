"""Text tables for `engine show`: as wide as the terminal (their natural width in a pipe), no
trailing spaces, values as YAML flow text (``engine.cli.render.flow``), never Python reprs."""

from __future__ import annotations

import io
import re
import shutil

from engine.cli.render import flow

_NATURAL = 10_000  # no terminal to fit: rich sizes the table to its content


def terminal_width() -> int:
    """Columns of the terminal (``COLUMNS`` first); a large width when stdout is not a terminal."""
    columns = shutil.get_terminal_size(fallback=(0, 0)).columns
    return columns if columns > 0 else _NATURAL


def wrap(lines: list[str], indent: int = 2) -> str:
    """Text lines wrapped at word boundaries to the terminal's width, continuations indented."""
    import textwrap

    width = terminal_width()
    out = []
    for line in lines:
        lead = len(line) - len(line.lstrip(" "))
        pad = " " * (lead + indent)
        out += textwrap.wrap(line, width, subsequent_indent=pad, break_long_words=False, break_on_hyphens=False) or [""]
    return "\n".join(out)


def _render(table) -> str:
    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=terminal_width(), highlight=False, color_system=None).print(table)
    return "".join(line.rstrip() + "\n" for line in buf.getvalue().splitlines())


def render_table(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """A titled table of text cells (``engine show`` listings)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    return _render(table)


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
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, (dict, list, tuple, bool)):
        return flow(value)
    return str(value)


_SHORT_TYPES = {"TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ"}
_UTC_ISO = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)\+00:00$")
_STATS = (("count", "nulls", "distinct"), ("mean", "std", "min", "p25", "p50", "p75", "max"))


def _stat(value: object) -> str:
    """A statistic: numbers to 4 significant digits, UTC times as ``…Z``."""
    text = _fmt(value)
    match = _UTC_ISO.match(text)
    return match.group(1) + "Z" if match else text


def _stats_table(info: dict, title: str, names: tuple[str, ...], *, typed: bool = True):
    from rich import box
    from rich.table import Table

    # Light rules leave the room to the numbers.
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for col in ("column", *(("type",) if typed else ()), *names):
        table.add_column(col, justify="left" if col in ("column", "type") else "right")
    stats = info.get("stats") or {}
    for name, typ in info["columns"].items():
        table.add_row(name, *((_SHORT_TYPES.get(typ, typ),) if typed else ()), *(_stat(stats.get(name, {}).get(k)) for k in names))
    return table


def _fits(table) -> bool:
    from rich.console import Console

    console = Console(width=_NATURAL, file=io.StringIO())
    return console.measure(table).maximum <= terminal_width()


def feature_group_table(info: dict) -> str:
    head = [
        f"{info['id']}  ({info['row_count']:,} rows, published {info['published_at']}, run {info['run_id']})",
        f"primary key: {', '.join(info['primary_key'])}    event time: {info['event_time'] or '-'}",
        f"offline: {info['offline_table']}    online: {info['online_table'] or '-'}    versions: {', '.join(map(str, info['versions']))}",
    ]
    commits = info.get("commits") or []
    if commits:
        head.append(f"commits: {len(commits)} (versions {commits[0]['version']}–{commits[-1]['version']}; read one back with --as-of)" if len(commits) > 1 else "commits: 1")
    if info.get("as_of") is not None:
        head.append(f"as of commit {info['as_of']['version']} ({info['as_of']['committed_at']}); statistics are the current version's")
    if any((s or {}).get("quantiles") == "approximate" for s in (info.get("stats") or {}).values()):
        head.append("p25, p50 and p75 are approximate (a sample of about 100,000 rows, chosen by a hash of each row; exact below that); distinct is approximate (HyperLogLog)")
    table = _stats_table(info, "features", _STATS[0] + _STATS[1])
    if _fits(table):
        return wrap(head) + "\n" + _render(table)
    # Too wide for the terminal: counts, then the distribution, rather than cells cut to "…".
    parts = [_render(_stats_table(info, "features: counts", _STATS[0])), _render(_stats_table(info, "features: distribution", _STATS[1], typed=False))]
    return wrap(head) + "\n" + "".join(parts)


def _metric_cell(metrics: dict, split: str, name: str) -> str:
    value = metrics.get(split, {}).get(name)
    return "" if value is None else f"{value:.4f}"


def model_listing(rows: list[dict]) -> str:
    from rich.table import Table

    if not rows:
        return "No models registered yet."
    names = sorted({k for r in rows for split in r["metrics"].values() for k in split})
    table = Table(title="models (test metrics)", title_justify="left")
    for col in ("model", "version", "aliases", "estimator", "trained on", "params", *names, "created"):
        table.add_column(col, justify="right" if col in names or col == "version" else "left")
    for r in rows:
        table.add_row(
            r["name"], str(r["version"]), ", ".join(r["aliases"]), r["estimator"].rsplit(".", 1)[-1],
            r["feature_view"].removeprefix("feature_view:"), _params_cell(r.get("params") or {}),
            *(_metric_cell(r["metrics"], "test", n) for n in names), r["created_at"][:10],
        )
    return _render(table)


def _params_cell(params: dict) -> str:
    return " ".join(f"{k}={flow(v)}" for k, v in sorted(params.items())) or "-"


def model_comparison(doc: dict) -> str:
    """``engine compare``: two versions' params and metrics side by side, differences marked."""
    from rich.table import Table

    a, b = doc["a"], doc["b"]
    lines = [
        f"a: {a['id']}  {a['estimator']}  trained on {a['feature_view']}, created {a['created_at'][:19]}" + (f"  (aliases: {', '.join(a['aliases'])})" if a["aliases"] else ""),
        f"b: {b['id']}  {b['estimator']}  trained on {b['feature_view']}, created {b['created_at'][:19]}" + (f"  (aliases: {', '.join(b['aliases'])})" if b["aliases"] else ""),
    ]
    feats = doc["features"]
    if feats["only_a"] or feats["only_b"]:
        lines.append(f"features: {len(feats['both'])} in both; only in a: {', '.join(feats['only_a']) or '-'}; only in b: {', '.join(feats['only_b']) or '-'}")
    else:
        lines.append(f"features: the same {len(feats['both'])}")
    out = wrap(lines) + "\n"
    if doc["params"]:
        params = Table(title="params (* differs)", title_justify="left")
        for col in ("param", "a", "b", ""):
            params.add_column(col)
        for p in doc["params"]:
            params.add_row(p["name"], "-" if p["a"] is None else flow(p["a"]), "-" if p["b"] is None else flow(p["b"]), "" if p["same"] else "*")
        out += _render(params)
    else:
        out += "params: none (estimator defaults)\n"
    metrics = Table(title="metrics (delta = b - a)", title_justify="left")
    for col in ("split", "metric", "a", "b", "delta", "better"):
        metrics.add_column(col, justify="right" if col in ("a", "b", "delta") else "left")
    for m in doc["metrics"]:
        cell = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        delta = "-" if m["delta"] is None else f"{m['delta']:+.4f}"
        metrics.add_row(m["split"], m["metric"], cell(m["a"]), cell(m["b"]), delta, m["better"] or ("same" if m["delta"] == 0 else "-"))
    return out + _render(metrics)


def model_table(info: dict) -> str:
    from rich.table import Table

    m = info["manifest"]
    rows = info["training_rows"]
    head = [
        f"{info['id']}  {info['estimator']}  (aliases: {', '.join(info['aliases']) or '-'}, created {info['created_at'][:19]})",
        f"trained on {info['feature_view']}, label '{m['label']}', split {flow(m['split'])}: " + ", ".join(f"{k} {v:,}" for k, v in rows.items()) + " rows",
        f"features ({len(m['feature_columns'])}): {', '.join(m['feature_columns'])}",
        f"artifact: {m['artifact']['file']} ({m['artifact']['format']}, sha256 {m['artifact']['sha256'][:16]}…)",
    ]
    if m.get("decision_threshold") is not None:
        head.append(f"decision threshold: {m['label_classes'][1] if m.get('label_classes') else 'positive'} when its probability is >= {m['decision_threshold']:.4g}")
    names = sorted({k for split in info["metrics"].values() for k in split})
    table = Table(title="metrics", title_justify="left")
    table.add_column("split")
    for n in names:
        table.add_column(n, justify="right")
    for split in ("validation", "test"):
        if split in info["metrics"]:
            table.add_row(split, *(_metric_cell(info["metrics"], split, n) for n in names))
    warnings = [f"warning: {w}" for w in m.get("metric_warnings", [])]
    return wrap(head) + "\n" + _render(table) + wrap(warnings)


def environment_diff(doc: dict) -> str:
    """``engine diff``: the objects that differ between two environments, one block each."""
    a, b = doc["a"], doc["b"]
    lines = [f"Environments {a} (a) and {b} (b): {doc['changed']} of {len(doc['objects'])} objects differ."]
    for o in doc["objects"]:
        if o["status"] == "same":
            continue
        if o["status"].startswith("only in"):
            lines.append(f"  {o['object']}  [{o['status']}]")
            continue
        lines.append(f"  {o['object']}  [changed]")
        rows = o.get("rows") or [None, None]
        if rows[0] != rows[1]:
            lines.append(f"      rows: {rows[0]} -> {rows[1]}")
        cols = o.get("columns") or {}
        lines += [f"      + column {c}" for c in cols.get("added", [])]
        lines += [f"      - column {c}" for c in cols.get("removed", [])]
        lines += [f"      ~ column {c}: {x} -> {y}" for c, x, y in cols.get("retyped", [])]
        lines += [f"      ~ {s['column']}.{s['stat']}: {_num(s['a'])} -> {_num(s['b'])}" for s in o.get("stats", [])[:20]]
        if len(o.get("stats", [])) > 20:
            lines.append(f"      … {len(o['stats']) - 20} more statistics")
        if o.get("aliases"):
            lines.append(f"      aliases: {', '.join(o['aliases'][0]) or '(none)'} -> {', '.join(o['aliases'][1]) or '(none)'}")
        if o.get("metrics"):
            lines.append("      metrics differ")
        if lines[-1].endswith("[changed]"):  # nothing above tells what: only the definition differs
            lines.append("      same columns and statistics; other definition (fingerprint)")
    return "\n".join(lines)


def _num(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
