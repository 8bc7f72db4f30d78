"""Outcome counts of one prediction-time window ("cohort"): dense, additive, mergeable.

A :class:`Cohort` holds, per slice row of the model's layout, everything the outcome checks
need from the (prediction, label) pairs whose prediction fell in ``[start, end)``:

* ``cnt``: predictions, scored, predicted positive, labelled, positives, sums of the score, its
  square and score x label, the confusion matrix at the threshold in force, corrections;
* ``rel``: 10 equal-width score bins x (count, sum score, sum label) -> reliability, ECE;
* ``hist``: 100 equal-width score bins x label -> ROC AUC, PR AUC, cost-minimising threshold;
* ``delay``: label-delay histogram (:data:`~detector.core.outcomes.labels.DELAY_EDGES`).

Corrections fold the old label out (weight -1) and the new one in (+1), so counts always equal
those of the final labels. Everything is a sum, so two workers' cohorts merge by addition.
Memory: ``rows x (18 + 30 + 200 + 31) x 8`` bytes (~2.2 kB per slice row).

Binned metrics and their error (scores are binned on ``[0, 1]`` in 100 bins of width 0.01):

* ROC AUC counts a positive/negative pair in the same bin as half a win (as scikit-learn does
  for tied scores), so it is *exactly* the AUC of the scores rounded down to their bin, and
  within ``tie_share / 2`` of the AUC of the raw scores, where ``tie_share`` is the share of
  positive/negative pairs that share a bin (returned as the error bound; typically < 0.005);
* PR AUC is scikit-learn's *average precision* on the binned scores (exact for them; against raw
  scores it differs only through within-bin ordering, typically < 0.01);
* ECE and reliability use 10 bins; the Brier score is exact (from the sums, not the bins).

>>> neg = np.zeros(N_HIST); pos = np.zeros(N_HIST); neg[[10, 20]] = 1; pos[[20, 90]] = 1
>>> auc, err = binned_auc(neg, pos); float(auc), float(err)
(0.875, 0.125)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.core.outcomes.labels import N_DELAY
from detector.core.state.codec import check, load_arrays
from detector.core.stats.effects import div as _div
from detector.core.stats.effects import fold, safe_inv

__all__ = ["Cohort", "C", "N_REL", "N_HIST", "binned_auc", "auc_se", "average_precision", "ece", "brier",
           "best_threshold", "fold", "score_bins", "calibration_slope", "LATE_AGES"]

N_REL = 10
N_HIST = 100
#: upper ends of the late-label bins, in label ages after a cohort's end (see :attr:`Cohort.late_hist`)
LATE_AGES = (1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
_CNT = ("pred", "scored", "pp", "pk", "thr_n", "thr_s", "lab", "pos", "sl", "spos", "s", "s2", "sy",
        "tp", "fp", "fn", "tn", "corr")
C = {k: i for i, k in enumerate(_CNT)}  # column of each counter in ``Cohort.cnt``
NC = len(_CNT)


def score_bins(score: np.ndarray, n: int) -> np.ndarray:
    """Equal-width bin of each score on [0, 1] (scores outside are clipped; NaN -> 0, mask it)."""
    return np.clip(np.floor(np.nan_to_num(score) * n), 0, n - 1).astype(np.int64)


@dataclass
class Cohort:
    start: float
    end: float
    rows: int
    cnt: np.ndarray = field(init=False)
    rel: np.ndarray = field(init=False)
    hist: np.ndarray = field(init=False)
    delay: np.ndarray = field(init=False)
    versions: dict[str, int] = field(default_factory=dict)
    input_kinds: set[str] = field(default_factory=set)  # input alert kinds firing while it matured
    horizon: float = float("nan")  # label age at evaluation (the maturity used); NaN = not evaluated
    late: int = 0  # labels that arrived after the evaluation (counted, not folded in)
    late_pos: float = 0.0  # ... of which positive (the production delay profile: see OutcomeMonitor.censoring)
    late_s: float = 0.0  # ... the sum of their scores, and how many were scored: whether the pairs labelled by
    late_sl: float = 0.0  # the label age have the cohort's score mix (riskier pairs are often labelled sooner)
    # all traffic's (negative, positive) score histograms of those late labels by how late they came, in multiples
    # of the label age (:data:`LATE_AGES`): with the counted pairs, the labels in by 2, 4, 8 label ages, for the
    # comparisons with training (complete labels) that need more pairs than a quiet model has at the label age
    late_hist: np.ndarray = field(init=False)
    # the smallest label age its labels were gated at when folded (0: before the age was known, so
    # later labels are in too; inf: no label yet): it compares with others only at an age <= gate
    gate: float = float("inf")
    in_baseline: bool = False
    label_suspect: bool = False  # its labels were judged incomplete at evaluation (delay shift)
    # a multiclass / regression model's task counters (detector.core.outcomes.tasks); None for a binary
    # model, whose outcome counts are ``cnt`` / ``rel`` / ``hist`` (for other tasks those hold only the
    # generic counts: predictions, labelled, delays)
    tc: Any = None

    def __post_init__(self) -> None:
        r = self.rows
        self.cnt = np.zeros((r, NC))
        self.rel = np.zeros((r, N_REL, 3))
        self.hist = np.zeros((r, 2, N_HIST))
        self.delay = np.zeros((r, N_DELAY))
        self.late_hist = np.zeros((len(LATE_AGES), 2, N_HIST))

    @property
    def evaluated(self) -> bool:
        return self.horizon == self.horizon

    def add_predictions(self, ridx: np.ndarray, score: np.ndarray, pred: np.ndarray, threshold: np.ndarray) -> None:
        n = len(score)
        scored = ~np.isnan(score)
        pk = pred >= 0
        thr_known = ~np.isnan(threshold)
        w = np.zeros((n, 6))
        w[:, 0] = 1.0
        w[:, 1] = scored
        w[:, 2] = pred == 1
        w[:, 3] = pk
        w[:, 4] = thr_known
        w[:, 5] = np.where(thr_known, threshold, 0.0)
        self.cnt[:, :6] += fold(ridx, self.rows, 6, None, w)

    def add_pairs(self, ridx: np.ndarray, score: np.ndarray, pred: np.ndarray, y: np.ndarray, weight: np.ndarray,
                  delay_bin: np.ndarray | None) -> None:
        """Fold (prediction, label) pairs with weight +1 (a label) or -1 (a label being replaced)."""
        scored = ~np.isnan(score)
        s = np.where(scored, score, 0.0)
        sw = scored * weight
        yw = y * weight
        n = len(y)
        w = np.zeros((n, NC - 6))
        w[:, C["lab"] - 6] = weight
        w[:, C["pos"] - 6] = yw
        w[:, C["sl"] - 6] = sw
        w[:, C["spos"] - 6] = sw * y
        w[:, C["s"] - 6] = sw * s
        w[:, C["s2"] - 6] = sw * s * s
        w[:, C["sy"] - 6] = sw * s * y
        for k, (p, lab) in zip(("tp", "fp", "fn", "tn"), ((1, 1), (1, 0), (0, 1), (0, 0)), strict=True):
            w[:, C[k] - 6] = weight * ((pred == p) & (y == lab))
        self.cnt[:, 6:] += fold(ridx, self.rows, NC - 6, None, w)
        if scored.any():
            i = np.flatnonzero(scored)
            r, ww, ss, yy = ridx[i], weight[i], s[i], y[i]
            rb = score_bins(ss, N_REL)
            self.rel[:, :, 0] += fold(r, self.rows, N_REL, rb, ww)
            self.rel[:, :, 1] += fold(r, self.rows, N_REL, rb, ww * ss)
            self.rel[:, :, 2] += fold(r, self.rows, N_REL, rb, ww * yy)
            hb = score_bins(ss, N_HIST) + N_HIST * (yy > 0)
            self.hist += fold(r, self.rows, 2 * N_HIST, hb, ww).reshape(self.rows, 2, N_HIST)
        if delay_bin is not None:
            self.delay += fold(ridx, self.rows, N_DELAY, delay_bin, weight)

    def to_state(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "cnt": self.cnt, "rel": self.rel, "hist": self.hist, "delay": self.delay,
                "versions": dict(self.versions), "input_kinds": sorted(self.input_kinds), "horizon": self.horizon,
                "late": self.late, "late_pos": self.late_pos,
                "late_s": self.late_s, "late_sl": self.late_sl, "late_hist": self.late_hist, "gate": self.gate, "in_baseline": self.in_baseline,
                "label_suspect": self.label_suspect, **({"task": self.tc.to_state()} if self.tc is not None else {})}

    @classmethod
    def from_state(cls, st: dict[str, Any], rows: int) -> Cohort:
        """A cohort of ``rows`` slice rows from :meth:`to_state` (arrays must fit)."""
        check(isinstance(st, dict), "cohort state must be a dict")
        c = cls(float(st["start"]), float(st["end"]), rows)
        load_arrays(c, st, ("cnt", "rel", "hist", "delay"), "cohort")
        check(isinstance(st["versions"], dict) and isinstance(st["input_kinds"], list), "cohort versions / input kinds")
        c.versions = {str(k): int(v) for k, v in st["versions"].items()}
        c.input_kinds = {str(k) for k in st["input_kinds"]}
        c.horizon, c.late = float(st["horizon"]), int(st["late"])
        c.late_pos, c.gate = float(st.get("late_pos", 0.0)), float(st.get("gate", float("inf")))
        c.late_s, c.late_sl = float(st.get("late_s", 0.0)), float(st.get("late_sl", 0.0))
        if st.get("late_hist") is not None:  # states written before late labels' scores were binned have none
            load_arrays(c, st, ("late_hist",), "cohort")
        c.in_baseline, c.label_suspect = bool(st["in_baseline"]), bool(st["label_suspect"])
        if st.get("task") is not None:
            from detector.core.outcomes.tasks.base import Counters

            c.tc = Counters.from_state(st["task"])
            check(c.tc.rows == rows, f"cohort task counters of {c.tc.rows} rows for {rows}")
        return c

    def merge(self, other: Cohort) -> None:
        if (other.start, other.end, other.rows) != (self.start, self.end, self.rows):
            raise ValueError(f"cannot merge cohort [{other.start}, {other.end}) x {other.rows} rows into "
                             f"[{self.start}, {self.end}) x {self.rows} rows")
        self.add(other)
        for v, c in other.versions.items():
            self.versions[v] = self.versions.get(v, 0) + c
        self.input_kinds |= other.input_kinds
        self.late += other.late
        self.late_pos += other.late_pos
        self.late_s += other.late_s
        self.late_sl += other.late_sl
        self.late_hist += other.late_hist
        self.gate = min(self.gate, other.gate)


    def count_late(self, score: np.ndarray, y01: np.ndarray, age: np.ndarray | None = None) -> None:
        """Count labels that arrived after the label age (not folded in): the production delay profile, and the
        late labels' scores by outcome in ``late_hist`` by ``age``, each label's time after the cohort's end in
        label ages (None or beyond the last of :data:`LATE_AGES`: counted, not binned)."""
        scored = ~np.isnan(score)
        self.late += int(score.size)
        self.late_pos += float(y01.sum())
        self.late_s += float(score[scored].sum())
        self.late_sl += float(scored.sum())
        if age is not None and scored.any():
            k = np.searchsorted(LATE_AGES, np.nan_to_num(np.asarray(age, dtype=np.float64), nan=np.inf), side="left")
            ok = scored & (k < len(LATE_AGES))
            hb = k[ok] * 2 * N_HIST + score_bins(score[ok], N_HIST) + N_HIST * (np.asarray(y01)[ok] > 0)
            self.late_hist += np.bincount(hb, minlength=self.late_hist.size).reshape(self.late_hist.shape)

    def labels_by(self, age: float) -> np.ndarray:
        """All traffic's (negative, positive) score histogram of the labels in by ``age`` label ages after the
        cohort's end, as far as :data:`LATE_AGES` resolves it (the counted pairs, plus each late bin whose upper
        age is at most ``age``): a fixed quantity once the stream is that far, however labels were batched."""
        n = int(np.searchsorted(LATE_AGES, age, side="right"))
        return self.hist[0] + self.late_hist[:n].sum(0)

    def add(self, other: Cohort) -> None:
        """Add ``other``'s counts (its arrays and task counters) into this one's, e.g. to pool or sum a baseline."""
        for k in ("cnt", "rel", "hist", "delay"):
            getattr(self, k)[...] += getattr(other, k)
        if other.tc is not None:
            if self.tc is None:
                self.tc = other.tc.zeros_like()
            self.tc.merge(other.tc)


# --------------------------------------------------------------------------- metrics (vectorised over rows)


def binned_auc(neg: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC AUC from per-bin negative/positive counts (..., B), and its binning error bound."""
    P, N = pos.sum(-1), neg.sum(-1)
    below = np.cumsum(neg, axis=-1) - neg
    wins = (pos * below).sum(-1)
    ties = (pos * neg).sum(-1)
    return _div(wins + 0.5 * ties, P * N), _div(0.5 * ties, P * N)


