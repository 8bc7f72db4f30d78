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
