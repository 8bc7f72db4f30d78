"""Checks of one numeric feature (or the score) over a window, for every pseudo-row.

Missing values vs training, a unit change (a pure shift of log|x| with an unchanged log-spread),
the share of one exact value (a default / fallback being served), the distribution vs training
(values outside the training range, PSI with a G-test p-value) and vs production's own history at
the same time of day (PSI vs the seasonal baseline).

:func:`numeric_checks` runs them for every numeric block at once: each block prepares its rows and
asks for its statistics (:class:`~detector.core.checks.batched.Batched`), one call per statistic
computes them for all blocks together, then each block builds its results. Per block, the values
are those of separate calls (the statistics are row-wise); only the per-call overhead goes - it
was most of a window's close on a few dozen pseudo-rows.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np

from detector.core.checks.batched import Batched
from detector.core.checks.common import _fmt, _median_from_fine, _r, _shares, _times, _unit_guess
from detector.core.checks.mixbound import mix_bound
from detector.core.checks.result import Result
from detector.core.checks.unitmix import partial_unit
from detector.core.checks.view import View, _coarse_of, _fine_ref, _ref_rows, is_clock
from detector.core.inputs.layout import SCORE, Layout
from detector.core.inputs.seasonal import SeasonalBaseline
from detector.core.reference.profile import NumericProfile, value_share
from detector.core.settings import DetectorSettings
from detector.core.stats import distributions as stats

__all__ = ["numeric_checks"]


def numeric_checks(lay: Layout, v: View, sb: SeasonalBaseline, st: DetectorSettings, cands: np.ndarray,
                   cand_ref: np.ndarray) -> list[Result]:
    """The checks of every numeric block (features, then the score), in block order."""
    b = Batched()
    blocks = [_block_checks(lay, v, sb, st, j, cands, cand_ref, b) for j in range(lay.n_num_blocks)]
    for g in blocks:
        next(g)  # each block asks for its statistics
    b.run()
    out: list[Result] = []
    for g in blocks:
        try:
            next(g)
        except StopIteration as done:
            out.extend(done.value)
    return out


def _p_greater(x: Any, n: Any, p0: Any) -> Any:
    return stats.proportion_test(x, n, p0, alternative="greater")


def _p_greater_n0(x: Any, n: Any, p0: Any, n0: Any) -> Any:
    return stats.proportion_test(x, n, p0, alternative="greater", n0=n0)


def _gtest(counts: Any, ref_p: Any, ref_n: Any) -> Any:
    return stats.gtest_gof(counts, ref_p, ref_n=ref_n)


def _block_checks(lay: Layout, v: View, sb: SeasonalBaseline, st: DetectorSettings, j: int, cands: np.ndarray,
                  cand_ref: np.ndarray, b: Batched) -> Generator[None, None, list[Result]]:
    th = st.thresholds
    name = SCORE if j == lay.n_num_blocks - 1 else lay.numeric[j]
    feature = "score" if name == SCORE else name
    drift_kind = "score_drift" if name == SCORE else "feature_drift"
    off, size = int(lay.num_offsets[j]), int(lay.num_sizes[j])
    fine = v.arrays["num"][:, off : off + size - 1].astype(np.float64)
    miss = v.arrays["num"][:, off + size - 1].astype(np.float64)
    n_nm = fine.sum(axis=1)
    n_all = n_nm + miss
    P = v.P
    refs = _ref_rows(lay, v, name)
    mixed = v.extra.get("variants") if v.extra.get("variant_mix") else None  # re-mixed this window: not kept
    rr = _ref_arrays(lay, j, refs, cands[j], set(mixed) if mixed else ())
    has_ref = np.array([r is not None for r in refs])
    enough = n_nm >= st.min_count
    cb = sb.blocks[j]
    coarse = v.coarse[:, cb.start : cb.stop - 1]

    # ---- missing values vs training
    p0, n0 = rr["p0"], rr["n0"]
    rate = np.divide(miss, n_all, out=np.zeros(P), where=n_all > 0)
    delta = rate - np.nan_to_num(p0)
    hourly = bool(v.extra.get("hourly_skew", True))
    # a feature set by the clock (a local hour) has no sampling distribution to test (detector.core.reference.hourly)
    dist = hourly and not is_clock(lay, name)
    # without hour-of-day profiles an hour is judged against training only for what no hour of training
    # had at all (a feature never missing, a value never seen): time of day cannot produce that
    tested = has_ref & (n_all >= st.min_count_rate) & (hourly | (np.nan_to_num(p0, nan=1.0) == 0))
    (pv,) = b.call(_p_greater_n0, 1, miss, n_all, np.nan_to_num(p0), np.maximum(n0, 1))
    results: list[Any] = [lambda: Result(
        "missing_values", feature, "missing_rate_delta", delta, tested, delta >= th.missing_delta_warning,
        delta >= th.missing_delta_critical, pv, th.missing_delta_warning,
        lambda i: {"reference": {"missing_rate": _r(p0[i])}, "current": {"missing_rate": _r(rate[i]), "missing": int(miss[i]), "count": int(n_all[i])}},
        lambda i: f"{feature} is missing in {rate[i]:.1%} of events (training: {p0[i]:.1%}): check the feature pipeline / join that fills it",
    )]
    # ---- unit change: pure shift of log|x| with unchanged log-spread
    nz = v.arrays["nz"][:, j]
    with np.errstate(invalid="ignore", divide="ignore"):
        mlog = v.arrays["slog"][:, j] / nz
        sdlog = np.sqrt(np.maximum(v.arrays["slog2"][:, j] / nz - mlog * mlog, 0.0))
    rm, rs = rr["rm"], rr["rs"]
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        ratio = np.exp(mlog - rm)
        spread = np.where(rs > 1e-9, sdlog / rs, np.where(sdlog < 1e-9, 1.0, np.inf))
        z = (mlog - rm) / (np.maximum(rs, 1e-9) / np.sqrt(np.maximum(nz, 1)))
    # a probability has no unit, and a reference that is (nearly) one value has no scale to compare
    tested_u = (nz >= st.min_count_rate) & ~np.isnan(rm) & (name != SCORE) & (np.nan_to_num(rs) >= 0.05)
    big = (ratio >= th.unit_ratio) | (ratio <= 1.0 / th.unit_ratio)
    same_shape = (spread <= th.unit_spread_tolerance) & (spread >= 1.0 / th.unit_spread_tolerance)
    pv_u = 2.0 * stats.norm_sf(np.abs(np.nan_to_num(z)))
    whole = big & same_shape
    # a unit change that began inside this window: part of the events scaled (detector.core.checks.unitmix);
    # opt-in (Thresholds.unit_partial): a new high-value segment of training's shape reads the same
    part, part_k, part_q = np.zeros(P, dtype=bool), np.full(P, np.nan), np.full(P, np.nan)
    if th.unit_partial and "RF" in rr and (tested_u & ~whole & rr["ok_ref"]).any():
        part, part_k, part_q = partial_unit(mlog, sdlog, rm, rs, fine, rr["RF"], np.asarray(lay.num_edges[j]), lay.coarse[j],
                                            rr["ref_n"], th.unit_ratio)
        part &= tested_u & ~whole & rr["ok_ref"]
    scale = np.where(part, part_k, ratio)

    def unit_evidence(i: int) -> dict[str, Any]:
        ev = {"reference": {"geometric_mean_abs": _r(math.exp(rm[i])), "log_spread": _r(rs[i])},
              "current": {"geometric_mean_abs": _r(math.exp(mlog[i])), "log_spread": _r(sdlog[i])}}
        if part[i]:
            ev["current"]["changed_share"] = _r(part_q[i])
        return ev

    def unit_summary(i: int) -> str:
        if part[i]:
            return (f"{feature}: about {part_q[i]:.0%} of this window's events are ~{_times(scale[i])} than in training "
                    f"with the same shape: a unit change began in this window ({_unit_guess(scale[i])})")
        return f"{feature} is ~{_times(ratio[i])} than in training with the same shape: a unit change ({_unit_guess(ratio[i])})"

    results.append(lambda: Result(
        "unit_shift", feature, "scale_ratio", scale, tested_u, whole | part, whole | part, pv_u, th.unit_ratio,
        unit_evidence, unit_summary, effect=np.abs(np.log(np.where(scale > 0, scale, 1.0))),
    ))
    # ---- default / fallback value spike: share of one exact value
    shares = v.arrays["cand"][:, j, :] / np.maximum(n_nm, 1)[:, None]  # (P, N_CAND)
    d_all = shares - cand_ref[j][None, :]
    d_all[:, np.isnan(cands[j])] = -np.inf
    best = np.argmax(d_all, axis=1)
    sh = shares[np.arange(P), best]
    vals = cands[j][best]
    r0 = rr["shares"][np.arange(P), best]  # NaN: no reference for this row, no skew test
    # a slice whose mix along another dimension moved (a holiday: all online) may hold the value as often as
    # the most it is held in any of that dimension's present slices (detector.core.checks.mixbound)
    bound = mix_bound(v, rr["shares"], lay.top_k) if name != SCORE else None
    if bound is not None:
        r0 = np.where(np.isnan(r0), r0, np.fmax(r0, bound[np.arange(P), best]))
    dd = sh - r0
    # a value training never had: for a clock feature, at no hour at all (its hour is the clock's business)
    g = lay.num_all_profiles[j] if j < len(lay.num_all_profiles) else None
    never = (r0 == 0) if dist or not isinstance(g, NumericProfile) else (
        _ref_arrays(lay, j, [g], cands[j])["shares"][0][best] == 0) & (r0 == 0)
    (pv_d,) = b.call(_p_greater, 1, sh * n_nm, n_nm, np.nan_to_num(r0))
    warn_d = (dd >= th.default_share_delta) & (sh >= 2 * r0)
    spike_kind = "score_drift" if name == SCORE else "default_value_spike"
    what = ("a constant default score is being served (fallback?)" if name == SCORE
            else "a default or fallback value is being served")
    results.append(lambda: Result(
        spike_kind, feature, "value_share", sh, (n_nm >= st.min_count_rate) & np.isfinite(dd) & (dist | never), warn_d,
        warn_d & (dd >= 2 * th.default_share_delta), pv_d, r0 + th.default_share_delta,
        lambda i: {"value": _r(vals[i]), "reference": {"share": _r(r0[i])}, "current": {"share": _r(sh[i]), "count": int(sh[i] * n_nm[i])}},
        lambda i: f"{feature} = {_fmt(vals[i])} in {sh[i]:.1%} of events (training: {r0[i]:.1%}): {what}",
    ))
    # ---- vs training distribution
    ok_ref = rr["ok_ref"]
    if ok_ref.any():
        RF, RC, ref_n = rr["RF"], rr["RC"], rr["ref_n"]
        (psi,) = b.call(stats.psi, 1, RC, coarse)
        _, _, pv_psi = b.call(_gtest, 3, coarse, RC, ref_n)
        (ks,) = b.call(stats.ks_binned, 1, RF, fine)
        (js,) = b.call(stats.js_distance, 1, RC, coarse)
        oor = np.divide(fine[:, 0] + fine[:, -1], n_nm, out=np.zeros(P), where=n_nm > 0)
        (pv_oor,) = b.call(_p_greater, 1, fine[:, 0] + fine[:, -1], n_nm, 1.0 / np.maximum(ref_n, 1))
        tested_r = ok_ref & enough & dist
        results.append(lambda: Result(
            drift_kind, feature, "out_of_range_share", oor, tested_r, oor >= th.out_of_range_warning,
            oor >= 4 * th.out_of_range_warning, pv_oor, th.out_of_range_warning,
            lambda i: {"reference": {"min": _r(refs[i].min), "max": _r(refs[i].max)},
                       "current": {"below_min": _r(fine[i, 0] / max(n_nm[i], 1)), "above_max": _r(fine[i, -1] / max(n_nm[i], 1))}},
            lambda i: f"{oor[i]:.1%} of {feature} values fall outside the training range [{_fmt(refs[i].min)}, {_fmt(refs[i].max)}]",
        ))
        results.append(lambda: Result(
            drift_kind, feature, "psi", psi, tested_r, psi >= th.psi_warning, psi >= th.psi_critical, pv_psi, th.psi_warning,
            lambda i: {"reference": {"bins": _shares(RC[i]), "median": _r(refs[i].median)},
                       "current": {"bins": _shares(coarse[i]), "median": _r(_median_from_fine(lay.num_edges[j] if j < len(lay.num_edges) else lay.score_edges, fine[i])), "count": int(n_nm[i])},
                       "ks": _r(ks[i]), "js_distance": _r(js[i])},
            lambda i: f"{feature} distribution moved away from training (PSI {psi[i]:.2f}, KS {ks[i]:.2f}; median {_fmt(refs[i].median)} -> {_fmt(_median_from_fine(lay.num_edges[j] if j < len(lay.num_edges) else lay.score_edges, fine[i]))})",
        ))
    # ---- vs production's own seasonal history (drift)
    if v.base is not None:
        bc = v.base["num"][:, cb.start : cb.stop - 1]
        bn = bc.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            bp = bc / bn[:, None]
        (psi_s,) = b.call(stats.psi, 1, np.nan_to_num(bp), coarse)
        _, _, pv_s = b.call(_gtest, 3, coarse, np.nan_to_num(bp), np.maximum(bn, 1))
        tested_s = enough & (bn >= st.min_count) & (name == SCORE or not is_clock(lay, name))
        results.append(lambda: Result(
            drift_kind, feature, "psi_vs_seasonal", psi_s, tested_s, psi_s >= th.psi_warning, psi_s >= th.psi_critical,
            pv_s, th.psi_warning,
            lambda i: {"reference": {"bins": _shares(bc[i]), "source": "production, same time of day"},
                       "current": {"bins": _shares(coarse[i]), "count": int(n_nm[i])}},
            lambda i: f"{feature} differs from its usual distribution at this time of day (PSI {psi_s[i]:.2f} vs the seasonal baseline)",
        ))
    yield  # the statistics asked for are computed here, for every block at once
    return [make() for make in results]


_ROW_CACHE_MAX = 1 << 14  # entries of ~1-2 KB: bounded memory, whatever the number of windows


def _ref_arrays(lay: Layout, j: int, refs: list[Any], cand: np.ndarray, fresh: Any = ()) -> dict[str, np.ndarray]:
    """What the checks of block ``j`` read from the pseudo-rows' reference profiles, as arrays.

    Derived once per profile (and candidate values) and kept on the layout: a window's profiles are
    mostly the cached ones of :func:`~detector.core.checks.view._ref_rows`; the rows in ``fresh``
    (profiles re-mixed for this window only) are derived without being kept."""
    cache: dict[Any, Any] = lay.__dict__.setdefault("_num_ref_cache", {})
    if len(cache) > _ROW_CACHE_MAX:
        cache.clear()
    ck = cand.tobytes()
    rows = []
    for i, r in enumerate(refs):
        if i in fresh:
            rows.append(_row_ref(lay, j, r, cand))
            continue
        key = (id(r), j, ck)
        hit = cache.get(key)
        if hit is None or hit[0] is not r:  # the profile is held with its entry, so its id is not reused meanwhile
            hit = cache[key] = (r, _row_ref(lay, j, r, cand))
        rows.append(hit[1])
    fines = [x[5] for x in rows]
    ok_ref = np.array([f is not None for f in fines])
    out = {"p0": np.array([x[0] for x in rows]), "n0": np.array([x[1] for x in rows], dtype=np.float64),
           "rm": np.array([x[2] for x in rows]), "rs": np.array([x[3] for x in rows]),
           "ref_n": np.array([x[4] for x in rows], dtype=np.float64), "ok_ref": ok_ref,
           "shares": np.stack([x[7] for x in rows]) if rows else np.empty((0, len(cand)))}
    if ok_ref.any():
        first = int(np.argmax(ok_ref))  # rows without a comparable profile take the first one's (never tested)
        out["RF"] = np.stack([f if f is not None else fines[first] for f in fines])
        out["RC"] = np.stack([x[6] if x[6] is not None else rows[first][6] for x in rows])
    return out


def _row_ref(lay: Layout, j: int, r: Any, cand: np.ndarray) -> tuple[Any, ...]:
    """(missing rate, count, log|x| mean, log|x| spread, n, fine and coarse shares or None, share of each candidate)."""
    fine = _fine_ref(lay, j, r)
    shares = (np.array([value_share(r, float(c)) for c in cand]) if isinstance(r, NumericProfile)
              else np.full(len(cand), np.nan))
    if r is None:
        return np.nan, 0, np.nan, np.nan, 1, fine, None, shares
    return (r.missing_rate, r.count, r.log_abs_mean if r.log_abs_mean is not None else np.nan,
            r.log_abs_std if r.log_abs_std is not None else np.nan, r.n, fine,
            None if fine is None else _coarse_of(lay, j, fine), shares)
