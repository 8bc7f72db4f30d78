"""Inline SVG charts, generated in Python (no JavaScript, no external assets).

Every function returns one ``<svg>`` element string with a ``viewBox`` (it scales to its
container), a ``<title>`` for screen readers and per-mark ``<title>`` tooltips.

>>> s = paired_bars(["a", "b"], [0.5, 0.5], [0.9, 0.1], title="x")
>>> s.startswith("<svg") and s.count('class="bar ref"') == 2 and s.count('class="bar cur"') == 2
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from detector.web import esc

__all__ = ["paired_bars", "reliability", "timeline", "share_bars", "fmt_num", "fmt_pct", "nice_ticks",
           "REF_COLOR", "CUR_COLOR", "ACTION_COLORS"]

REF_COLOR = "#8fa3bf"
CUR_COLOR = "#e67e22"
BASE_COLOR = "#5d6d7e"
GRID = "#e3e7ee"
AXIS = "#7b8594"
TEXT = "#1d2430"
ACTION_COLORS = {"fix_data": "#c8641e", "fix_model": "#7d3c98", "fix_system": "#2364aa"}
_FONT = 'font-family="DejaVu Sans, Segoe UI, sans-serif"'


def fmt_num(x: float | None, digits: int = 3) -> str:
    """Compact number: 12.3k, 4.5M, 0.0123, 1.2e-05 (None/NaN -> '–').

    >>> fmt_num(45200.0), fmt_num(4520.0), fmt_num(0.01234), fmt_num(3.0), fmt_num(None)
    ('45.2k', '4,520', '0.0123', '3', '–')
    """
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    x = float(x)
    a = abs(x)
    if a >= 1e9:
        return f"{x / 1e9:.{digits}g}G"
    if a >= 1e6:
        return f"{x / 1e6:.{digits}g}M"
    if a >= 1e4:
        return f"{x / 1e3:.{digits}g}k"
    if a >= 10 ** digits:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def fmt_pct(x: float | None, digits: int = 1) -> str:
    """0.1234 -> '12.3%' (None -> '–')."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{100.0 * float(x):.{digits}f}%"


def nice_ticks(hi: float, n: int = 4) -> list[float]:
    """0 and ~n round steps up to at least ``hi``.

    >>> nice_ticks(0.37)
    [0.0, 0.1, 0.2, 0.3, 0.4]
    """
    if not hi > 0:
        return [0.0, 1.0]
    raw = hi / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    k = math.ceil(hi / step - 1e-9)
    return [round(i * step, 10) for i in range(k + 1)]


def _svg(w: float, h: float, title: str, body: str, cls: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="{cls}" viewBox="0 0 {w:.0f} {h:.0f}" width="{w:.0f}" '
            f'height="{h:.0f}" role="img" aria-label="{esc(title)}" {_FONT}><title>{esc(title)}</title>{body}</svg>')


def _legend(x: float, y: float, items: Sequence[tuple[str, str]]) -> str:
    out = []
    for label, color in items:
        out.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{color}" rx="1"/>'
                   f'<text x="{x + 14:.1f}" y="{y:.1f}" font-size="11" fill="{TEXT}">{esc(label)}</text>')
        x += 22 + 6.5 * len(label)
    return "".join(out)


