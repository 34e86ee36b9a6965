"""Shell completion of object names: NAME arguments complete from the project's specs.

The project is the one the command line names (PATH / --project) or the nearest engine.yaml.
Reading is the spec loader alone (YAML with its safety limits, no schema, no database, no user
code), and any failure completes nothing: a broken project never prints a traceback into the
user's shell. Imports only click at module level.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

SECTIONS = ("sources", "feature_groups", "functions", "feature_views", "models", "inference")


def project_names(ctx: click.Context, sections: tuple[str, ...] = SECTIONS, *, online_only: bool = False) -> list[str]:
    """Object names of ``sections`` in the project of ``ctx`` ([] when there is none or it does not load)."""
    try:
        from engine.spec.project_files import find_marker, load_spec

        given = ctx.params.get("project") or ctx.params.get("path")
        if given is None:
            args = ctx.params.get("args") or ()
            given = next((a for a in args if "/" in a or a.endswith((".yaml", ".yml")) or a == "."), None)
        if given is None:
            marker = find_marker(Path.cwd())
            if marker is None:
                return []
            given = marker.parent
        data = load_spec(Path(given)).data
        names = []
        for section in sections:
            objects = data.get(section) or {}
            for name, body in objects.items():
                if online_only and section == "inference" and not (isinstance(body, dict) and body.get("mode") == "online"):
                    continue
                names.append(str(name))
        return sorted(set(names))
    except Exception:  # noqa: BLE001 — completion must stay silent on a broken project
        return []


def complete_object(*sections: str, online_only: bool = False) -> Callable:
    """A ``shell_complete`` callback completing names of ``sections`` (all kinds when none)."""

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
        from click.shell_completion import CompletionItem

        names = project_names(ctx, sections or SECTIONS, online_only=online_only)
        return [CompletionItem(n) for n in names if n.startswith(incomplete)]

    return complete


def complete_show(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    """``engine show [PATH] [KIND [NAME]]``: a kind first, then a name of that kind."""
    from click.shell_completion import CompletionItem

    kinds = {"source": "sources", "feature_group": "feature_groups", "function": "functions", "feature_view": "feature_views", "model": "models", "inference": "inference"}
    plural = {v: v for v in kinds.values()}
    args = [a for a in (ctx.params.get("args") or ()) if a in kinds or a in plural]
    if args:
        section = kinds.get(args[-1], plural.get(args[-1]))
        return [CompletionItem(n) for n in project_names(ctx, (section,)) if n.startswith(incomplete)]
    return [CompletionItem(k) for k in sorted({*kinds, *plural}) if k.startswith(incomplete)]