def auc_se(auc: np.ndarray, P: np.ndarray, N: np.ndarray) -> np.ndarray:
    """Hanley & McNeil (1982) standard error of an AUC from ``P`` positives and ``N`` negatives."""
    a = np.clip(np.nan_to_num(auc, nan=0.5), 1e-6, 1 - 1e-6)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    v = _div(a * (1 - a) + (P - 1) * (q1 - a * a) + (N - 1) * (q2 - a * a), P * N)
    return np.sqrt(np.maximum(v, 0.0))


def average_precision(neg: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Average precision (scikit-learn's PR AUC) of binned scores: sum over thresholds of dR x P."""
    tp = np.cumsum(pos[..., ::-1], axis=-1)  # threshold at each bin, from the top
    fp = np.cumsum(neg[..., ::-1], axis=-1)
    P = pos.sum(-1, keepdims=True)
    prec = np.nan_to_num(_div(tp, tp + fp))
    d_rec = _div(pos[..., ::-1], P)
    out = (np.nan_to_num(d_rec) * prec).sum(-1)
    return np.where(P[..., 0] > 0, out, np.nan)


def ece(rel: np.ndarray) -> np.ndarray:
    """Expected calibration error: sum_b |sum score - sum label| / n over equal-width bins."""
    return _div(np.abs(rel[..., 1] - rel[..., 2]).sum(-1), rel[..., 0].sum(-1))


def calibration_change(rel: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ECE of ``rel`` minus ECE of ``base`` (reliability tables ``(..., B, 3)``: n, sum score, sum label),
    with a chi-square over the bins both fill (pooled per-bin label rates) and its degrees of freedom."""
    nbin, obin, mbin, qbin = rel[..., 0], rel[..., 2], base[..., 0], base[..., 2]
    pooled = _div(obin + qbin, nbin + mbin)
    ok = (nbin >= 5) & (mbin >= 5) & (np.nan_to_num(pooled) > 0) & (np.nan_to_num(pooled, nan=1) < 1)
    var = np.nan_to_num(pooled * (1 - pooled)) * (safe_inv(nbin) + safe_inv(mbin))
    chi = np.where(ok, (np.nan_to_num(_div(obin, nbin)) - np.nan_to_num(_div(qbin, mbin))) ** 2 / np.where(ok, var, 1.0), 0.0).sum(-1)
    return ece(rel) - ece(base), chi, ok.sum(-1)


def brier(cnt: np.ndarray) -> np.ndarray:
    """Mean squared error of the score against the label (exact, from the sums)."""
    return _div(cnt[..., C["s2"]] - 2 * cnt[..., C["sy"]] + cnt[..., C["spos"]], cnt[..., C["sl"]])


def best_threshold(hist: np.ndarray, cost_fp: float, cost_fn: float,
                   max_positive_share: np.ndarray | float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Cost-minimising threshold on the bin edges (k / B), and its cost per labelled pair.

    Acting on ``score >= k / B`` costs ``cost_fp x FP + cost_fn x FN``; thresholds whose share of
    positive decisions exceeds ``max_positive_share`` (review capacity) are not allowed.
    """
    neg, pos = hist[..., 0, :], hist[..., 1, :]
    B = neg.shape[-1]
    n = (neg + pos).sum(-1, keepdims=True)
    fp = np.concatenate([np.cumsum(neg[..., ::-1], axis=-1)[..., ::-1], np.zeros_like(neg[..., :1])], axis=-1)
    tp = np.concatenate([np.cumsum(pos[..., ::-1], axis=-1)[..., ::-1], np.zeros_like(pos[..., :1])], axis=-1)
    fn = pos.sum(-1, keepdims=True) - tp
    cost = _div(cost_fp * fp + cost_fn * fn, n)
    share = _div(fp + tp, n)
    allowed = share <= np.asarray(max_positive_share)[..., None] + 1e-12
    allowed[..., -1] = True  # acting on nothing is always feasible
    cost = np.where(allowed, cost, np.inf)
    k = np.argmin(np.nan_to_num(cost, nan=np.inf), axis=-1)
    best = np.take_along_axis(cost, k[..., None], -1)[..., 0]
    ok = n[..., 0] > 0
    return np.where(ok, k / B, np.nan), np.where(ok, best, np.nan)


def calibration_slope(neg: np.ndarray, pos: np.ndarray, iters: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Cox calibration slope per row: ``b`` of ``logit P(y) = a + b logit(score)``, and its standard error.

    Fitted by Newton-Raphson on the binned scores (bin centres, ``(..., B)`` negative / positive
    counts). 1 = calibrated spread; > 1 the scores are too timid (outcomes more extreme than the
    scores say), < 1 too extreme. Unlike a base rate it does not move when labels of one value come
    later (delays independent of the score change only the intercept). NaN where a row cannot fit.

    >>> rng = np.random.default_rng(0); s = rng.uniform(0.01, 0.99, 200_000)
    >>> y = rng.random(s.size) < 1 / (1 + np.exp(-2 * np.log(s / (1 - s))))  # outcomes twice as extreme
    >>> b = np.bincount((s * N_HIST).astype(int) + N_HIST * y, minlength=2 * N_HIST).reshape(2, N_HIST)
    >>> slope, se = calibration_slope(b[0], b[1]); round(float(slope), 1), bool(se < 0.05)
    (2.0, True)
    """
    neg, pos = np.asarray(neg, dtype=np.float64), np.asarray(pos, dtype=np.float64)
    B = neg.shape[-1]
    c = (np.arange(B) + 0.5) / B
    x = np.log(c / (1 - c))
    n = neg + pos
    shape = n.shape[:-1]
    a, b = np.zeros(shape), np.ones(shape)
    ok = (pos.sum(-1) >= 5) & (neg.sum(-1) >= 5)
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(a[..., None] + b[..., None] * x)))
        w = n * p * (1 - p)
        r = pos - n * p
        g0, g1 = r.sum(-1), (r * x).sum(-1)
        h00, h01, h11 = w.sum(-1), (w * x).sum(-1), (w * x * x).sum(-1)
        det = h00 * h11 - h01 * h01
        safe = np.where(np.abs(det) > 1e-12, det, 1.0)
        a = np.clip(a + (h11 * g0 - h01 * g1) / safe, -30, 30)
        b = np.clip(b + (h00 * g1 - h01 * g0) / safe, -30, 30)
    p = 1 / (1 + np.exp(-(a[..., None] + b[..., None] * x)))
    w = n * p * (1 - p)
    h00, h01, h11 = w.sum(-1), (w * x).sum(-1), (w * x * x).sum(-1)
    det = h00 * h11 - h01 * h01
    se = np.sqrt(np.divide(h00, det, out=np.full(shape, np.nan), where=det > 1e-12))
    return np.where(ok, b, np.nan), np.where(ok, se, np.nan)