def paired_bars(labels: Sequence[str], ref: Sequence[float], cur: Sequence[float], *, title: str = "",
                names: tuple[str, str] = ("training", "current"), width: int = 560, height: int = 230,
                highlight: Sequence[bool] | None = None) -> str:
    """Reference vs current share per bin, as paired bars (shares in [0, 1])."""
    n = len(labels)
    left, right, top = 44, 8, 22
    longest = max((len(s) for s in labels), default=1)
    rotate = n > 6 or longest * n * 6.2 > width - left - right
    bottom = min(92, 16 + 5.4 * min(longest, 16)) if rotate else 22
    ph = height - top - bottom
    pw = width - left - right
    hi = max([*ref, *cur, 0.01])
    ticks = nice_ticks(hi * 1.05)
    ymax = ticks[-1]
    parts = []
    for t in ticks:
        y = top + ph - ph * t / ymax
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
                     f'<text x="{left - 4}" y="{y + 3.5:.1f}" font-size="10" fill="{AXIS}" text-anchor="end">'
                     f'{t * 100:.{0 if ymax >= 0.05 else 1}f}%</text>')
    gw = pw / max(n, 1)
    bw = max(1.5, min(18.0, gw * 0.38))
    for i, lab in enumerate(labels):
        cx = left + gw * (i + 0.5)
        if highlight is not None and i < len(highlight) and highlight[i]:
            parts.append(f'<rect x="{left + gw * i:.1f}" y="{top}" width="{gw:.1f}" height="{ph:.1f}" fill="#fdf5ec"/>')
        for k, (v, color, cls, nm) in enumerate(((ref[i], REF_COLOR, "ref", names[0]), (cur[i], CUR_COLOR, "cur", names[1]))):
            h = ph * max(0.0, v) / ymax
            x = cx - bw - 0.5 + k * (bw + 1)
            parts.append(f'<rect class="bar {cls}" x="{x:.1f}" y="{top + ph - h:.1f}" width="{bw:.1f}" height="{max(h, 0.0):.1f}" '
                         f'fill="{color}"><title>{esc(lab)}: {esc(nm)} {fmt_pct(v)}</title></rect>')
        ty = top + ph + 12
        text = lab if len(lab) <= 18 else lab[:17] + "…"
        if rotate:
            parts.append(f'<text x="{cx + 3:.1f}" y="{ty:.1f}" font-size="10" fill="{TEXT}" text-anchor="end" '
                         f'transform="rotate(-40 {cx + 3:.1f} {ty:.1f})">{esc(text)}</text>')
        else:
            parts.append(f'<text x="{cx:.1f}" y="{ty:.1f}" font-size="10" fill="{TEXT}" text-anchor="middle">{esc(text)}</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + ph:.1f}" y2="{top + ph:.1f}" stroke="{AXIS}"/>')
    parts.append(_legend(left + 4, 13, [(names[0], REF_COLOR), (names[1], CUR_COLOR)]))
    return _svg(width, height, title or "reference vs current distribution", "".join(parts), "chart-bars")


def share_bars(rows: Sequence[tuple[str, float, float]], *, names: tuple[str, str] = ("share of traffic", "share of loss"),
               title: str = "", width: int = 560) -> str:
    """Horizontal paired bars per row label (two shares in [0, 1] each)."""
    left, right, top, rh = 150, 46, 24, 24
    height = top + rh * max(len(rows), 1) + 8
    pw = width - left - right
    hi = max([max(a, b) for _, a, b in rows] + [0.01])
    parts = [_legend(left, 13, [(names[0], REF_COLOR), (names[1], CUR_COLOR)])]
    for i, (lab, a, b) in enumerate(rows):
        y = top + i * rh
        text = lab if len(lab) <= 24 else lab[:23] + "…"
        parts.append(f'<text x="{left - 6}" y="{y + 14:.1f}" font-size="11" fill="{TEXT}" text-anchor="end">{esc(text)}</text>')
        for k, (v, color, nm) in enumerate(((a, REF_COLOR, names[0]), (b, CUR_COLOR, names[1]))):
            wv = pw * max(v, 0.0) / hi
            yy = y + 3 + k * 9
            parts.append(f'<rect x="{left}" y="{yy:.1f}" width="{wv:.1f}" height="8" fill="{color}">'
                         f'<title>{esc(lab)}: {esc(nm)} {fmt_pct(v)}</title></rect>'
                         f'<text x="{left + wv + 4:.1f}" y="{yy + 7.5:.1f}" font-size="9.5" fill="{AXIS}">{fmt_pct(v, 0)}</text>')
    return _svg(width, height, title or "shares", "".join(parts), "chart-share")


