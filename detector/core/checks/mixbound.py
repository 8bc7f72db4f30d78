"""The most a value's share could be in a slice whose mix along another dimension moved.

Slice rows have no cross-counts to re-mix with (how much of this hour's east traffic is online is not
counted; :mod:`detector.core.checks.remix` re-mixes only all traffic). Whatever that mix is, the share of
one exact value in the slice is at most the largest share among the other dimension's slices present in
the window. On a holiday a region's traffic is all online, and online applicants ask for small limits:
the region's share of 1000 doubles against its own profile (mostly branch customers) and is no
default. The value-share tests of slice rows (against training, :mod:`detector.core.checks.numeric`, and
against the same hour of earlier days, :mod:`detector.core.checks.seasonal`) therefore take that bound
as their reference when it is higher; a default value served in the slice still rises above every
channel's share. Used only when a dimension's mix moved this window (``view.extra["variant_mix"]``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["mix_bound"]


def mix_bound(v: Any, shares: np.ndarray, top_k: int) -> np.ndarray | None:
    """``shares`` (pseudo-rows x values: each row's reference share of each value, NaN = no reference) ->
    per slice row and complement, the largest share among the present slices of every other dimension whose
    mix moved (NaN where there is none: all traffic, variant rows, rows of the moved dimension); None when
    no mix moved or no dimension's present slices all have a reference."""
    mixes = v.extra.get("variant_mix")
    if not mixes:
        return None
    span = top_k + 1
    variants = set(v.extra.get("variants") or ())
    real = [k for k in range(len(v.rows)) if not v.comp[k] and k not in variants]
    pos = {int(v.rows[k]): k for k in real}
    bound_of: dict[int, np.ndarray] = {}
    for rows, w in mixes:
        present = [int(r) for r, x in zip(rows.tolist(), w.tolist(), strict=True) if x > 0]
        ks = [pos.get(r) for r in present]
        if not ks or any(k is None for k in ks):
            continue
        sub = shares[ks]
        if np.isnan(sub).all(axis=1).any():
            continue  # a present slice without a reference bounds nothing
        bound_of[(present[0] - 1) // span] = np.nanmax(np.where(np.isnan(sub), -np.inf, sub), axis=0)
    if not bound_of:
        return None
    out = np.full(shares.shape, np.nan)
    for k, r in enumerate(v.rows.tolist()):
        if r == 0 or k in variants:
            continue
        others = [b for d, b in bound_of.items() if d != (int(r) - 1) // span]
        if others:
            out[k] = np.max(np.stack(others), axis=0)
    return out
