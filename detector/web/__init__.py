"""HTML for people without Grafana: the page shell (``page.html``) and inline SVG charts (:mod:`.svg`).

Pages are single self-contained files: CSS is inline in the template and every chart is an
inline ``<svg>`` generated in Python, so a report can be mailed, attached to a ticket or opened
from disk with no network access.
"""

from __future__ import annotations

import html
import math
from functools import lru_cache
from importlib import resources
from string import Template

__all__ = ["esc", "page", "finite"]


def esc(x: object) -> str:
    """HTML-escape any value's text (None -> empty)."""
    return "" if x is None else html.escape(str(x), quote=True)


def finite(x: object) -> float | None:
    """A value as a finite float, or None (missing, not a number, NaN, infinite): for display."""
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


@lru_cache(maxsize=4)
def _template(name: str) -> Template:
    return Template(resources.files("detector").joinpath("web", name).read_text(encoding="utf-8"))


def page(title: str, body: str, *, footer: str = "", refresh: int | None = None) -> str:
    """A whole HTML document around ``body`` (already HTML); ``refresh`` = auto-reload seconds."""
    from detector import __version__

    head = f'<meta http-equiv="refresh" content="{int(refresh)}">\n' if refresh else ""
    return _template("page.html").substitute(title=esc(title), body=body, footer=footer, head_extra=head,
                                             version=esc(__version__))
