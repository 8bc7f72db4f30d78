"""Features that the clock sets, recognised from production's own history (no training timestamps needed).

Training data with a timestamp column shows which features the calendar fixes (a local hour, a
weekday: :func:`detector.core.reference.hourly.clock_features`), and the engine then skips their
distribution and value-share tests against training. A sampled training set without timestamps
shows nothing of the kind, yet the feature is just as much a calendar fact: in one UTC hour a
local hour takes one value per region. Its share of one value over the trailing day is then how
many of a slice's events happened at that local hour - a fact of the day's volume curve and of
chance in a slice of a hundred events a day, not a default value served by a broken pipeline.

The seasonal baseline (:mod:`detector.core.inputs.seasonal`) holds the same evidence training's
timestamps would: each slot of the day (or week) per slice row, in coarse bins. A numeric feature is
*set by the clock in production* by the same rule training uses: within (slot) or within (slot,
slice value) groups of one slice dimension, the most common coarse bin holds at least
:data:`~detector.core.reference.hourly.CLOCK_SHARE` of the events, while the slice value alone does
not fix it (the most common bin per slice value holds less than
:data:`~detector.core.reference.hourly.SLICE_SHARE`) and the feature is not mostly one bin anyway
(under half of all traffic). At least :data:`MIN_SLOTS` slots of history and
``4 x MIN_ROWS`` events in groups of at least :data:`MIN_GROUP` are needed; until then nothing is recognised.

The trailing day's value-share test against training (:mod:`detector.core.checks.daily`) skips
such features. A default served in one still pages: the hourly value-share test against the same
hour of earlier days (:mod:`detector.core.checks.seasonal`) keeps running for them, as do the
missing-value, unseen-value, schema, parity and clock-shift checks.
"""

from __future__ import annotations

import numpy as np

from detector.core.inputs.layout import Layout
from detector.core.inputs.seasonal import SeasonalBaseline
from detector.core.reference.hourly import CLOCK_SHARE, MIN_ROWS, SLICE_SHARE

__all__ = ["clock_in_production", "MIN_SLOTS"]

#: slots of the day that need history before a feature can be called clock-set (half a day of hours)
MIN_SLOTS = 12
#: events a (slot, slice value) group needs to count (decayed sums of the seasonal baseline)
MIN_GROUP = 10


def clock_in_production(lay: Layout, sb: SeasonalBaseline) -> frozenset[str]:
    """Numeric features (never the score) whose coarse bin the slot of the day fixes, alone or with one
    slice value (see the module docstring)."""
    seen = sb.days > 0
    if int(seen.sum()) < min(MIN_SLOTS, sb.slots):
        return frozenset()
    span = lay.top_k + 1
    groups = [np.array([0])] + [np.arange(1 + d * span, 1 + (d + 1) * span) for d in range(len(lay.dims))]
    out = []
    for j, name in enumerate(lay.numeric):
        cb = sb.blocks[j]
        counts = sb.num[seen][:, :, cb.start : cb.stop - 1]  # (slots seen, rows, coarse bins), missing excluded
        everyone = counts[:, 0].sum(axis=0)
        if everyone.sum() < 4 * MIN_ROWS or everyone.max() >= 0.5 * everyone.sum():
            continue  # too little to judge, or mostly one bin anyway
        for k, rows in enumerate(groups):
            c = counts[:, rows]  # (slots, rows of the dimension, bins)
            size = c.sum(axis=2)
            use = size >= MIN_GROUP  # a slot and slice with a handful of events sits in one bin by chance
            total = size[use].sum()
            if total < 4 * MIN_ROWS:
                continue
            by_slot = c.max(axis=2)[use].sum() / total
            by_slice = c.sum(axis=0).max(axis=1).sum() / c.sum()
            if by_slot >= CLOCK_SHARE and (k == 0 or by_slice < SLICE_SHARE):
                out.append(name)
                break
    return frozenset(out)
