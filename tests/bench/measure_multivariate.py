"""Power and cost of two multivariate drift statistics on the same windows (the measurement behind the choice).

Candidates, both on the same inputs (each numeric feature as normal scores by its reference
quantiles, standardised by hour of day when the reference has timestamps):

* ``pca``: mean PCA reconstruction error of the window (:mod:`detector.core.checks.multivariate.pca`),
  standardised by its within-window spread: ``(mean - reference mean) / (sd / sqrt(n))``;
* ``c2st``: classifier two-sample test - a gradient-boosted classifier (scikit-learn
  HistGradientBoosting, 50 trees) told apart a bounded sample of reference rows *from the same
  hour of day* and a bounded window sample (each ``min(n, 2000, rows of that hour)`` rows, normal
  scores without the hourly standardisation: its affine map per hour would let a tree recognise
  the hour from the exact values of discrete features); statistic: 2-fold cross-validated ROC AUC.

Protocol: windows of ``n`` events at a random hour of day, drawn from the simulated ``eta``
(clock-driven features) and ``intent`` models; each method's threshold is the 99th percentile of
its statistic over stable windows (false alarm rate 1%, the same for both), power is the share of
faulted windows (``correlation_flip``: a copula correlation changes sign; ``shuffled_join``: a
feature comes from another row; ``correlation_flip_25pct``: the flip in a quarter of the rows
only) above it. Cost: median wall time per window / n (one thread), and
the per-slice-row state each needs (PCA: sums; C2ST: the two samples).

Run: ``OMP_NUM_THREADS=1 python -m tests.bench.measure_multivariate [--quick]`` (JSON to stdout).
``--spread``: instead, how much the PCA statistic's hourly window means spread over a clean day
(48 h at 1000 events/h, seed 0), relative to their sampling error, with and without the hourly
standardisation - the reason the model is fitted by hour of day.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from detector.core.checks.multivariate.pca import PCAModel, _matrix, fit_pca
from detector.sim.tasks.world import DOMAIN_SERVE, model_of, task_training

RESERVOIR = 2000


def _window(model, n: int, seed: int, fault: str | None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    start = 1_795_000_000_000 + int(rng.integers(0, 24)) * 3_600_000
    t = np.sort(start + rng.integers(0, 3_600_000, n))
    share = 1.0
    if fault and fault.endswith("_25pct"):  # the fault hits a quarter of the rows: a weaker signal
        fault, share = fault[: -len("_25pct")], 0.25
    faults = {fault: (rng.uniform(0, 1, n) < share).astype(float)} if fault else {}
    d = model.draw(seed, DOMAIN_SERVE, seed, t, -5, faults, {})
    # served values are rounded as in the training table (else a classifier learns the rounding)
    cols = {k: np.round(v, d.decimals.get(k, 3)) for k, v in d.num.items()}
    return cols, np.floor(np.mod(t / 1000.0, 86400) / 3600).astype(int)


def pca_stat(m: PCAModel, cols, hours) -> float:
    e, _ = m.errors(cols, hours)
    return float((e.mean() - m.spec["error"]["mean"]) / (e.std(ddof=1) / np.sqrt(e.size)))


def c2st_stat(ref_x: np.ndarray, x: np.ndarray, seed: int) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    k = min(len(x), len(ref_x), RESERVOIR)
    a = ref_x[rng.choice(len(ref_x), k, replace=False)]
    b = x[rng.choice(len(x), k, replace=False)]
    X = np.concatenate([a, b])
    y = np.concatenate([np.zeros(k), np.ones(k)])
    fold = rng.permutation(2 * k) % 2
    p = np.empty(2 * k)
    for f in (0, 1):
        clf = HistGradientBoostingClassifier(max_iter=50, random_state=seed).fit(X[fold != f], y[fold != f])
        p[fold == f] = clf.predict_proba(X[fold == f])[:, 1]
    return float(roc_auc_score(y, p))


def measure(name: str, sizes: list[int], n_null: int, n_alt: int) -> list[dict]:
    model = model_of(name)
    tr = task_training(name, 30000, seed=1)
    num = {k: v for k, v in tr.items() if np.asarray(v).dtype.kind == "f" and k not in ("ts", "label", "prediction")}
    hours = np.floor(np.mod(tr["ts"], 86400) / 3600).astype(int)
    spec = fit_pca(num, hours=hours)
    m = PCAModel(spec)
    ref_z = _matrix(num, m.features, m.knots)  # normal scores, not standardised by hour
    out = []
    for n in sizes:
        stats: dict[str, dict[str | None, list[float]]] = {"pca": {}, "c2st": {}}
        times: dict[str, list[float]] = {"pca": [], "c2st": []}
        for fault, reps, base in ((None, n_null, 1000), ("correlation_flip", n_alt, 5000), ("shuffled_join", n_alt, 9000),
                                  ("correlation_flip_25pct", n_alt, 13000)):
            for r in range(reps):
                cols, hrs = _window(model, n, base + r, fault)
                t0 = time.perf_counter()
                stats["pca"].setdefault(fault, []).append(pca_stat(m, cols, hrs))
                times["pca"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                same_hour = ref_z[hours == np.bincount(hrs).argmax()]
                stats["c2st"].setdefault(fault, []).append(c2st_stat(same_hour, _matrix(cols, m.features, m.knots), base + r))
                times["c2st"].append(time.perf_counter() - t0)
        for meth in ("pca", "c2st"):
            thr = float(np.quantile(stats[meth][None], 0.99))
            F = len(m.features)
            mem = (3 + F) * 8 if meth == "pca" else 2 * min(n, RESERVOIR) * F * 8
            out.append({"model": name, "n": n, "method": meth, "threshold_far_1pct": round(thr, 4),
                        "power_correlation_flip": float(np.mean(np.asarray(stats[meth]["correlation_flip"]) > thr)),
                        "power_shuffled_join": float(np.mean(np.asarray(stats[meth]["shuffled_join"]) > thr)),
                        "power_correlation_flip_25pct": float(np.mean(np.asarray(stats[meth]["correlation_flip_25pct"]) > thr)),
                        "us_per_event": round(1e6 * float(np.median(times[meth])) / n, 2),
                        "state_bytes_per_row": mem, "windows": {"stable": n_null, "faulted_each": n_alt}})
    return out


def spread() -> list[dict]:
    from detector.core.inputs.timeparse import parse_timestamps
    from detector.sim.tasks.world import TaskScenario, simulate_task

    out = []
    for name in ("eta", "intent"):
        tr = task_training(name, 30000, seed=1)
        num = {k: v for k, v in tr.items() if np.asarray(v).dtype.kind == "f" and k not in ("ts", "label", "prediction")}
        hours = np.floor(np.mod(tr["ts"], 86400) / 3600).astype(int)
        preds = [e for _, t, e in simulate_task(TaskScenario("s", name, hours=48, rate_per_hour=1000)) if t == "predictions"]
        ts = parse_timestamps([e["ts"] for e in preds])
        for hourly in (False, True):
            m = PCAModel(fit_pca(num, hours=hours if hourly else None))
            cols = {k: np.array([e["features"].get(k) for e in preds], dtype=float) for k in m.features}
            e, _ = m.errors(cols, np.floor(np.mod(ts, 86400) / 3600).astype(int))
            w = np.floor((ts - ts[0]) / 3600).astype(int)
            means = np.array([e[w == i].mean() for i in range(48)])
            se = np.array([e[w == i].std() / np.sqrt((w == i).sum()) for i in range(48)])
            out.append({"model": name, "hourly": hourly, "sd_of_window_means": round(float(means.std()), 4),
                        "mean_sampling_se": round(float(se.mean()), 4), "ratio": round(float(means.std() / se.mean()), 2)})
    return out


def main() -> None:
    if "--spread" in sys.argv:
        json.dump(spread(), sys.stdout, indent=1)
        print()
        return
    quick = "--quick" in sys.argv
    sizes = [250, 1000] if quick else [250, 1000, 4000]
    res = []
    for name in ("intent", "eta"):
        res += measure(name, sizes, 30 if quick else 100, 15 if quick else 40)
    json.dump(res, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
