"""The package's import graph: no circle, and the arrows that must not exist do not.

Every ``import`` of a ``keypilot`` module counts, at module level or inside a function (a lazy
import is still a dependency). Importing a submodule runs its package's ``__init__`` first;
that arrow is Python's, not the code's, and is left out.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "keypilot"

# (importer prefix, imported prefix, why it must not happen)
FORBIDDEN = [
    ("keypilot.data", "keypilot.inference", "data sits below inference; what both need lives in keypilot.preprocess"),
    ("keypilot.train", "keypilot.cli", "the training package knows nothing of the command line"),
    ("keypilot.models", "keypilot.data", "the model library is importable without the data code"),
    ("keypilot.models", "keypilot.train", "the model library is importable without the training code"),
    ("keypilot.preprocess", "keypilot.data", "shared preprocessing lives below data and inference"),
    ("keypilot.preprocess", "keypilot.inference", "shared preprocessing lives below data and inference"),
    ("keypilot.images", "keypilot.serve", "the screenshot loader lives below the server and the CLI"),
]


def module_files() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """module -> the keypilot modules it imports."""
    modules = module_files()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from pkg import sub` imports the submodule; `from mod import name` the module.
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_walker_sees_real_imports() -> None:
    graph = import_graph()
    assert "keypilot.preprocess" in graph["keypilot.data.dataset"]
    assert "keypilot.train.loop" in graph["keypilot.cli"]  # a lazy import inside a handler counts
    assert "keypilot.labels" in graph["keypilot.models.moe"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circle() -> None:
    assert cycles(import_graph()) == []


@pytest.mark.parametrize(("importer", "imported", "why"), FORBIDDEN, ids=[f"{a}->{b}" for a, b, _ in FORBIDDEN])
def test_forbidden_arrows_are_absent(importer: str, imported: str, why: str) -> None:
    def within(module: str, prefix: str) -> bool:
        return module == prefix or module.startswith(prefix + ".")

    arrows = [f"{source} -> {target}" for source, targets in import_graph().items() if within(source, importer)
              for target in sorted(targets) if within(target, imported)]
    assert arrows == [], why
