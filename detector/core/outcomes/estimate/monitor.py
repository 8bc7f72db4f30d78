"""Performance estimated before labels, on the engine's window path: fold at ingest, estimate and test at close.

One :class:`PerformanceEstimates` per model whose reference holds what its task's estimator needs
(``Reference.task``: for a binary classifier the calibration map of
:func:`~detector.core.outcomes.tasks.reference.binary_reference`). The task plug-in
(:class:`BinaryEstimator`; the multiclass and regression estimators of :mod:`.cbpe` and :mod:`.dle`
plug into :data:`ESTIMATORS` the same way) owns the counters and the arithmetic; this module owns
time:

* **ingest** - :meth:`PerformanceEstimates.fold` adds a batch to the window's counters
  (``WindowCounts.est``: for binary the ``(not acted / acted) x 100 score bins`` histogram of *all*
  predictions per slice row). Additive, so worker partials merge exactly.
* **window close** - :meth:`PerformanceEstimates.results`: the window's expected metrics per slice
  row (kept in :attr:`~PerformanceEstimates.last` for the exporter, report and status page), and the
  ``estimated_*`` ``performance`` tests of the **trailing day** (a full daily cycle: a window's
  expected precision follows the time of day with the score mix) against the same estimator applied
  to the reference's score mix under production's own decision rule (so a production threshold other
  than training's is not a performance drop, and the calibration map's own bias cancels). The
  results are over the window's pseudo-rows and join its Benjamini-Hochberg selection. Only all
  traffic is tested (the reference is one all-traffic number; complements mirror it).
* **maturity** - :meth:`PerformanceEstimates.matured` (called when the window's labelled cohort is
  evaluated, :class:`EstimateListener`): per metric, the window's counters and its cohort's labelled
  counts are pooled with the windows before it until the metric rests on enough labels
  (:data:`MIN_COUNTS`: one window of a busy model, several of a quiet one or a rare outcome); then
  the realised metric of the pool against its estimate: ``gap = realised - estimate`` and
  ``z = gap / stated error``.
  The last :data:`MATURED` z per metric feed
  :func:`~detector.core.outcomes.estimate.stated_error.inflation`, which widens the stated error
  (never narrows it) when production shows the estimator is less exact than the reference said.

Estimated and realised performance are separate incidents: an estimated finding's alert key has
the kind ``performance:estimated`` (:func:`~detector.core.decisions.alerts.incident_kind`), it is
judged at window close and resolved by clean windows, while realised performance is judged when
labels mature - neither resolves nor overwrites the other.

Memory per model: the open windows' counters (``2 x 100 x 8`` bytes per slice row for binary), the
trailing day as hourly all-traffic buckets (25 x 1.6 kB), the all-traffic counters of the windows
awaiting their labels (1.6 kB each, at most :data:`PENDING` windows: a week of 5-minute windows;
about the label age / window of them), one pool and :data:`MATURED` gaps per metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from detector.core.checks.window import Result
from detector.core.outcomes.cohort import N_HIST, fold
from detector.core.outcomes.estimate.calibration import score_bin
from detector.core.outcomes.estimate.cbpe import EstimateThresholds, binary_estimates, estimate_checks
from detector.core.outcomes.estimate.plugins import MulticlassEstimator, RegressionEstimator
from detector.core.outcomes.estimate.stated_error import MIN_COUNTS, inflation
from detector.core.outcomes.tasks.base import Counters
from detector.core.state.codec import StateError, check

__all__ = ["PerformanceEstimates", "BinaryEstimator", "EstimateListener", "ESTIMATORS", "decided", "make_estimates",
           "DAY", "PENDING", "MATURED", "MIN_COUNTS"]

DAY = 86400.0
HOUR = 3600.0
PENDING = 2000  # windows whose estimate waits for its labels (a week of 5-minute windows)
MATURED = 48  # matured gaps kept per metric for the stated-error inflation
POOL_SPAN = 7 * DAY  # a pool that cannot fill within a week is dropped (a model with almost no labels)


def decided(score: np.ndarray, acted: np.ndarray, threshold: np.ndarray, default_threshold: float) -> np.ndarray:
    """The decision of each prediction: the event's ``decision`` (acted or not), else ``score >= threshold``,
    else ``score >= default_threshold``; -1 when neither a decision nor a score is known (int8)."""
    pred = np.where(~np.isnan(acted), acted,
                    np.where(~np.isnan(threshold), score >= threshold, score >= default_threshold))
    return np.where(np.isnan(acted) & np.isnan(score), -1, pred).astype(np.int8)


class BinaryEstimator:
    """CBPE for a binary classifier: expected accuracy, precision, recall and ROC AUC from calibrated scores."""

    task = "binary"
    ratio = True  # every metric is a share in [0, 1]
    metrics = ("accuracy", "precision", "recall", "auc")
    source = "estimated on its score mix at production's decisions"
    keys = ("phist",)
    realised_shapes = {"cnt": (4,), "hist": (2, N_HIST)}  # what :meth:`realised` returns (tp fp fn tn; labelled scores)

    def __init__(self, spec: Mapping[str, Any], default_threshold: float = 0.5) -> None:
        self.cal = spec["calibration"]
        self.tau = {k: float(v) for k, v in (spec.get("estimate_tau") or {}).items()}
        self.ref_hist = np.asarray((spec.get("score") or {}).get("hist") or np.zeros(N_HIST), dtype=np.float64)
        self.ref_n = float((spec.get("metrics") or {}).get("n") or self.cal.get("rows") or 0)
        self.default_threshold = float(default_threshold)

    def counters(self, rows: int) -> Counters:
        return Counters("estimate", {"phist": np.zeros((rows, 2, N_HIST))})

    def fold(self, c: Counters, ridx: np.ndarray, b: Any) -> None:
        pred = decided(b.score, b.acted, b.threshold, self.default_threshold)
        k = np.flatnonzero(~np.isnan(b.score) & (pred >= 0))
        if k.size:
            bins = score_bin(b.score[k], N_HIST) + N_HIST * (pred[k] > 0)
            c["phist"] += fold(ridx[k], c.rows, 2 * N_HIST, bins, np.ones(k.size)).reshape(c.rows, 2, N_HIST)

    def estimate(self, arrays: Mapping[str, np.ndarray], with_tau: bool = True) -> dict[str, np.ndarray]:
        """Per row of ``arrays["phist"]`` (P, 2, bins): each metric and its stated error ``<metric>_se``."""
        return binary_estimates(arrays["phist"], self.cal, self.tau if with_tau else None)

    def reference(self, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """The same estimator on the reference's score mix, acting as production did over ``arrays`` (one row).

        Production's decision rule is read per score bin from the span's own acted share (bins it did
        not see take the nearest seen bin's share), so a threshold other than training's is compared
        like with like.
        """
        h = arrays["phist"].reshape(2, -1)
        tot = h.sum(0)
        seen = np.flatnonzero(tot > 0)
        if seen.size == 0 or self.ref_hist.sum() <= 0:
            return {}
        share = np.interp(np.arange(tot.size), seen, h[1, seen] / tot[seen])
        ref = np.stack([self.ref_hist * (1 - share), self.ref_hist * share])[None]
        e = binary_estimates(ref, self.cal)
        scale = self.ref_n / max(float(self.ref_hist.sum()), 1.0)  # counts of the labelled reference rows
        out: dict[str, Any] = {m: float(e[m][0]) for m in self.metrics if np.isfinite(e[m][0])}
        out.update(n=self.ref_n, acted=float(ref[0, 1].sum()) * scale, positives=float(e["positives"][0]) * scale)
        return out

    def realised(self, cohort: Any) -> dict[str, np.ndarray]:
        """A matured cohort's all-traffic labelled counts, additive: ``cnt`` (tp, fp, fn, tn) and the labelled
        score histogram ``hist`` (label 0 / 1 x bins)."""
        from detector.core.outcomes.cohort import C

        cnt = np.asarray(cohort.cnt[0], dtype=np.float64)
        return {"cnt": np.array([cnt[C[k]] for k in ("tp", "fp", "fn", "tn")]),
                "hist": np.asarray(cohort.hist[0], dtype=np.float64).reshape(2, -1).copy()}

    def realised_metrics(self, r: Mapping[str, np.ndarray]) -> dict[str, tuple[float, float]]:
        """Realised metric -> (value, labelled predictions behind it), for the metrics with enough counts
        for a normal approximation (:data:`MIN_COUNTS` of what each rests on)."""
        from detector.core.outcomes.cohort import binned_auc

        tp, fp, fn, tn = (float(x) for x in r["cnt"])
        n = tp + fp + fn + tn
        auc, _ = binned_auc(r["hist"][0], r["hist"][1])
        base = {"accuracy": (n, (tp + tn) / n if n else math.nan), "precision": (tp + fp, tp / (tp + fp) if tp + fp else math.nan),
                "recall": (tp + fn, tp / (tp + fn) if tp + fn else math.nan), "auc": (min(tp + fn, fp + tn), float(auc))}
        return {m: (v, n) for m, (k, v) in base.items() if k >= MIN_COUNTS[m] and v == v}

#: task name -> estimator class; a task plugs in with counters / fold / estimate / reference / realised
ESTIMATORS: dict[str, Any] = {"binary": BinaryEstimator, "multiclass": MulticlassEstimator, "regression": RegressionEstimator}


def make_estimates(task_ref: Mapping[str, Any] | None, window: float, default_threshold: float = 0.5,
                   thresholds: EstimateThresholds | None = None, layout: Any = None) -> PerformanceEstimates | None:
    """The estimates of a model whose reference can support them, else None (no calibration map or
    expected-error model in the reference: no estimates). ``layout``: the model's feature layout (the
    regression estimator reads its inputs by name)."""
    if not task_ref:
        return None
    cls = ESTIMATORS.get(str(task_ref.get("task")))
    if cls is None or (cls is BinaryEstimator and not task_ref.get("calibration")):
        return None
    try:
        est = cls(task_ref, default_threshold, layout) if cls is not BinaryEstimator else cls(task_ref, default_threshold)
    except ValueError:  # the reference lacks what this task's estimator needs (class scores, inputs)
        return None
    return PerformanceEstimates(est, window, thresholds)


class PerformanceEstimates:
    """Estimates of one model (see the module docstring)."""

    def __init__(self, estimator: Any, window: float, thresholds: EstimateThresholds | None = None) -> None:
        self.est = estimator
        self.window = float(window)
        self.th = thresholds or EstimateThresholds()
        self.day: dict[float, dict[str, np.ndarray]] = {}  # hour start -> all-traffic counters of its windows
        self.first = math.inf  # start of the first window seen (the trailing day is full one day after it)
        self.pending: dict[float, dict[str, np.ndarray]] = {}  # window start -> its all-traffic counters (until labels mature)
        self.pool: dict[str, Any] = {}  # metric -> matured windows pooled until its realised value can be measured
        self.gaps: dict[str, list[list[float]]] = {}  # metric -> [[window start, gap, z], ...] (last MATURED)
        self.last: dict[str, Any] = {}  # the last closed window's estimates (exporter, report, status page)

    # ------------------------------------------------------------------ ingest
    def counters(self, rows: int) -> Counters:
        return self.est.counters(rows)

    def fold(self, c: Counters, b: Any, rows: np.ndarray | None) -> None:
        """Add a batch (restricted to one window); ``rows``: slice rows per event ``(n, D)`` or None."""
        n = b.n
        ridx = np.zeros((n, 1), dtype=np.int64) if rows is None else np.concatenate([np.zeros((n, 1), dtype=np.int64), rows], axis=1)
        self.est.fold(c, ridx, b)

    # ------------------------------------------------------------------ close
    def inflation(self) -> dict[str, float]:
        return {m: inflation(np.array([g[2] for g in self.gaps.get(m, [])])) for m in self.est.metrics}

    def results(self, c: Counters | None, start: float, end: float, rows: np.ndarray, comp: np.ndarray,
                label: Any = None) -> list[Result]:
        """The window's estimates (kept in :attr:`last`) and the trailing day's tests over its pseudo-rows.

        ``rows``: real slice row per pseudo-row, ``comp``: complement flags; ``label(row)`` -> slice key.
        """
        if c is None:
            return []
        self.first = min(self.first, float(start))
        real = rows[~comp]
        infl = self.inflation()
        e = self.est.estimate({k: c[k][real] for k in self.est.keys})
        per: dict[str, dict[str, float | None]] = {}
        for i, r in enumerate(real.tolist()):
            key = label(r) if label is not None else str(r)
            per[key] = {"predictions": _num(e["n"][i])}
            for m in self.est.metrics:
                per[key][m] = _num(e[m][i])
                per[key][f"{m}_se"] = _num(e[f"{m}_se"][i] * infl[m])
        if real.size and real[0] == 0 and e["n"][0] > 0 and self.est.realised_shapes:  # its labels will meet it
            self.pending[float(start)] = {k: c[k][0].copy() for k in self.est.keys}
            while len(self.pending) > PENDING:
                del self.pending[next(iter(self.pending))]
        # the trailing day: hourly buckets of all traffic
        hour = math.floor(start / HOUR) * HOUR
        b = self.day.setdefault(hour, {k: np.zeros_like(c[k][0]) for k in self.est.keys})
        for k in self.est.keys:
            b[k] += c[k][0]
        for h in [h for h in self.day if h <= end - DAY - HOUR]:
            del self.day[h]
        span = {k: sum(v[k] for h, v in self.day.items() if h > end - DAY - HOUR / 2) for k in self.est.keys}
        full = end - self.first >= DAY
        self.last = {"window": {"start": float(start), "end": float(end)}, "slices": per, "inflation": infl,
                     "day": None, "errors": self.errors()}
        if not full:
            return []
        de = self.est.estimate({k: v[None] for k, v in span.items()}, with_tau=False)
        ref = self.est.reference(span)
        if not ref:
            return []
        self.last["day"] = {"reference": {m: ref.get(m) for m in self.est.metrics},
                            **{m: _num(de[m][0]) for m in self.est.metrics},
                            **{f"{m}_se": _num(de[f"{m}_se"][0] * infl[m]) for m in self.est.metrics},
                            "predictions": _num(de["n"][0])}
        P = rows.size
        pe: dict[str, np.ndarray] = {"n": np.where(np.arange(P) == 0, de["n"][0], 0.0)}
        for m in self.est.metrics:
            pe[m] = np.where(np.arange(P) == 0, de[m][0], np.nan)
            pe[f"{m}_se"] = np.where(np.arange(P) == 0, de[f"{m}_se"][0] * infl[m], np.nan)
        return estimate_checks(pe, ref, self.th, comp, source=self.est.source)

    # ------------------------------------------------------------------ maturity
    def matured(self, start: float, realised: Mapping[str, np.ndarray]) -> None:
        """The labels of the window starting at ``start`` matured (``realised``: the estimator's additive labelled
        counts of its cohort). Per metric, the window joins that metric's pool; once the pool's realised value
        rests on enough labels (:data:`MIN_COUNTS`), it meets the pool's estimate: ``gap = realised - estimate``,
        ``z`` = gap in stated errors, and ``z_stated`` = gap in the stated error as exported then (inflated)."""
        c = self.pending.pop(float(start), None)
        if c is None:
            return
        infl = self.inflation()
        for m in self.est.metrics:
            p = self.pool.get(m)
            if not p or float(start) - p["start"] > POOL_SPAN:
                p = self.pool[m] = {"start": float(start), "est": {k: np.zeros_like(v) for k, v in c.items()},
                                    "real": {k: np.zeros_like(v) for k, v in realised.items()}}
            for k, v in c.items():
                p["est"][k] += v
            for k, v in realised.items():
                p["real"][k] += v
            real = self.est.realised_metrics(p["real"]).get(m)
            if real is None:
                continue
            del self.pool[m]
            e = self.est.estimate({k: v[None] for k, v in p["est"].items()})
            est, se, n = float(e[m][0]), float(e[f"{m}_se"][0]), float(e["n"][0])
            value, n_lab = real
            # the realised value rests on the labelled share only: its sampling error is larger by sqrt(n / labelled)
            se_eff = se * math.sqrt(max(1.0, n / max(n_lab, 1.0)))
            if not (np.isfinite(est) and se_eff > 0):
                continue
            g = self.gaps.setdefault(m, [])
            z = (value - est) / se_eff
            g.append([float(start), float(value - est), float(z), float(z / infl[m])])
            del g[:-MATURED]

    def errors(self) -> dict[str, dict[str, float]]:
        """Per metric: the last matured window's gap (realised - estimate), its z, and the RMS z so far."""
        out = {}
        for m, g in self.gaps.items():
            if g:
                z = np.array([x[2] for x in g])
                zs = np.array([x[3] for x in g])
                out[m] = {"window_start": g[-1][0], "gap": g[-1][1], "z": g[-1][2], "rms_z": float(np.sqrt(np.mean(z * z))),
                          "rms_z_stated": float(np.sqrt(np.mean(zs * zs))), "windows": len(g)}
        return out

    # ------------------------------------------------------------------ state (plain data)
    def to_state(self) -> dict[str, Any]:
        hours = sorted(self.day)
        return {"task": self.est.task, "first": self.first, "hours": hours,
                "day": {k: np.stack([self.day[h][k] for h in hours]) if hours else np.zeros((0,)) for k in self.est.keys},
                "pending": {"starts": list(self.pending), **{k: np.stack([d[k] for d in self.pending.values()]) if self.pending
                                                            else np.zeros((0,)) for k in self.est.keys}},
                "pool": {m: {"start": p["start"], "est": dict(p["est"]), "real": dict(p["real"])} for m, p in self.pool.items()},
                "gaps": {m: [list(x) for x in g] for m, g in self.gaps.items()}, "last": self.last}

    def load_state(self, st: Mapping[str, Any]) -> None:
        check(isinstance(st, dict) and st.get("task") == self.est.task, "performance estimates of this model's task")
        hours = [float(h) for h in st["hours"]]
        check(len(hours) <= 26, "trailing-day buckets")
        day: dict[float, dict[str, np.ndarray]] = {h: {} for h in hours}
        shapes = {k: a.shape[1:] for k, a in self.counters(1).arrays.items()}
        for k in self.est.keys:
            a = st["day"][k]
            if hours:
                check(isinstance(a, np.ndarray) and a.shape == (len(hours), *shapes[k]), f"trailing-day {k} shape")
                for i, h in enumerate(hours):
                    day[h][k] = np.asarray(a[i], dtype=np.float64).copy()
        pend = st["pending"]
        check(isinstance(pend, dict) and isinstance(pend.get("starts"), list) and len(pend["starts"]) <= PENDING,
              "estimates awaiting labels")
        starts = [float(x) for x in pend["starts"]]
        pending: dict[float, dict[str, np.ndarray]] = {s: {} for s in starts}
        for k in self.est.keys:
            a = pend[k]
            if starts:
                check(isinstance(a, np.ndarray) and a.shape == (len(starts), *shapes[k]), f"pending {k} shape")
                for i, s0 in enumerate(starts):
                    pending[s0][k] = np.asarray(a[i], dtype=np.float64).copy()
        pool = self._load_pool(st.get("pool"), shapes)
        check(isinstance(st["gaps"], dict), "estimate gaps")
        gaps = {str(m): [[float(x) for x in r] for r in g][-MATURED:] for m, g in st["gaps"].items()}
        check(all(len(r) == 4 for g in gaps.values() for r in g), "estimate gap entries")
        check(isinstance(st.get("last", {}), dict), "last estimates")
        self.day, self.pending, self.gaps, self.pool = day, pending, gaps, pool
        self.first, self.last = float(st["first"]), dict(st.get("last") or {})

    def _load_pool(self, st: Any, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, Any]:
        if not st:
            return {}
        check(isinstance(st, dict) and set(st) <= set(self.est.metrics), "estimate pools")
        out = {}
        for m, p in st.items():
            check(isinstance(p, dict) and isinstance(p.get("est"), dict) and isinstance(p.get("real"), dict), "estimate pool")
            for part, want in (("est", shapes), ("real", self.est.realised_shapes)):
                check(set(p[part]) == set(want), f"estimate pool {part} arrays")
                for k, shape in want.items():
                    check(isinstance(p[part][k], np.ndarray) and p[part][k].shape == tuple(shape), f"estimate pool {part} {k}")
            out[m] = {"start": float(p["start"]), "est": {k: np.asarray(v, dtype=np.float64).copy() for k, v in p["est"].items()},
                      "real": {k: np.asarray(v, dtype=np.float64).copy() for k, v in p["real"].items()}}
        return out

    def adopt(self, c: Counters | None) -> None:
        """Check a window's counters read from state (a checkpoint, another worker's partial) fit this estimator."""
        if c is None:
            return
        want = {k: a.shape[1:] for k, a in self.counters(1).arrays.items()}
        for k, shape in want.items():
            if k not in c.arrays or c[k].shape[1:] != shape:
                raise StateError(f"window estimate counters {k!r} do not fit this model's {self.est.task} estimator")


class EstimateListener:
    """Outcome-monitor listener: when a cohort matures, its realised metrics meet the estimate made at its close."""

    def __init__(self, monitor: Any) -> None:
        self.mon = monitor

    def on_predictions(self, m: Any, batch: Any, stored: Any, codes: Any) -> None:
        pass

    def on_matches(self, matches: Any) -> None:
        pass

    def on_cohort(self, m: Any, cohort: Any, baseline: Any, real: Any, maturity: float, window: Any) -> None:
        ms = self.mon.engine.models.get(m.name)
        pe = getattr(ms, "estimate", None)
        if pe is not None:
            pe.matured(cohort.start, pe.est.realised(cohort))

    def to_state(self) -> dict[str, Any]:
        return {}  # the estimates live with the engine's model state

    def load_state(self, state: Any) -> None:
        pass


def _num(x: Any) -> float | None:
    x = float(x)
    return None if x != x or math.isinf(x) else round(x, 6)
