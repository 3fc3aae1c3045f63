"""The house keeps its shape: no import cycle between ntjax's modules (imports inside functions count),
the bridges stay on their side, and the folders say what each layer is.

import-linter (`lint-imports`, run by `make test`) checks the layer contracts in pyproject.toml; it cannot
see `ntjax.bridges` (installed from bridges/ by package-dir), so the bridges' rules are checked here.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREES = {"ntjax": ROOT / "ntjax", "ntjax.bridges": ROOT / "bridges"}


def _modules() -> dict[str, Path]:
    """Every module of ntjax and its bridges by dotted name."""
    out: dict[str, Path] = {}
    for prefix, folder in TREES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([prefix, *parts])] = path
    return out


def _not_a_design_edge(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Imports only for type checkers, and lazy re-exports of an optional dependency's callback through a
    module `__getattr__` (`from ntjax.bridges.torch import LightningCallback` without importing lightning)."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
        if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
            return True
    return False


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The ntjax modules `name` imports anywhere in its file (inside functions too)."""
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if _not_a_design_edge(node, parents):
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _is_package_init_edge(a: str, b: str) -> bool:
    """A package's __init__ importing its own submodules (and they the package) is not a design cycle."""
    return a.startswith(b + ".") or b.startswith(a + ".")


def test_no_import_cycles_counting_imports_inside_functions():
    graph = _graph()
    pruned = {a: {b for b in bs if not _is_package_init_edge(a, b)} for a, bs in graph.items()}
    assert _cycles(pruned) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_bridges_feed_the_shared_analysis_and_nothing_above_it():
    forbidden = ("ntjax.commands", "ntjax.cli", "ntjax.sweep", "ntjax.scaling", "ntjax.readers", "ntjax.monitor")
    graph = _graph()
    bad = {m: sorted(t for t in targets if t.startswith(forbidden))
           for m, targets in graph.items() if m.startswith("ntjax.bridges")}
    assert {m: t for m, t in bad.items() if t} == {}


def test_the_top_level_shows_the_layers():
    folders = {p.name for p in (ROOT / "ntjax").iterdir() if (p / "__init__.py").exists()}
    assert {"core", "diagnostics", "viz", "readers", "commands"} <= folders
    top_modules = {p.stem for p in (ROOT / "ntjax").glob("*.py")}
    assert top_modules <= {"__init__", "cli", "errors", "trainer", "evaluation"}
