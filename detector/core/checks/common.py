"""Small helpers shared by the window checks: rounding and formatting for evidence, shares,
and quantiles read off binned histograms."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detector.core.inputs.window import WindowCounts
from detector.core.stats.effects import hist_quantile, sig


def _r(x: Any, nd: int = 4) -> Any:
    """Evidence rounding (:func:`detector.core.stats.effects.sig`); a value that is not a number stays as it is."""
    try:
        return sig(x, nd)
    except (TypeError, ValueError):
        return x


def _fmt(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.4g}"


def _shares(c: np.ndarray) -> list[float]:
    s = c.sum()
    return [round(float(x) / s, 4) if s > 0 else 0.0 for x in c]


def _cat_shares(cats: list[str], shares: np.ndarray, top: int = 8) -> dict[str, float]:
    names = cats + ["__other__"] if len(shares) == len(cats) + 1 else cats
    pairs = sorted(zip(names, shares.tolist(), strict=False), key=lambda kv: -kv[1])[:top]
    return {k: round(v, 4) for k, v in pairs}


def _thr(w: WindowCounts) -> dict[str, int]:
    return {str(k): v for k, v in sorted(w.thresholds.items(), key=lambda kv: -kv[1])[:5]}


def _median_from_fine(edges: np.ndarray, fine: np.ndarray) -> float:
    """Median of a fine histogram (:func:`detector.core.stats.effects.hist_quantile`), NaN when empty."""
    return float(hist_quantile(fine, edges, 0.5))


def _times(r: float) -> str:
    return f"{r:.3g}x larger" if r >= 1 else f"{1 / r:.3g}x smaller"


_UNITS = [(100, "cents vs dollars?"), (1000, "ms vs s, or g vs kg?"), (60, "minutes vs hours, or s vs min?"),
          (3600, "s vs h?"), (1e6, "micro vs whole units?"), (24, "hours vs days?"), (1024, "bytes vs KiB?")]


def _unit_guess(r: float) -> str:
    x = r if r >= 1 else 1 / r
    best = min(_UNITS, key=lambda u: abs(math.log(x / u[0])))
    if abs(math.log(x / best[0])) < math.log(1.3):
        return best[1]
    return "check the units and scaling of this feature upstream"

