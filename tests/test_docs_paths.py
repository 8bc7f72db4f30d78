"""The guides name files that exist: a newcomer reading docs/walkthrough.md with the code open
must find every module it names, after any move or split.

A path in backticks (``detector/core/engine.py``, ``detector/core/outcomes/tasks/``) must exist
from the repository root. A bare file name (``numeric.py``) continues the walk from a folder the
guide has already named, so it must exist in the folder of a path named before it (or at the root).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDES = ["docs/walkthrough.md", "docs/how-to-add-a-check.md", "docs/tasks-integration.md"]

_CODE = re.compile(r"`([^`\s]+)`")
_PATHLIKE = re.compile(r"^[\w.-]+(/[\w.-]+)*/?$")
_SUFFIXES = (".py", ".md", ".yaml", ".yml", ".json", ".toml", ".c", ".txt")


def named_paths(text: str) -> list[str]:
    """Backticked tokens that are file or folder names, in order of appearance.

    >>> named_paths("see `detector/core/engine.py` and `numeric.py`, not `Engine.advance` or `a b.py`")
    ['detector/core/engine.py', 'numeric.py']
    """
    out = []
    for tok in _CODE.findall(text):
        if not _PATHLIKE.match(tok):
            continue
        if tok.endswith("/") or (tok.endswith(_SUFFIXES) and not tok.startswith(".")):
            out.append(tok)
    return out


def missing_paths(text: str, root: Path = ROOT) -> list[str]:
    """The names in ``text`` that do not exist (see the module docstring for how a bare name resolves)."""
    folders = [root]
    missing = []
    for name in named_paths(text):
        if "/" in name:
            p = root / name
            if p.exists():
                folders.append(p if p.is_dir() else p.parent)
            else:
                missing.append(name)
        elif not any((f / name).exists() for f in folders):
            missing.append(name)
    return missing


@pytest.mark.parametrize("guide", GUIDES)
def test_every_file_a_guide_names_exists(guide: str) -> None:
    text = (ROOT / guide).read_text(encoding="utf-8")
    assert len(named_paths(text)) >= 10, "the guide names files in backticks; the parser found almost none"
    assert missing_paths(text) == [], f"{guide} names files that do not exist (moved or renamed?)"


def test_a_renamed_module_is_reported(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "window.py").write_text("")
    (tmp_path / "pkg" / "numeric.py").write_text("")
    text = "`pkg/window.py` runs `numeric.py` and `categorical.py`; `pkg/gone.py` moved; `pkg/` is a folder"
    assert missing_paths(text, tmp_path) == ["categorical.py", "pkg/gone.py"]
