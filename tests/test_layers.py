"""The package's layers, read from its imports: the core imports only itself, the Kafka layer and the
presentation layers import no command, and nothing imports the old ``detector.shells``."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "detector"

#: package -> what it may not import (prefixes of dotted module names)
FORBIDDEN = {
    "detector/core": ("detector.kafka", "detector.cli", "detector.web", "detector.exporters", "detector.io",
                      "detector.bench", "detector.sim", "detector.replay", "detector.api", "detector.config"),
    "detector/kafka": ("detector.cli", "detector.bench"),
    "detector/web": ("detector.cli", "detector.bench"),
    "detector/exporters": ("detector.cli", "detector.bench", "detector.web"),
    "detector/io": ("detector.cli", "detector.bench", "detector.web", "detector.kafka"),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.Import):
            out += [(n.lineno, a.name) for a in n.names]
        elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
            out += [(n.lineno, f"{n.module}.{a.name}") for a in n.names]
    return out


def test_each_layer_imports_only_what_is_below_it() -> None:
    bad = []
    for folder, forbidden in FORBIDDEN.items():
        for path in sorted((PKG.parent / folder).rglob("*.py")):
            for line, name in _imports(path):
                if name.startswith(forbidden):
                    bad.append(f"{path.relative_to(PKG.parent)}:{line} imports {name}")
    assert not bad, "\n".join(bad)


def test_nothing_imports_the_old_shells_package() -> None:
    bad = [f"{p.relative_to(PKG.parent)}:{line}" for p in sorted(PKG.rglob("*.py")) for line, name in _imports(p)
           if name.startswith("detector.shells")]
    assert not bad and not (PKG / "shells").exists(), bad


def _module(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    """module -> the package modules it imports (at module level or inside a function)."""
    mods = {_module(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        out: set[str] = set()
        for _, name in _imports(path):
            while name and name not in mods:  # "pkg.module.name" -> "pkg.module"
                name = name.rpartition(".")[0]
            if name and name != mod and not mod.startswith(name + "."):  # a package's own __init__ is no edge
                out.add(name)
        graph[mod] = out
    return graph


def test_no_module_imports_one_that_imports_it_back() -> None:
    """No import cycles, lazy imports included: each module can be read (and moved) after what it uses."""
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, "\n".join(" <-> ".join(c) for c in cycles)
