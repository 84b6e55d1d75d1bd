"""Cycles in the task graph: one per strongly connected component, named from its first task."""

from __future__ import annotations

from collections import deque

__all__ = ["find_cycles"]


def find_cycles(order: list[str], upstream: dict[str, list[str]]) -> list[list[str]]:
    """One cycle per strongly connected component, starting at its first task in file order."""
    downstream: dict[str, list[str]] = {name: [] for name in order}
    for target in order:
        for source in upstream[target]:
            downstream[source].append(target)
    position = {name: i for i, name in enumerate(order)}
    cycles: list[list[str]] = []
    for component in _components(order, downstream):
        start = min(component, key=position.__getitem__)
        if len(component) == 1 and start not in downstream[start]:
            continue
        cycles.append(_cycle_through(start, set(component), downstream))
    return sorted(cycles, key=lambda c: position[c[0]])


def _components(order: list[str], succ: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iterative (flows can be long chains)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)

    for root in order:
        if root in index:
            continue
        visit(root)
        work = [(root, iter(succ[root]))]
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    visit(child)
                    work.append((child, iter(succ[child])))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    result.append(component)
    return result


def _cycle_through(start: str, members: set[str], succ: dict[str, list[str]]) -> list[str]:
    """The shortest path start -> ... -> start inside one component."""
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in succ[node]:
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if child in members and child not in parent:
                parent[child] = node
                queue.append(child)
    return [start, start]  # unreachable for a real component; keeps the type simple