def reliability(current: Sequence[tuple[float, float, float]], baseline: Sequence[tuple[float, float, float]] = (),
                *, title: str = "reliability diagram", size: int = 340,
                names: tuple[str, str] = ("current", "baseline")) -> str:
    """Mean predicted score (x) vs observed positive rate (y) per score bin; points = (pred, obs, n)."""
    left, bottom, top, right = 42, 36, 22, 10
    pw, ph = size - left - right, size - top - bottom

    def X(v: float) -> float:
        return left + pw * min(max(v, 0.0), 1.0)

    def Y(v: float) -> float:
        return top + ph - ph * min(max(v, 0.0), 1.0)

    parts = []
    for t in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        parts.append(f'<line x1="{X(t):.1f}" x2="{X(t):.1f}" y1="{top}" y2="{top + ph}" stroke="{GRID}"/>'
                     f'<line x1="{left}" x2="{left + pw}" y1="{Y(t):.1f}" y2="{Y(t):.1f}" stroke="{GRID}"/>'
                     f'<text x="{X(t):.1f}" y="{top + ph + 13}" font-size="10" fill="{AXIS}" text-anchor="middle">{t:.1f}</text>'
                     f'<text x="{left - 5}" y="{Y(t) + 3.5:.1f}" font-size="10" fill="{AXIS}" text-anchor="end">{t:.1f}</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="{AXIS}"/>')
    parts.append(f'<line class="diagonal" x1="{X(0)}" y1="{Y(0)}" x2="{X(1)}" y2="{Y(1)}" stroke="{AXIS}" stroke-dasharray="4 3"/>')
    parts.append(f'<text x="{left + pw / 2:.1f}" y="{size - 6}" font-size="10.5" fill="{TEXT}" text-anchor="middle">'
                 f'mean predicted score</text>')
    parts.append(f'<text x="11" y="{top + ph / 2:.1f}" font-size="10.5" fill="{TEXT}" text-anchor="middle" '
                 f'transform="rotate(-90 11 {top + ph / 2:.1f})">observed positive rate</text>')
    nmax = max([p[2] for p in [*current, *baseline]] + [1.0])
    for pts, color, cls, nm in ((baseline, BASE_COLOR, "baseline", names[1]), (current, CUR_COLOR, "current", names[0])):
        if not pts:
            continue
        path = " ".join(f"{'M' if i == 0 else 'L'}{X(p):.1f},{Y(o):.1f}" for i, (p, o, _n) in enumerate(pts))
        dash = ' stroke-dasharray="5 3"' if cls == "baseline" else ""
        parts.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        for p, o, n in pts:
            r = 2.5 + 4.5 * math.sqrt(max(n, 0.0) / nmax)
            parts.append(f'<circle class="point {cls}" cx="{X(p):.1f}" cy="{Y(o):.1f}" r="{r:.1f}" fill="{color}" '
                         f'fill-opacity="0.85"><title>{esc(nm)}: predicted {p:.3f}, observed {o:.3f}, n={int(n)}</title></circle>')
    items = [(names[0], CUR_COLOR)] + ([(names[1], BASE_COLOR)] if baseline else [])
    parts.append(_legend(left + 4, 14, items))
    return _svg(size, size, title, "".join(parts), "chart-reliability")


def _ts_label(t: float, span: float) -> str:
    d = datetime.fromtimestamp(t, tz=UTC)
    return d.strftime("%m-%d %H:%M") if span <= 4 * 86400 else d.strftime("%Y-%m-%d")


def timeline(lanes: Sequence[dict[str, Any]], t0: float, t1: float, *, title: str = "alert timeline",
             width: int = 1160) -> str:
    """One lane per incident: ``{"label", "segments": [(start, end, color, open, tooltip)]}``.

    Time runs left to right from ``t0`` to ``t1`` (epoch seconds, UTC axis labels); an open
    incident is drawn to ``t1`` with an arrow head.
    """
    left, right, top, lh = 300, 16, 10, 22
    height = top + lh * max(len(lanes), 1) + 30
    pw = width - left - right
    span = max(t1 - t0, 1.0)

    def X(t: float) -> float:
        return left + pw * min(max((t - t0) / span, 0.0), 1.0)

    parts = []
    step = next((s for s in (900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400)
                 if span / s <= 10), 14 * 86400)
    t = math.ceil(t0 / step) * step
    axis_y = top + lh * max(len(lanes), 1) + 4
    while t <= t1:
        parts.append(f'<line x1="{X(t):.1f}" x2="{X(t):.1f}" y1="{top}" y2="{axis_y}" stroke="{GRID}"/>'
                     f'<text x="{X(t):.1f}" y="{axis_y + 13}" font-size="10" fill="{AXIS}" text-anchor="middle">'
                     f'{_ts_label(t, span)}</text>')
        t += step
    parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{axis_y}" y2="{axis_y}" stroke="{AXIS}"/>')
    parts.append(f'<text x="{left + pw}" y="{axis_y + 26}" font-size="10" fill="{AXIS}" text-anchor="end">event time (UTC)</text>')
    for i, lane in enumerate(lanes):
        y = top + i * lh
        lab = str(lane.get("label", ""))
        text = lab if len(lab) <= 46 else lab[:45] + "…"
        parts.append(f'<text x="{left - 8}" y="{y + 15:.1f}" font-size="11" fill="{TEXT}" text-anchor="end">{esc(text)}</text>')
        for s, e, color, is_open, tip in lane.get("segments", ()):
            x0, x1 = X(s), X(e)
            w = max(x1 - x0, 3.0)
            parts.append(f'<rect class="incident{" open" if is_open else ""}" x="{x0:.1f}" y="{y + 4:.1f}" width="{w:.1f}" '
                         f'height="14" rx="3" fill="{color}"><title>{esc(tip)}</title></rect>')
            if is_open:
                parts.append(f'<path d="M{x0 + w:.1f},{y + 2:.1f} l7,9 l-7,9 z" fill="{color}"/>')
    return _svg(width, height, title, "".join(parts), "chart-timeline")
