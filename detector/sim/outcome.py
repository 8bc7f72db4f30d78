"""The true label model and the served model that imitates it.

Both are logistic models over the same *terms*: transforms of a few features (log amount, log
account age, night-time, risky merchant categories, an amount x new-account interaction, ...),
each standardised with its mean and standard deviation on a clean calibration week, a missing or
unknown value contributing 0 (mean imputation).

* truth:  ``P(y=1 | x) = sigmoid(b + sum_k c_k z_k(x))`` with ``b`` solved so that the clean base
  rate is ``World.base_rate``;
* served model: its own slightly wrong coefficients on the *served* features plus per-event
  logit noise ``N(0, model_noise)``, its intercept solved to the same mean score
  (calibrated-ish). A broken serving pipeline therefore moves the score, and the truth does not
  see it.

>>> [t.name for t in TERMS][:3]
['amount', 'account_age_days', 'n_tx_24h']
>>> raw = term_matrix({"amount": np.array([10.0, np.nan])}, {}, 2)
>>> bool(np.isnan(raw[1, 0])), bool(np.isnan(raw[0, 1]))
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from detector.sim.world import sigmoid

__all__ = ["Term", "TERMS", "term_matrix", "Calibration", "calibrate", "solve_intercept", "MODEL_COEF"]

CatCol = tuple[np.ndarray, Sequence[str]]  # (codes, vocabulary), code -1 = missing


@dataclass(frozen=True)
class Term:
    name: str
    feature: str
    transform: str  # log | log1p | lin | night | cat | new_account_amount
    coef: float  # true coefficient on the standardised term
    table: tuple[tuple[str, float], ...] = ()  # category weights for "cat" terms


TERMS: tuple[Term, ...] = (
    Term("amount", "amount", "log", 0.75),
    Term("account_age_days", "account_age_days", "log1p", -0.6),
    Term("n_tx_24h", "n_tx_24h", "log1p", 0.4),
    Term("ip_risk_score", "ip_risk_score", "lin", 0.8),
    Term("behavior_score_1", "behavior_score_1", "lin", 0.8),
    Term("distance_from_home_km", "distance_from_home_km", "log1p", 0.35),
    Term("n_failed_logins_7d", "n_failed_logins_7d", "log1p", 0.3),
    Term("chargeback_rate_90d", "chargeback_rate_90d", "lin", 0.3),
    Term("night", "hour_of_day", "night", 0.35),
    Term("new_account_amount", "amount", "new_account_amount", 0.45),
    Term("country", "country", "cat", 0.35,
         (("BR", 1.0), ("IN", 0.8), ("MX", 0.8), ("AR", 0.8), ("ZA", 0.6), ("GB", -0.2), ("JP", -0.5),
          ("DE", -0.3), ("CA", -0.2))),
    Term("device", "device", "cat", 0.3, (("other", 1.5), ("web", 0.4), ("android", 0.2), ("phone", 0.3))),
    Term("merchant_category", "merchant_category", "cat", 0.35,
         (("electronics", 1.0), ("gaming", 1.0), ("gift_cards", 1.5), ("travel", 0.5), ("grocery", -0.3))),
    Term("card_type", "card_type", "cat", 0.25, (("prepaid", 1.5), ("debit", 0.2))),
)

#: The served model's coefficients: the truth with fixed estimation errors of up to ~12%.
MODEL_COEF = np.array([t.coef * (1.0 + 0.12 * np.sin(2.3 * i + 1.0)) for i, t in enumerate(TERMS)])
TRUE_COEF = np.array([t.coef for t in TERMS])


def _cat_weights(term: Term, col: CatCol) -> np.ndarray:
    codes, vocab = col
    table = dict(term.table)
    w = np.array([table.get(v, 0.0) for v in vocab] + [np.nan], dtype=np.float64)  # -1 -> NaN
    return w[codes]


def term_matrix(num: Mapping[str, np.ndarray], cat: Mapping[str, CatCol], n: int) -> np.ndarray:
    """Raw (unstandardised) term values, shape (n, len(TERMS)); NaN = missing or unknown."""
    out = np.full((n, len(TERMS)), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        for k, t in enumerate(TERMS):
            if t.transform == "cat":
                if t.feature in cat:
                    out[:, k] = _cat_weights(t, cat[t.feature])
                continue
            x = num.get(t.feature)
            if x is None:
                continue
            if t.transform == "log":
                out[:, k] = np.log(np.maximum(x, 0.01))
            elif t.transform == "log1p":
                out[:, k] = np.log1p(np.maximum(x, 0.0))
            elif t.transform == "lin":
                out[:, k] = x
            elif t.transform == "night":
                out[:, k] = np.where(np.isnan(x), np.nan, ((x >= 0) & (x <= 5)).astype(np.float64))
            elif t.transform == "new_account_amount":
                age = num.get("account_age_days")
                if age is not None:
                    out[:, k] = np.log(np.maximum(x, 0.01)) * (age < 30)
                    out[np.isnan(age), k] = np.nan
    return out


@dataclass
class Calibration:
    """Term standardisation and intercepts, fitted on a clean calibration sample."""

    mean: np.ndarray
    std: np.ndarray
    z: np.ndarray  # the sample's standardised terms, kept to re-solve intercepts
    noise: np.ndarray  # the sample's model noise draws
    intercept_true: float
    intercept_model: float
    base_rate: float

    def standardise(self, raw: np.ndarray) -> np.ndarray:
        z = (raw - self.mean) / self.std
        return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0) if np.isnan(z).any() else z


def solve_intercept(lin: np.ndarray, target: float) -> float:
    """``b`` such that ``mean(sigmoid(b + lin)) == target`` (bisection)."""
    lo, hi = -30.0, 30.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if float(sigmoid(mid + lin).mean()) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def calibrate(raw: np.ndarray, noise: np.ndarray, base_rate: float) -> Calibration:
    """Fit standardisation and both intercepts on a clean sample of raw terms."""
    mean = np.nanmean(np.where(np.isnan(raw).all(axis=0), 0.0, raw), axis=0)
    std = np.nanstd(np.where(np.isnan(raw).all(axis=0), 1.0, raw), axis=0)
    std = np.where(std > 1e-9, std, 1.0)
    calib = Calibration(mean, std, np.empty(0), noise, 0.0, 0.0, base_rate)
    z = calib.standardise(raw)
    calib.z = z
    calib.intercept_true = solve_intercept(z @ TRUE_COEF, base_rate)
    calib.intercept_model = solve_intercept(z @ MODEL_COEF + noise, base_rate)
    return calib
