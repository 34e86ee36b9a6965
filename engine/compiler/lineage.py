"""Lineage: what an object is built from and what is built from it, read off the compiled DAG.

Owns traversal and rendering only; no connections.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.compiler.selection import ObjectGraph
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


def lineage(graph: ObjectGraph, name: str | None = None) -> Lineage:
    """Everything upstream and downstream of ``name`` (the whole graph when None): the compiled
    steps, the functions the views compute and the online jobs (``engine.compiler.selection``)."""
    reads = {k: tuple(v) for k, v in graph.reads.items()}
    users = graph.users()
    if name is None:
        return Lineage(None, reads, users)
    root = find_key(graph, name)

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


def find_key(graph: ObjectGraph, name: str) -> str:
    """The key of ``name`` (``weather``, ``feature_group:weather``, ``delay_xgb`` …)."""
    kind, _, plain = name.rpartition(":")
    plain = plain.split("@")[0]
    matches = sorted(k for k, n in graph.names.items() if n == plain and (not kind or k.startswith(kind + ":")))
    if not matches:
        hint = did_you_mean(plain, sorted(set(graph.names.values())))
        raise UsageError(f"no object named '{name}' in the project" + (f" ({hint})" if hint else ""))
    return matches[0]


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
