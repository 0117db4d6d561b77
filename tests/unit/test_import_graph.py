"""The package's import graph has no cycles, lazy and TYPE_CHECKING imports included.

A cycle hidden behind an import inside a function still couples two modules both ways; the
layers contract (import-linter) cannot see it when both sides are in one layer.
"""

from __future__ import annotations

import grimp


def cycles(graph: grimp.ImportGraph, package: str) -> list[list[str]]:
    """Strongly connected groups of more than one module under `package` (Tarjan)."""
    modules = sorted(m for m in graph.modules if m.startswith(package + "."))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if not imported.startswith(package + "."):
                continue
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in modules:
        if module not in index:
            visit(module)
    return found


def test_flare_has_no_import_cycles() -> None:
    assert cycles(grimp.build_graph("flare"), "flare") == []


def test_the_check_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for a, b in (("pkg.a", "pkg.b"), ("pkg.b", "pkg.c"), ("pkg.c", "pkg.a"), ("pkg.c", "pkg.d")):
        graph.add_import(importer=a, imported=b)

    assert cycles(graph, "pkg") == [["pkg.a", "pkg.b", "pkg.c"]]
