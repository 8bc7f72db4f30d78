"""Checks of one categorical feature over a window, for every pseudo-row.

Missing values vs training, categories never seen in training (and the ones that vanished: a
renamed category), the category mix vs training (L-infinity with a G-test p-value) and vs
production's own history at the same time of day.
"""

from __future__ import annotations

import numpy as np

from detector.core.checks.common import _cat_shares, _r
from detector.core.checks.result import Result
from detector.core.checks.view import View, _ref_rows, is_clock
from detector.core.inputs.layout import Layout
from detector.core.reference.profile import CategoricalProfile
from detector.core.settings import DetectorSettings
from detector.core.stats import distributions as stats

__all__ = ["categorical_checks"]


def categorical_checks(lay: Layout, v: View, st: DetectorSettings, j: int) -> list[Result]:
    th = st.thresholds
    name = lay.categorical[j]
    vocab = lay.cat_vocab[name]
    cats = list(vocab)
    V = len(vocab)
    off = int(lay.cat_offsets[j])
    cnt = v.arrays["cat"][:, off : off + V + 2].astype(np.float64)
    known, unseen, miss = cnt[:, :V], cnt[:, V], cnt[:, V + 1]
    n_nm = known.sum(axis=1) + unseen
    n_all = n_nm + miss
    P = v.P
    refs = _ref_rows(lay, v, name)
    out: list[Result] = []
    # missing
    p0 = np.array([r.missing_rate if r is not None else np.nan for r in refs])
    n0 = np.array([r.count if r is not None else 0 for r in refs], dtype=np.float64)
    rate = np.divide(miss, n_all, out=np.zeros(P), where=n_all > 0)
    delta = rate - np.nan_to_num(p0)
    pv = stats.proportion_test(miss, n_all, np.nan_to_num(p0), alternative="greater", n0=np.maximum(n0, 1))
    hourly = bool(v.extra.get("hourly_skew", True)) | (np.nan_to_num(p0, nan=1.0) == 0)  # see _numeric
    out.append(Result(
        "missing_values", name, "missing_rate_delta", delta, ~np.isnan(p0) & (n_all >= st.min_count_rate) & hourly,
        delta >= th.missing_delta_warning, delta >= th.missing_delta_critical, pv, th.missing_delta_warning,
        lambda i: {"reference": {"missing_rate": _r(p0[i])}, "current": {"missing_rate": _r(rate[i]), "count": int(n_all[i])}},
        lambda i: f"{name} is missing in {rate[i]:.1%} of events (training: {p0[i]:.1%}): check the feature pipeline / join that fills it",
    ))
    # reference shares per pseudo-row on the global vocabulary (+ "other" bucket)
    RS = np.full((P, V + 1), np.nan)
    for i, r in enumerate(refs):
        if isinstance(r, CategoricalProfile):
            row = np.array([r.categories.get(c, 0.0) for c in cats] + [0.0])
            row[V] = max(0.0, 1.0 - row[:V].sum())
            RS[i] = row
    has = ~np.isnan(RS[:, 0])
    ref_n = np.array([r.n if r is not None else 1 for r in refs], dtype=np.float64)
    enough = n_nm >= st.min_count
    obs = np.concatenate([known, unseen[:, None]], axis=1)
    # unseen categories
    ush = np.divide(unseen, n_nm, out=np.zeros(P), where=n_nm > 0)
    uref = np.nan_to_num(RS[:, V])
    ud = ush - uref
    pv_u = stats.proportion_test(unseen, n_nm, uref, alternative="greater", n0=np.maximum(ref_n, 1))
    top_unseen = sorted(v.w.unseen[j].items(), key=lambda kv: -kv[1])[:5]

    def _vanished(i: int) -> list[str]:
        if not has[i] or n_nm[i] == 0:
            return []
        cur = known[i] / n_nm[i]
        return [c for k, c in enumerate(cats) if RS[i, k] >= 0.02 and cur[k] <= RS[i, k] / 5][:5]

    def _unseen_summary(i: int) -> str:
        van = _vanished(i)
        new = [k for k, _ in top_unseen]
        s = f"{ush[i]:.1%} of {name} values were never seen in training"
        if new:
            s += f" (e.g. {', '.join(repr(x) for x in new[:3])})"
        if van:
            s += f"; {', '.join(repr(x) for x in van[:3])} vanished: renamed category / changed encoding?"
        return s

    out.append(Result(
        "unseen_categories", name, "unseen_share", ush, has & (n_nm >= st.min_count_rate), ud >= th.unseen_share_warning,
        ud >= th.unseen_share_critical, pv_u, th.unseen_share_warning,
        lambda i: {"reference": {"other_share": _r(uref[i])}, "current": {"unseen_share": _r(ush[i]),
                   "top_unseen": {k: c for k, c in top_unseen}, "vanished": _vanished(i)}},
        _unseen_summary,
    ))
    if has.any():
        RSf = np.where(has[:, None], RS, np.nan_to_num(RS[has][0]) if has.any() else 0.0)
        li = stats.linf(RSf, obs)
        js = stats.js_distance(RSf, obs)
        _, _, pv_l = stats.gtest_gof(obs, RSf, ref_n=ref_n)
        out.append(Result(
            "feature_drift", name, "linf", li, has & enough & bool(v.extra.get("hourly_skew", True)) & (not is_clock(lay, name)), li >= th.linf_warning, li >= th.linf_critical, pv_l, th.linf_warning,
            lambda i: {"reference": _cat_shares(cats, RSf[i]), "current": _cat_shares(cats, obs[i] / max(n_nm[i], 1)),
                       "js_distance": _r(js[i])},
            lambda i: f"{name} category mix moved away from training (L-inf {li[i]:.2f}, JS {js[i]:.2f})",
        ))
    if v.base is not None:
        bc = v.base["cat"][:, off : off + V + 1]
        bn = bc.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            bp = np.nan_to_num(bc / bn[:, None])
        li_s = stats.linf(bp, obs)
        _, _, pv_s = stats.gtest_gof(obs, bp, ref_n=np.maximum(bn, 1))
        out.append(Result(
            "feature_drift", name, "linf_vs_seasonal", li_s, enough & (bn >= st.min_count) & (not is_clock(lay, name)), li_s >= th.linf_warning,
            li_s >= th.linf_critical, pv_s, th.linf_warning,
            lambda i: {"reference": _cat_shares(cats + ["__unseen__"], bp[i]), "current": _cat_shares(cats + ["__unseen__"], obs[i] / max(n_nm[i], 1))},
            lambda i: f"{name} category mix differs from its usual mix at this time of day (L-inf {li_s[i]:.2f})",
        ))
    return out
