"""``intent``: a support-ticket routing model (multiclass, six intents, with class scores).

The true intent is drawn from a softmax of a linear function of the standardised inputs plus
intercepts that follow the local clock (delivery questions in the evening, technical ones during
working hours). ``order_value`` and ``days_since_order`` move together (copula correlation 0.6).
The served model has slightly wrong weights and intercepts and reports its softmax as ``scores``
(and the argmax as ``predicted_class``), so it is reasonably but not perfectly calibrated.

Faults: ``concept_change`` swaps the input signatures of ``technical`` and ``feedback`` (the same
tickets now mean the other intent - a product change: inputs stay, class priors move little,
accuracy falls; ``params["share"]`` < 1 blends the signatures only that far);
``class_prior_drift`` multiplies the odds of ``params["class"]`` (default ``cancellation``) by
``params["factor"]`` (default 3) with inputs unchanged; ``correlation_flip`` and
``shuffled_join`` act on the (order_value, days_since_order) pair.

>>> m = IntentModel()
>>> d = m.draw(0, 10, 0, np.arange(0, 3_600_000, 500, dtype=np.int64) + 1_800_000_000_000, -5, {}, {})
>>> acc = float(np.mean(d.predicted == d.label)); 0.5 < acc < 0.9, d.scores.shape[1]
(True, 6)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from detector.core.checks.multivariate.transform import norm_ppf
from detector.sim.tasks.copula import correlated_uniforms, shuffle_rows
from detector.sim.tasks.model import Draw
from detector.sim.world import local_hours, rng_for

__all__ = ["IntentModel", "CLASSES"]

CLASSES = ("billing", "delivery", "technical", "account", "cancellation", "feedback")
CHANNELS = ("chat", "email", "phone")
LANGUAGES = ("en", "es", "de")
DEVICES = ("web", "ios", "android")
_F = 7  # standardised inputs: msg_length, n_prev_contacts, account_age, order_value, days_since_order, sentiment, device
# true weights (classes x inputs): fixed, hand-made so that every intent has its own signature
_W = np.array([
    [0.2, 0.8, 0.3, 1.0, 0.2, -0.5, 0.0],    # billing
    [-0.3, 0.4, -0.2, 0.4, 1.4, -0.8, 0.3],  # delivery
    [1.2, 0.2, -0.4, -0.6, -0.5, -0.6, 0.8],  # technical
    [0.3, 0.9, 0.4, 0.9, 0.1, -0.4, -0.1],   # account (close to billing)
    [0.1, 1.2, 1.0, -0.3, 0.3, -1.3, -0.2],  # cancellation
    [-0.8, -0.6, 0.2, 0.0, 0.6, 1.5, 0.0],   # feedback
]) * 1.6
_B = np.array([0.3, 0.2, 0.0, 0.1, -0.6, -0.4])
_W_SERVED = _W + np.random.default_rng(20261020).normal(0.0, 0.25, _W.shape)
_B_SERVED = _B + np.array([0.1, -0.1, 0.05, 0.0, 0.1, -0.05])


def _pick(u: np.ndarray, p: np.ndarray) -> np.ndarray:
    c = np.cumsum(p, axis=-1)
    if c.ndim == 1:
        return np.minimum(np.searchsorted(c / c[-1], u, side="right"), len(p) - 1)
    return np.minimum((c < (u * c[:, -1])[:, None]).sum(1), c.shape[1] - 1)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


class IntentModel:
    name = "intent"
    task = "multiclass"
    version = "2026-10-20"

    def draw(self, seed: int, domain: int, chunk: int, t_ms: np.ndarray, tz: int, faults: dict[str, np.ndarray],
             params: dict[str, Mapping[str, Any]]) -> Draw:
        n = len(t_ms)

        def rng(k: int) -> np.random.Generator:
            return rng_for(seed, domain, chunk, 300 + k)

        zero = np.zeros(n)
        h, _ = local_hours(t_ms / 1000.0, tz)
        evening = np.cos(2 * np.pi * (h - 20.0) / 24.0)
        daytime = np.cos(2 * np.pi * (h - 13.0) / 24.0)
        channel = _pick(rng(0).random(n), np.array([0.5, 0.3, 0.2]))
        language = _pick(rng(1).random(n), np.array([0.6, 0.25, 0.15]))
        device = _pick(rng(2).random(n), np.array([0.5, 0.3, 0.2]))
        msg_len = np.exp(np.log(180.0) + 0.3 * (channel == 1) + 0.7 * rng(3).standard_normal(n))
        prev = rng(4).poisson(0.8 + 0.4 * (channel == 2)).astype(np.float64)
        age = rng(5).exponential(400.0, n)
        u, v = correlated_uniforms(rng(6), n, 0.6, faults.get("correlation_flip", zero))
        order_value = np.exp(np.log(60.0) + 0.8 * norm_ppf(u))
        days_since = -np.log1p(-np.minimum(v, 1 - 1e-12)) * 6.0
        sentiment = np.tanh(0.8 * rng(7).standard_normal(n))
        X = np.stack([(np.log(msg_len) - np.log(180.0)) / 0.7, (prev - 0.9) / 1.0, (age - 400.0) / 400.0,
                      (np.log(order_value) - np.log(60.0)) / 0.8, (days_since - 6.0) / 6.0, sentiment / 0.5,
                      (device == 0) - 0.5], axis=1)
        # truth
        w_c = faults.get("concept_change", zero)[:, None] * float(params.get("concept_change", {}).get("share", 1.0))
        W = _W[None, :, :] * np.ones((n, 1, 1))
        swapped = _W[[0, 1, 5, 3, 4, 2]]
        W = (1 - w_c[:, :, None]) * W + w_c[:, :, None] * swapped[None]
        b = np.tile(_B, (n, 1))
        b[:, 1] += 0.6 * evening
        b[:, 2] += 0.5 * daytime
        if "class_prior_drift" in faults:
            p = params.get("class_prior_drift", {})
            k = CLASSES.index(p.get("class", "cancellation"))
            b[:, k] += np.log(float(p.get("factor", 3.0))) * faults["class_prior_drift"]
        true_p = _softmax(np.einsum("nkf,nf->nk", W, X) + b)
        label = _pick(rng(8).random(n), true_p)
        # serving: the (order_value, days_since_order) pair may be joined from the wrong row
        Xs = X.copy()
        served_days = days_since
        if "shuffled_join" in faults:
            served_days = shuffle_rows(rng(9), days_since, faults["shuffled_join"] > 0)
            Xs[:, 4] = (served_days - 6.0) / 6.0
        bs = np.tile(_B_SERVED, (n, 1))
        bs[:, 1] += 0.5 * evening
        bs[:, 2] += 0.5 * daytime
        scores = _softmax(Xs @ _W_SERVED.T + bs)
        cls = np.array(CLASSES, dtype=object)
        return Draw(
            num={"msg_length": np.round(msg_len), "n_prev_contacts": prev, "account_age_days": np.round(age),
                 "order_value": order_value, "days_since_order": served_days, "sentiment": sentiment},
            decimals={"msg_length": 0, "n_prev_contacts": 0, "account_age_days": 0, "order_value": 2,
                      "days_since_order": 2, "sentiment": 3},
            cat={"device": np.array(DEVICES, dtype=object)[device]},
            slices={"channel": np.array(CHANNELS, dtype=object)[channel], "language": np.array(LANGUAGES, dtype=object)[language]},
            label=cls[label], predicted=cls[np.argmax(scores, 1)], scores=scores, classes=CLASSES)

