"""A seasonal feature that matches *another* hour of the training day: a shifted clock."""

from __future__ import annotations

from typing import Any

import numpy as np

from detector.core.checks.result import Result
from detector.core.checks.view import View, _block, _coarse_of
from detector.core.inputs.layout import SCORE, Layout
from detector.core.settings import DetectorSettings
from detector.core.stats import distributions as stats

__all__ = ["time_shift_checks"]


def time_shift_checks(lay: Layout, v: View, st: DetectorSettings) -> list[Result]:
    """A seasonal feature that matches *another* hour of the training day: a shifted clock.

    When ``hour_of_day`` is computed in UTC instead of local time, every window looks exactly
    like the training data of k hours later. For each seasonal feature the window (all
    traffic) is compared with the training mixture of its own hours and of the same hours
    shifted by k = -12..12; a window far from its own hours (PSI / L-inf over the warning
    threshold) but close to a shifted set (at most a fifth of that, and under 0.1) is a clock
    or timezone bug in the pipeline, reported with the shift in hours.
    """
    hours = v.extra.get("hours")
    hourly = lay.ref.hourly.get("features", {}) if lay.ref.hourly else {}
    if hours is None or not hourly or v.events[0] < st.min_count:
        return []
    out: list[Result] = []
    th = st.thresholds
    P = v.P
    for name, profs in hourly.items():
        if name in lay.numeric:
            j = lay.numeric.index(name)
            cb = v.coarse[0, slice(*_block(v, j))]
            glob = lay.num_all_profiles[j]

            def dist(p: Any, j: int = j, cb: np.ndarray = cb) -> float:
                return float(stats.psi(_coarse_of(lay, j, np.asarray(p.freqs)), cb))
            thr = th.psi_warning
        elif name in lay.categorical:
            k = lay.categorical.index(name)
            V = len(lay.cat_vocab[name])
            off = int(lay.cat_offsets[k])
            obs = v.arrays["cat"][0, off : off + V + 1].astype(np.float64)
            glob = lay.ref.features[name]
            cats = list(lay.cat_vocab[name])

            def dist(p: Any, obs: np.ndarray = obs, cats: list[str] = cats) -> float:
                row = np.array([p.categories.get(c, 0.0) for c in cats] + [p.other_share])
                return float(stats.linf(row, obs))
            thr = th.linf_warning
        else:
            continue
        scores = {}
        for shift in range(-12, 13):
            mixed = lay._mixed(("g", name), profs, np.roll(hours, shift), glob)
            if mixed is not None:
                scores[shift] = dist(mixed)
        own = scores.get(0)
        if own is None or own < 2 * thr or len(scores) < 2:
            continue
        best = min((k for k in scores if k != 0), key=lambda k: scores[k])
        if scores[best] <= min(0.1, own / 5):
            val = np.zeros(P)
            val[0] = -best  # as the seasonal check says it: +k = looks like the data of k hours earlier
            m = np.zeros(P, bool)
            m[0] = True
            feature = "score" if name == SCORE else name
            out.append(Result(
                "feature_drift", feature, "time_shift_hours", val, m, m.copy(), m.copy(), np.full(P, np.nan), 0.0,
                lambda i, own=own, best=best, sc=scores[best]: {"reference": {"distance_own_hours": round(own, 4)},
                                                              "current": {"best_shift_hours": -best, "distance_shifted": round(sc, 4)}},
                lambda i, feature=feature, best=best: (
                    f"{feature} looks like training data from {abs(best)} h {'later' if best > 0 else 'earlier'}: "
                    "a clock / timezone shift in the feature pipeline (UTC vs local time?)"),
                effect=np.abs(val),
            ))
    return out

