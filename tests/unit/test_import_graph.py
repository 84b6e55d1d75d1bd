"""The import graph of ``signoff`` has no cycle, counting imports inside functions too.

import-linter's contracts (``pyproject.toml``) pin the order between and inside packages; this
test looks at every module pair, so a cycle hidden in a function body or a ``TYPE_CHECKING``
block fails even in a package no contract covers yet.
"""

from __future__ import annotations

import grimp


def _import_graph() -> grimp.ImportGraph:
    # No cache: the graph is of the source as it is now, and nothing is written into the tree.
    return grimp.build_graph("signoff", cache_dir=None)


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = []
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work.append((root, sorted(graph.find_modules_directly_imported_by(root))))
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.find_modules_directly_imported_by(nxt))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_imports_back_what_imports_it() -> None:
    graph = _import_graph()
    assert len(graph.modules) > 100  # the whole package was read, not an empty stub
    cycles = _cycles(graph)
    chains = [" -> ".join(graph.find_shortest_chain(cycle[0], cycle[1]) or ()) for cycle in cycles]
    assert cycles == [], f"import cycles: {cycles}; e.g. {chains}"


def test_the_cycle_finder_reports_two_modules_that_import_each_other() -> None:
    """The finder itself: a pair that imports each other is one cycle; a one-way import is none."""
    graph = grimp.ImportGraph()
    for name in ("pkg", "pkg.a", "pkg.b", "pkg.c"):
        graph.add_module(name)
    graph.add_import(importer="pkg.a", imported="pkg.b", line_number=3, line_contents="import")
    graph.add_import(importer="pkg.b", imported="pkg.a", line_number=9, line_contents="import")
    graph.add_import(importer="pkg.c", imported="pkg.a", line_number=1, line_contents="import")
    assert _cycles(graph) == [["pkg.a", "pkg.b"]]
