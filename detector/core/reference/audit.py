"""Leakage, availability and time-split audit of the training data (pure: numpy only).

Two of the brief's "rule out leakage and evaluation bias" checks, run by ``skewwatch baseline``
when the data have a label (:func:`audit_training`, stored in ``Reference.audit``):

**No-peek feature audit.** Every feature alone is scored against the label:

* ``auc``: univariate ROC AUC (ties averaged; a missing value ranks below every value, so a field
  that is only populated for one class counts). Categorical features are target-encoded out of
  fold (5 folds, smoothed), so an id-like column does not look predictive by memorising rows;
* ``mi`` / ``mi_norm``: mutual information with the label (bits; deciles or the top 19
  categories, plus "missing") and as a share of the label's entropy (uncertainty coefficient);
* ``missing_rate_pos`` / ``missing_rate_neg``: how often it is missing per label value.

A feature is a **leak suspect** when on its own it is a near-perfect predictor: symmetric AUC
``max(auc, 1 - auc) >= 0.95``, or ``mi_norm >= 0.5``, or an outlier among the features (robust
z-score of the symmetric AUC >= 5 against the median and MAD of all features, and at least
0.8). Availability is flagged in the reason when the feature is populated for one label value
and missing for the other (a status only set after the outcome). Whether a value exists at
decision time cannot be known from training data alone, so the training-time predictiveness of
*every* feature is recorded: at serving time a feature absent from the payload (schema check) or
a leak suspect that is constant (:func:`leak_serving_checks`) is reported with it as evidence.

**Time-split honesty check** (:func:`time_split_check`, with a timestamp column). The same simple
model - logistic regression on standardised numeric features (median-imputed, with missing
indicators) and one-hot top categories, 200 accelerated full-batch gradient steps on at most
:data:`MAX_FIT_ROWS` rows - is trained on
a random 70% and scored on the other 30%, then trained on the earliest 70% and scored on the
latest 30%. The AUC gap is how much of the offline score depends on not respecting time
(leakage through time, drift, duplicated entities). It warns when the gap is above
:data:`GAP_WARNING` *and* more than twice its standard error (Hanley-McNeil for each test AUC),
so a small training set's noise is not reported as dishonesty.

>>> rng = np.random.default_rng(0)
>>> y = (rng.random(2000) < 0.3).astype(float)
>>> a = audit_training({"noise": rng.normal(size=2000), "leak": y + rng.normal(0, 0.05, 2000)}, y)
>>> a["leak_suspects"], a["features"]["noise"]["leak_suspect"]
(['leak'], False)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from detector.core.checks.result import Result
from detector.core.stats.effects import sig

__all__ = ["audit_training", "univariate", "time_split_check", "roc_auc", "fit_logistic", "leak_serving_checks", "summary_lines",
           "AUC_LEAK", "MI_LEAK", "ROBUST_Z", "GAP_WARNING", "MIN_ROWS"]

AUC_LEAK = 0.95  # symmetric univariate AUC of a near-perfect predictor
MI_LEAK = 0.5  # mutual information as a share of the label entropy
ROBUST_Z = 5.0  # outlier vs the other features (with a symmetric AUC of at least OUTLIER_MIN_AUC)
OUTLIER_MIN_AUC = 0.8
GAP_WARNING = 0.03  # random-split AUC minus time-split AUC
MIN_ROWS = 100  # labelled rows (with both classes) needed for the audit
MAX_ROWS = 200_000  # univariate audit sample
MAX_FIT_ROWS = 20_000  # time-split check sample
TRAIN_SHARE = 0.7
TOP_CATEGORIES = 20


# --------------------------------------------------------------------------- entry point
def audit_training(feats: Mapping[str, np.ndarray], label: np.ndarray, times: np.ndarray | None = None, *,
                   seed: int = 0) -> dict[str, Any]:
    """The audit dict stored in ``Reference.audit`` (``features``, ``leak_suspects``, ``time_split``).

    ``feats``: typed feature columns (float64 with NaN, or object arrays of str/None); ``label``:
    0/1 with NaN for unlabelled rows; ``times``: epoch seconds (NaN = unknown) or None.
    """
    y = np.asarray(label, dtype=np.float64)
    known = ~np.isnan(y)
    out: dict[str, Any] = {"thresholds": {"auc": AUC_LEAK, "mi_norm": MI_LEAK, "robust_z": ROBUST_Z,
                                          "time_split_gap": GAP_WARNING}}
    n, pos = int(known.sum()), int(np.nansum(y))
    out.update(rows=n, positives=pos)
    if n < MIN_ROWS or pos == 0 or pos == n:
        out["skipped"] = f"needs at least {MIN_ROWS} labelled rows with both label values (has {n}, {pos} positive)"
        out["features"], out["leak_suspects"] = {}, []
        return out
    idx = np.flatnonzero(known)
    rng = np.random.default_rng(seed)
    if idx.size > MAX_ROWS:
        idx = np.sort(rng.choice(idx, MAX_ROWS, replace=False))
        out["sampled_rows"] = MAX_ROWS
    yy = y[idx]
    feats_out = {name: univariate(np.asarray(col)[idx], yy, rng) for name, col in feats.items()}
    _flag(feats_out)
    out["features"] = feats_out
    out["leak_suspects"] = [k for k, v in feats_out.items() if v["leak_suspect"]]
    if times is not None:
        out["time_split"] = time_split_check(feats, y, times, seed=seed)
    return out


def univariate(x: np.ndarray, y: np.ndarray, rng: np.random.Generator | None = None) -> dict[str, Any]:
    """AUC, mutual information and per-class missing rates of one feature against a 0/1 label."""
    rng = rng or np.random.default_rng(0)
    if x.dtype.kind == "f":
        miss = np.isnan(x)
        score = np.where(miss, -np.inf, x)
        bins = _numeric_bins(x)
    else:
        codes, miss = _codes(x)
        score = _target_encode(codes, y, rng)
        bins = _top_codes(codes, TOP_CATEGORIES - 1)
    auc = roc_auc(score, y)
    mi, h = _mutual_information(bins, y)
    pos = y == 1
    return {
        "auc": sig(auc), "mi": sig(mi), "mi_norm": sig(mi / h if h > 0 else 0.0),
        "missing_rate": sig(miss.mean()), "missing_rate_pos": sig(miss[pos].mean()), "missing_rate_neg": sig(miss[~pos].mean()),
    }


def _flag(feats: dict[str, dict[str, Any]]) -> None:
    sym = {k: max(v["auc"], 1 - v["auc"]) if v["auc"] is not None else 0.5 for k, v in feats.items()}
    vals = np.array(list(sym.values())) if sym else np.zeros(0)
    med = float(np.median(vals)) if vals.size else 0.5
    mad = float(np.median(np.abs(vals - med))) * 1.4826 if vals.size else 0.0
    scale = max(mad, 0.01)
    for k, v in feats.items():
        a = sym[k]
        z = (a - med) / scale
        v["robust_z"] = sig(z)
        reasons = []
        if a >= AUC_LEAK:
            reasons.append(f"alone predicts the label with AUC {a:.3f} (>= {AUC_LEAK})")
        if (v["mi_norm"] or 0.0) >= MI_LEAK:
            reasons.append(f"carries {v['mi_norm']:.0%} of the label's information (>= {MI_LEAK:.0%})")
        if not reasons and a >= OUTLIER_MIN_AUC and z >= ROBUST_Z and len(feats) >= 3:
            reasons.append(f"far more predictive than every other feature (AUC {a:.3f}, robust z {z:.1f})")
        mp, mn = v["missing_rate_pos"] or 0.0, v["missing_rate_neg"] or 0.0
        if reasons and abs(mp - mn) >= 0.5:
            side = "positive" if mp < mn else "negative"
            reasons.append(f"populated for {1 - min(mp, mn):.0%} of {side} rows but {1 - max(mp, mn):.0%} of the others: "
                           "probably filled in after the outcome (not available at decision time)")
        v["leak_suspect"] = bool(reasons)
        v["reason"] = "; ".join(reasons) if reasons else ""


# --------------------------------------------------------------------------- statistics
def roc_auc(score: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney, ties averaged); NaN with one class only.

    >>> roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    0.75
    >>> roc_auc(np.array([1.0, 1.0, 0.0]), np.array([1, 0, 0]))
    0.75
    """
    s = np.asarray(score, dtype=np.float64)
    yy = np.asarray(y) == 1
    n1 = int(yy.sum())
    n0 = yy.size - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ss = s[order]
    start = np.concatenate(([True], ss[1:] != ss[:-1]))
    grp = np.cumsum(start) - 1
    counts = np.bincount(grp)
    avg = np.cumsum(counts) - (counts - 1) / 2.0  # mean rank (1-based) of each tie group
    ranks = np.empty(s.size)
    ranks[order] = avg[grp]
    return float((ranks[yy].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def _mutual_information(bins: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(I(X;Y), H(Y)) in bits from bin codes and a 0/1 label."""
    k = int(bins.max()) + 1 if bins.size else 1
    t = np.bincount(bins * 2 + (y == 1), minlength=2 * k).reshape(k, 2).astype(np.float64)
    p = t / t.sum()
    px, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log2(p / (px * py)), 0.0)
        hy = -float(np.sum(np.where(py > 0, py * np.log2(py), 0.0)))
    return max(float(terms.sum()), 0.0), hy


def _numeric_bins(x: np.ndarray) -> np.ndarray:
    fin = np.isfinite(x)
    out = np.zeros(x.size, dtype=np.int64)
    if fin.any():
        edges = np.unique(np.quantile(x[fin], np.linspace(0.1, 0.9, 9)))
        out[fin] = 1 + np.searchsorted(edges, x[fin], side="right")
    return out  # 0 = missing


def _codes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vals = ["\x00missing" if v is None else str(v) for v in x.tolist()]
    miss = np.array([v is None for v in x.tolist()], dtype=bool)
    _, codes = np.unique(np.array(vals, dtype=object), return_inverse=True)
    return codes.astype(np.int64), miss


def _top_codes(codes: np.ndarray, k: int) -> np.ndarray:
    counts = np.bincount(codes)
    top = np.argsort(-counts, kind="stable")[:k]
    lut = np.full(counts.size, k, dtype=np.int64)
    lut[top] = np.arange(top.size)
    return lut[codes]


def _target_encode(codes: np.ndarray, y: np.ndarray, rng: np.random.Generator, folds: int = 5,
                   smoothing: float = 10.0) -> np.ndarray:
    """Out-of-fold smoothed mean label per category (a category seen only in its own fold gets the prior)."""
    n = codes.size
    k = int(codes.max()) + 1 if n else 1
    fold = rng.permutation(n) % folds
    tot_n, tot_y = np.bincount(codes, minlength=k), np.bincount(codes, weights=y, minlength=k)
    prior = float(y.mean())
    out = np.empty(n)
    for f in range(folds):
        m = fold == f
        cn = tot_n - np.bincount(codes[m], minlength=k)
        cy = tot_y - np.bincount(codes[m], weights=y[m], minlength=k)
        out[m] = ((cy + prior * smoothing) / (cn + smoothing))[codes[m]]
    return out


# --------------------------------------------------------------------------- time split
def fit_logistic(X: np.ndarray, y: np.ndarray, steps: int = 200, l2: float = 1e-4) -> np.ndarray:
    """Weights (bias last) of an L2-regularised logistic regression by accelerated gradient descent.

    Nesterov's momentum on full-batch gradients with the step ``1 / L``, ``L`` the gradient's
    Lipschitz bound (a quarter of the largest eigenvalue of ``X'X / n``, by power iteration): stable
    on any scaling and close to the optimum after a couple of hundred steps.
    """
    n, d = X.shape
    Xb = np.concatenate([X, np.ones((n, 1))], axis=1)
    v = np.ones(d + 1) / math.sqrt(d + 1)
    for _ in range(20):
        v = Xb.T @ (Xb @ v) / n
        nv = float(np.linalg.norm(v))
        if nv == 0:
            break
        v /= nv
    lam = float(v @ (Xb.T @ (Xb @ v)) / n)
    lr = 1.0 / (0.25 * max(lam, 1e-9) + l2)
    w = np.zeros(d + 1)
    p0 = min(max(float(y.mean()), 1e-6), 1 - 1e-6)
    w[-1] = math.log(p0 / (1 - p0))
    z, t = w.copy(), 1.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(Xb @ z, -35, 35)))
        g = Xb.T @ (p - y) / n
        g[:-1] += l2 * z[:-1]
        w_next = z - lr * g
        t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        z = w_next + ((t - 1.0) / t_next) * (w_next - w)
        w, t = w_next, t_next
    return w


class _Design:
    """Feature matrix fitted on a training part: standardised numerics (+ missing flags), one-hot top categories."""

    def __init__(self, feats: Mapping[str, np.ndarray], train: np.ndarray) -> None:
        self.parts: list[tuple[str, str, Any]] = []
        for name, col in feats.items():
            a = np.asarray(col)[train]
            if a.dtype.kind == "f":
                fin = np.isfinite(a)
                if fin.sum() < 2:
                    continue
                med = float(np.median(a[fin]))
                filled = np.where(fin, a, med)
                mu, sd = float(filled.mean()), float(filled.std())
                if sd <= 1e-12:
                    continue
                self.parts.append(("num", name, (med, mu, sd, bool((~fin).any()))))
            else:
                vals, counts = np.unique(np.array(["\x00" if v is None else str(v) for v in a.tolist()], dtype=object),
                                         return_counts=True)
                top = [v for v, _ in sorted(zip(vals.tolist(), counts.tolist(), strict=True), key=lambda t: -t[1])]
                top = top[:TOP_CATEGORIES]
                if len(top) > 1:
                    self.parts.append(("cat", name, {v: i for i, v in enumerate(top)}))

    def matrix(self, feats: Mapping[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
        cols: list[np.ndarray] = []
        for kind, name, p in self.parts:
            a = np.asarray(feats[name])[rows]
            if kind == "num":
                med, mu, sd, with_miss = p
                fin = np.isfinite(a)
                cols.append(np.clip((np.where(fin, a, med) - mu) / sd, -10, 10))
                if with_miss:
                    cols.append((~fin).astype(np.float64))
            else:
                lut = p
                codes = np.array([lut.get("\x00" if v is None else str(v), -1) for v in a.tolist()])
                oh = np.zeros((rows.size, len(lut)))
                ok = codes >= 0
                oh[np.flatnonzero(ok), codes[ok]] = 1.0
                cols.append(oh)
        if not cols:
            return np.zeros((rows.size, 0))
        return np.column_stack(cols)


def _split_auc(feats: Mapping[str, np.ndarray], y: np.ndarray, train: np.ndarray, test: np.ndarray,
               steps: int) -> tuple[float, float]:
    """(test AUC, its Hanley-McNeil standard error) of the model fitted on ``train``."""
    from detector.core.outcomes.cohort import auc_se

    design = _Design(feats, train)
    Xtr, Xte = design.matrix(feats, train), design.matrix(feats, test)
    if Xtr.shape[1] == 0:
        return float("nan"), float("nan")
    w = fit_logistic(Xtr, y[train], steps=steps)
    yt = y[test]
    auc = roc_auc(Xte @ w[:-1], yt)
    npos = float(yt.sum())
    return auc, float(auc_se(np.array(auc), np.array(npos), np.array(yt.size - npos)))


def time_split_check(feats: Mapping[str, np.ndarray], label: np.ndarray, times: np.ndarray, *,
                     train_share: float = TRAIN_SHARE, steps: int = 200, seed: int = 0,
                     max_rows: int = MAX_FIT_ROWS) -> dict[str, Any]:
    """Random-split vs time-split AUC of a simple logistic model (see the module docstring)."""
    from detector.core.inputs.timeparse import format_ts

    y = np.asarray(label, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    ok = np.flatnonzero(~np.isnan(y) & np.isfinite(t))
    rng = np.random.default_rng(seed)
    if ok.size > max_rows:
        ok = np.sort(rng.choice(ok, max_rows, replace=False))
    out: dict[str, Any] = {"train_share": train_share, "rows": int(ok.size), "steps": steps}
    if ok.size < 2 * MIN_ROWS:
        out["skipped"] = f"needs at least {2 * MIN_ROWS} labelled rows with a timestamp (has {ok.size})"
        return out
    by_time = ok[np.argsort(t[ok], kind="stable")]
    cut = int(round(train_share * ok.size))
    tr_t, te_t = by_time[:cut], by_time[cut:]
    perm = rng.permutation(ok)
    tr_r, te_r = np.sort(perm[:cut]), np.sort(perm[cut:])
    for name, te in (("time", te_t), ("random", te_r)):
        yt = y[te]
        if yt.min() == yt.max():
            out["skipped"] = f"the {name}-split test part has one label value only"
            return out
    auc_r, se_r = _split_auc(feats, y, tr_r, te_r, steps)
    auc_t, se_t = _split_auc(feats, y, tr_t, te_t, steps)
    gap = auc_r - auc_t
    se = math.sqrt(se_r * se_r + se_t * se_t)
    warn = bool(math.isfinite(gap) and gap > GAP_WARNING and gap > 2 * se)
    out.update(
        random_split_auc=sig(auc_r), time_split_auc=sig(auc_t), gap=sig(gap), gap_se=sig(se), warning=warn,
        train_period=[format_ts(float(t[tr_t[0]])), format_ts(float(t[tr_t[-1]]))],
        test_period=[format_ts(float(t[te_t[0]])), format_ts(float(t[te_t[-1]]))],
        message=(f"the offline AUC falls from {auc_r:.3f} (random split) to {auc_t:.3f} when the model is tested on "
                 f"the latest {1 - train_share:.0%} of the data: {gap:.3f} of the offline score depends on not "
                 "respecting time; evaluate with a time split and look for features that leak the future"
                 if warn else
                 f"random-split AUC {auc_r:.3f} vs time-split AUC {auc_t:.3f} (gap {gap:+.3f} ± {se:.3f}): no "
                 "significant dependence of the offline score on mixing past and future"),
    )
    return out


def summary_lines(audit: dict[str, Any], limit: int = 8) -> list[str]:
    """Human-readable lines of an audit (for ``skewwatch baseline``'s summary).

    >>> summary_lines({"features": {"x": {"auc": 0.99, "mi_norm": 0.8, "leak_suspect": True, "reason": "r"}},
    ...                "leak_suspects": ["x"]})
    ['  leakage audit: 1 of 1 features on their own predict the label suspiciously well (leak suspects):', '    x: r']
    """
    if not audit:
        return []
    if audit.get("skipped"):
        return [f"  leakage audit skipped: {audit['skipped']}"]
    feats = audit.get("features") or {}
    sus = audit.get("leak_suspects") or []
    lines = []
    if sus:
        lines.append(f"  leakage audit: {len(sus)} of {len(feats)} features on their own predict the label suspiciously well"
                     " (leak suspects):")
        lines += [f"    {k}: {feats[k].get('reason')}" for k in sus[:limit]]
        if len(sus) > limit:
            lines.append(f"    ... ({len(sus)} in all)")
    else:
        top = sorted(feats.items(), key=lambda kv: -abs((kv[1].get("auc") or 0.5) - 0.5))[:3]
        shown = ", ".join(f"{k} (AUC {v.get('auc')})" for k, v in top)
        lines.append(f"  leakage audit: no leak suspect among {len(feats)} features; most predictive: {shown}")
    ts = audit.get("time_split")
    if ts:
        if ts.get("skipped"):
            lines.append(f"  time-split check skipped: {ts['skipped']}")
        else:
            lines.append(f"  {'WARNING: ' if ts.get('warning') else ''}time-split check: {ts.get('message')}")
    return lines


# --------------------------------------------------------------------------- serving side
def leak_serving_checks(lay: Any, v: Any, st: Any, cands: np.ndarray) -> list[Any]:
    """``schema`` facts for leak suspects that are null or constant in every served event (all traffic).

    A feature that predicted the label almost perfectly in training and carries no information at
    serving was not available at decision time: the model's offline score relied on it.
    """
    audit = lay.ref.audit if isinstance(lay.ref.audit, dict) else {}
    suspects = {k: a for k, a in (audit.get("features") or {}).items() if isinstance(a, dict) and a.get("leak_suspect")}
    n = float(v.w.events)
    if not suspects or n < st.min_count_rate:
        return []
    names = lay.numeric + lay.categorical
    out: list[Any] = []
    for name, a in suspects.items():
        if name not in names:
            continue
        k = names.index(name)
        if v.w.absent[k] / n >= st.thresholds.absent_share:
            continue  # the absent-key schema check reports it (with the same audit evidence)
        value, constant = _served_constant(lay, v, name, cands)
        if not constant:
            continue
        P = v.P
        val = np.zeros(P)
        val[0] = 1.0
        m = np.zeros(P, bool)
        m[0] = True
        what = "null" if value is None else f"constant ({value})"
        ev = {"reference": {"audit": a, "missing_rate": sig(lay.ref.features[name].missing_rate)},
              "current": {"value": value, "constant_share": 1.0, "events": int(n)}}
        summary = (f"{name} is {what} in every served event, but on its own it predicted the label in training "
                   f"(AUC {a.get('auc')}; {a.get('reason') or 'leak suspect'}): it is not available at decision time "
                   "(leakage or a broken feed) and the offline score relied on it")
        out.append(Result("schema", name, "constant_share", val, m, m.copy(), m.copy(), np.full(P, np.nan), 1.0,
                          lambda i, ev=ev: ev, lambda i, s=summary: s))
    return out


def _served_constant(lay: Any, v: Any, name: str, cands: np.ndarray) -> tuple[Any, bool]:
    """(the value, True) when the feature holds one value (or only nulls) in the window's all-traffic row."""
    if name in lay.numeric:
        j = lay.numeric.index(name)
        off, size = int(lay.num_offsets[j]), int(lay.num_sizes[j])
        row = v.arrays["num"][0]
        n_nm = float(row[off : off + size - 1].sum())
        if n_nm == 0:
            return None, True
        hits = v.arrays["cand"][0, j]
        for c in range(cands.shape[1]):
            if not np.isnan(cands[j, c]) and hits[c] >= n_nm:
                return float(cands[j, c]), True
        nz = float(v.arrays["nz"][0, j])
        if nz == 0:
            return 0.0, True
        mlog = v.arrays["slog"][0, j] / nz
        var = v.arrays["slog2"][0, j] / nz - mlog * mlog
        mean = v.arrays["sx"][0, j] / n_nm
        gm = math.exp(mlog)
        if nz == n_nm and var <= 1e-18 and abs(abs(mean) - gm) <= 1e-9 * max(gm, 1.0):
            return float(mean), True
        return None, False
    k = lay.categorical.index(name)
    V = len(lay.cat_vocab[name])
    off = int(lay.cat_offsets[k])
    cnt = v.arrays["cat"][0, off : off + V + 2]
    tot = float(cnt.sum())
    if tot <= 0:
        return None, False
    top = int(np.argmax(cnt))
    if cnt[top] < tot:
        return None, False
    if top == V + 1:
        return None, True
    if top == V:
        seen = v.w.unseen[k] if k < len(v.w.unseen) else {}
        return (next(iter(seen)), True) if len(seen) == 1 else (None, False)
    inv = {i: c for c, i in lay.cat_vocab[name].items()}
    return inv[top], True
