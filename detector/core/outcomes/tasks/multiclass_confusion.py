"""Confusion-matrix statistics of multiclass cohorts: what the baseline expects, and what a matrix says.

Arrays are confusion matrices ``(..., C, C)`` indexed ``[true, predicted]``, usually one per
pseudo-row (``P``). The multiclass checks (:mod:`.multiclass_checks`) and the label-free estimates
(:mod:`detector.core.outcomes.estimate.cbpe`) both read them through these functions.

The class mix of the traffic follows the time of day (billing questions in the morning, delivery
in the evening) and so does accuracy. What the baseline expects of a cohort is therefore
conditioned on the *predicted* class: each labelled pair expects the baseline's distribution of
true classes for its predicted class, ``P_base(true | predicted)`` (shrunk towards the baseline's
label priors with ``prior`` pseudo-pairs), and the expected confusion matrix of the cohort is
``E[i, j] = n_j P_base(i | j)`` (:func:`expected_confusion`).

A pure change of class priors reweights the true classes of every predicted class by the same
factors: ``P_new(i | j) ~ P_base(i | j) w_i``. :func:`prior_shift` fits ``w`` to a cohort by
iterative proportional fitting (the maximum-likelihood fit of that model); what the fit leaves
unexplained is a change of what the inputs mean (the checks' ``confusion_shift``).

:func:`confusion_metrics` and :func:`macro_f1_se` summarise a matrix (accuracy, macro-F1 and its
delta-method standard error, per-class precision / recall / support).
"""

from __future__ import annotations

import numpy as np

from detector.core.stats.effects import div

__all__ = ["expected_confusion", "prior_shift", "confusion_metrics", "macro_f1_se"]


def expected_confusion(conf_c: np.ndarray, conf_b: np.ndarray, prior: float) -> tuple[np.ndarray, np.ndarray]:
    """(expected confusion of the cohort, P_base(true | predicted)) for its predicted-class counts."""
    nb = conf_b.sum((-2, -1))
    pri = div(conf_b.sum(-1), nb[..., None])  # baseline label priors (P, C)
    cond = (conf_b + prior * np.nan_to_num(pri)[..., :, None]) / (conf_b.sum(-2) + prior)[..., None, :]
    return cond * conf_c.sum(-2)[..., None, :], cond


def prior_shift(conf: np.ndarray, cond: np.ndarray, iters: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Class-prior factors ``w`` (P, C) and the prior-shifted expected confusion (P, C, C).

    Maximises the likelihood of ``conf`` under ``P(i | j) ~ cond[i, j] w_i`` by iterative
    proportional fitting on the true-class margins (each step matches them exactly; the fit is
    the model's MLE when it converges, which it does for any positive ``cond``).
    """
    ncj = conf.sum(-2)[..., None, :]
    lab = conf.sum(-1)
    w = np.ones(lab.shape)
    for _ in range(iters):
        e = cond * w[..., :, None]
        e = e / np.maximum(e.sum(-2, keepdims=True), 1e-300) * ncj
        w = w * np.nan_to_num(div(lab, e.sum(-1)), nan=1.0)
    e = cond * w[..., :, None]
    return w, e / np.maximum(e.sum(-2, keepdims=True), 1e-300) * ncj


def confusion_metrics(conf: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, macro-F1, per-class precision / recall / support of confusion matrices (..., C, C) [true, pred].

    Macro-F1 averages the classes that occur as a label or a prediction (as scikit-learn does).

    >>> m = confusion_metrics(np.array([[[8, 2], [1, 9]]], dtype=float))
    >>> round(float(m["accuracy"][0]), 3), round(float(m["macro_f1"][0]), 3), m["recall"][0].round(2).tolist()
    (0.85, 0.85, [0.8, 0.9])
    """
    tp = np.diagonal(conf, axis1=-2, axis2=-1)
    row, col = conf.sum(-1), conf.sum(-2)
    n = row.sum(-1)
    d = row + col
    f1 = div(2 * tp, d)
    present = d > 0
    macro = div(np.where(present, np.nan_to_num(f1), 0.0).sum(-1), present.sum(-1))
    return {"accuracy": div(tp.sum(-1), n), "macro_f1": macro, "precision": div(tp, col), "recall": div(tp, row),
            "support": row, "predicted": col, "f1": f1, "n": n}


def macro_f1_se(conf: np.ndarray) -> np.ndarray:
    """Delta-method standard error of macro-F1 for multinomial confusion counts (..., C, C)."""
    n = conf.sum((-2, -1))
    p = conf / np.where(n > 0, n, 1.0)[..., None, None]
    t = np.diagonal(p, axis1=-2, axis2=-1)
    d = p.sum(-1) + p.sum(-2)
    present = d > 0
    k = np.maximum(present.sum(-1), 1)[..., None]
    inv = np.where(present, 1.0 / np.where(present, d, 1.0) ** 2, 0.0)
    off = -2 * t * inv  # d F1_c / d (an off-diagonal cell in row c or column c)
    g = off[..., :, None] + off[..., None, :]  # cell (i, j): class i loses recall, class j precision
    diag = 2 * (d - 2 * t) * inv
    C = conf.shape[-1]
    eye = np.eye(C, dtype=bool)
    g = np.where(eye, diag[..., :, None] * eye, g) / k[..., None]
    m1 = (g * p).sum((-2, -1))
    m2 = (g * g * p).sum((-2, -1))
    return np.sqrt(np.maximum(div(m2 - m1 * m1, n), 0.0))
