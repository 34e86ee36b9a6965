"""Lineage: what an object is built from and what is built from it, read off the compiled DAG.

Owns traversal and rendering only; no connections.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.compiler.steps import Step
from engine.errors import UsageError, did_you_mean


@dataclass(frozen=True)
class Lineage:
    root: str | None  # step key the lineage is about, or None for the whole project
    upstream: dict[str, tuple[str, ...]]  # key -> what it reads
    downstream: dict[str, tuple[str, ...]]  # key -> what reads it

    def as_dict(self) -> dict:
        nodes = sorted(set(self.upstream) | set(self.downstream) | ({self.root} if self.root else set()))
        edges = sorted({(dep, key) for key, deps in self.upstream.items() for dep in deps} | {(key, user) for key, users in self.downstream.items() for user in users})
        return {"root": self.root, "nodes": nodes, "edges": [{"from": a, "to": b} for a, b in edges]}


def _edges(steps: dict[str, Step]) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    reads = {k: tuple(sorted({*s.depends_on, *s.after})) for k, s in steps.items()}
    users: dict[str, list[str]] = {k: [] for k in steps}
    for key, deps in reads.items():
        for d in deps:
            users.setdefault(d, []).append(key)
    return reads, {k: tuple(sorted(v)) for k, v in users.items()}


def find_key(steps: dict[str, Step], name: str) -> str:
    """The step key of ``name`` (``weather``, ``feature_group:weather``, ``delay_xgb`` …)."""
    plain = name.split(":")[-1].split("@")[0]
    matches = [k for k, s in steps.items() if s.id.name == plain]
    if not matches:
        hint = did_you_mean(plain, sorted({s.id.name for s in steps.values()}))
        raise UsageError(f"no object named '{name}' in the project" + (f" ({hint})" if hint else ""))
    return matches[0]


def lineage(steps: dict[str, Step], name: str | None = None) -> Lineage:
    """Everything upstream and downstream of ``name`` (the whole DAG when None)."""
    reads, users = _edges(steps)
    if name is None:
        return Lineage(None, reads, users)
    root = find_key(steps, name)

    def walk(start: str, edges: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        out: dict[str, tuple[str, ...]] = {}
        todo = [start]
        while todo:
            key = todo.pop()
            if key in out:
                continue
            out[key] = edges.get(key, ())
            todo.extend(out[key])
        return out

    return Lineage(root, walk(root, reads), walk(root, users))


def render(lin: Lineage) -> str:
    """Indented trees: what the object reads (upstream) and what reads it (downstream).

    >>> from engine.compiler.lineage import Lineage, render
    >>> print(render(Lineage("b", {"b": ("a",), "a": ()}, {"b": ("c",), "c": ()})), end="")
    b
      reads:
        a
      read by:
        c
    """
    if lin.root is None:
        lines = []
        for key in sorted(lin.upstream):
            deps = lin.upstream[key]
            lines.append(f"{key}" + (f"  <- {', '.join(deps)}" if deps else ""))
        return "\n".join(lines) + "\n"

    def tree(key: str, edges: dict[str, tuple[str, ...]], depth: int, seen: set[str]) -> list[str]:
        out = []
        for child in edges.get(key, ()):
            mark = " (see above)" if child in seen else ""
            out.append("  " * depth + child + mark)
            if not mark:
                seen.add(child)
                out += tree(child, edges, depth + 1, seen)
        return out

    lines = [lin.root]
    up = tree(lin.root, lin.upstream, 2, set())
    down = tree(lin.root, lin.downstream, 2, set())
    lines += ["  reads:", *(up or ["    (nothing)"])]
    lines += ["  read by:", *(down or ["    (nothing)"])]
    return "\n".join(lines) + "\n"
