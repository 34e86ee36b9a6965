"""Dependency order and cycle detection over named nodes. Pure; owns no spec or I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle as a closed path ``[a, b, …, a]`` if the graph has one, else None.

    ``edges[n]`` are the nodes ``n`` depends on; names not in ``edges`` are leaves.

    >>> find_cycle({"a": ["b"], "b": ["a"]})
    ['a', 'b', 'a']
    >>> find_cycle({"a": ["b"], "b": []}) is None
    True
    """
    white, grey, black = 0, 1, 2
    color = {n: white for n in edges}
    for start in sorted(edges):
        if color[start] != white:
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(d for d in edges[start] if d in edges))]
        path = [start]
        color[start] = grey
        while stack:
            node, todo = stack[-1]
            if todo:
                nxt = todo.pop(0)
                if color[nxt] == grey:
                    return path[path.index(nxt):] + [nxt]
                if color[nxt] == white:
                    color[nxt] = grey
                    path.append(nxt)
                    stack.append((nxt, sorted(d for d in edges[nxt] if d in edges)))
            else:
                color[node] = black
                path.pop()
                stack.pop()
    return None


def topological_order(edges: Mapping[str, Iterable[str]]) -> list[str]:
    """Nodes so that each comes after what it depends on; ties broken by name (deterministic).

    Raises ValueError on a cycle (callers check ``find_cycle`` first to report it).

    >>> topological_order({"c": ["a", "b"], "b": ["a"], "a": []})
    ['a', 'b', 'c']
    """
    import heapq

    deps = {n: {d for d in ds if d in edges} for n, ds in edges.items()}
    users: dict[str, set[str]] = {n: set() for n in edges}
    for n, ds in deps.items():
        for d in ds:
            users[d].add(n)
    ready = [n for n, ds in deps.items() if not ds]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        n = heapq.heappop(ready)
        order.append(n)
        for u in users[n]:
            deps[u].discard(n)
            if not deps[u]:
                heapq.heappush(ready, u)
    if len(order) != len(edges):
        raise ValueError("graph has a cycle")
    return order


def ancestors(edges: Mapping[str, Iterable[str]], roots: Iterable[str]) -> set[str]:
    """The roots and everything they depend on, transitively."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        todo.extend(edges.get(n, ()))
    return seen
