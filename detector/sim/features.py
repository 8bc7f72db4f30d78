"""The feature world: slices, latent customer traits, numeric and categorical features.

Generation is columnar: :func:`make_context` draws the per-event context (local hour, slices,
latent traits) for an array of timestamps, then :func:`gen_numeric` / :func:`gen_categorical`
draw every feature column with its own random stream (see :func:`detector.sim.world.rng_for`).
Numeric columns are float64 with NaN for a missing value, already rounded the way they are
served (money to cents, scores to 3-4 decimals, counts to integers). Categorical columns are
int32 codes into the feature's vocabulary, -1 for missing.

``drift`` maps a feature name to a per-event magnitude (0 = normal). A numeric feature shifts by
that many standard deviations in its natural space (log space for money and durations, logit
space for ratios, rate for counts); a categorical one moves that share (x 0.5) of its events to a
target category. This is how world-level faults (covariate and slice drift) change the world
itself, so the offline pipeline sees them too.

>>> names = [s.name for s in numeric_specs(20)]
>>> names[:4]
['amount', 'n_tx_24h', 'account_age_days', 'hour_of_day']
>>> [s.name for s in categorical_specs(5)]
['country', 'device', 'merchant_category', 'currency', 'card_type']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from detector.sim.world import local_hours, sigmoid

__all__ = [
    "REGIONS",
    "CHANNELS",
    "TIERS",
    "SLICE_DIMS",
    "Ctx",
    "NumSpec",
    "CatSpec",
    "numeric_specs",
    "categorical_specs",
    "make_context",
    "gen_numeric",
    "gen_categorical",
    "GROUPS",
]

REGIONS = ("na", "eu", "apac", "latam", "mea")
CHANNELS = ("web", "mobile_app", "pos", "call_center")
TIERS = ("basic", "standard", "premium", "business")
SLICE_DIMS = {"region": REGIONS, "channel": CHANNELS, "tier": TIERS}

_REGION_W = np.array([0.42, 0.26, 0.14, 0.12, 0.06])
_CHANNEL_W = np.array([0.38, 0.40, 0.17, 0.05])
_TIER_GIVEN_REGION = np.array([
    [0.40, 0.35, 0.17, 0.08],  # na
    [0.35, 0.38, 0.17, 0.10],  # eu
    [0.50, 0.30, 0.12, 0.08],  # apac
    [0.55, 0.30, 0.10, 0.05],  # latam
    [0.45, 0.30, 0.15, 0.10],  # mea
])
_TIER_WEALTH = np.array([-0.5, 0.0, 0.7, 0.9])
_TIER_AGE = np.array([-0.3, 0.0, 0.4, 0.3])


@dataclass
class Ctx:
    """Per-event context shared by all feature generators of one chunk."""

    n: int
    t_ms: np.ndarray  # int64 epoch ms
    local_h: np.ndarray  # fractional local hour
    hour: np.ndarray  # int64 local hour 0..23
    dow: np.ndarray  # local day of week, 0 = Monday
    evening: np.ndarray  # in [-1, 1], +1 at 20:00 local
    daytime: np.ndarray  # in [-1, 1], +1 at 13:00 local
    region: np.ndarray  # codes into REGIONS
    channel: np.ndarray
    tier: np.ndarray
    wealth: np.ndarray  # latent customer traits, ~N(0, 1)
    risk: np.ndarray
    activity: np.ndarray


def _pick(u: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Inverse-CDF categorical draw; ``probs`` is (K,) or per-event (n, K), not normalised."""
    cum = np.cumsum(probs, axis=-1)
    if cum.ndim == 1:
        return np.minimum(np.searchsorted(cum / cum[-1], u, side="right"), len(cum) - 1).astype(np.int32)
    return np.minimum((cum < (u * cum[:, -1])[:, None]).sum(axis=1), cum.shape[1] - 1).astype(np.int32)


def _pick_by(u: np.ndarray, group: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw from ``table[group]`` (rows of weights), one searchsorted per group."""
    cum = np.cumsum(table, axis=1)
    cum = cum / cum[:, -1:]
    out = np.empty(len(u), dtype=np.int32)
    for g in range(table.shape[0]):
        m = group == g
        out[m] = np.searchsorted(cum[g], u[m], side="right")
    return np.minimum(out, table.shape[1] - 1)


def make_context(t_ms: np.ndarray, tz_offset_hours: int, rng: np.random.Generator) -> Ctx:
    """Local time, slices (correlated with hour and each other) and latent traits."""
    n = len(t_ms)
    h, dow = local_hours(t_ms / 1000.0, tz_offset_hours)
    evening = np.cos(2 * np.pi * (h - 20.0) / 24.0)
    daytime = np.cos(2 * np.pi * (h - 13.0) / 24.0)
    u = rng.random((n, 3))
    # apac traffic is relatively larger during the local night (its daytime)
    rw = np.tile(_REGION_W, (n, 1))
    rw[:, 2] *= 1.0 + 0.6 * np.cos(2 * np.pi * (h - 2.0) / 24.0)
    region = _pick(u[:, 0], rw)
    cw = np.tile(_CHANNEL_W, (n, 1))
    cw[:, 1] *= 1.0 + 0.35 * evening  # mobile app in the evening
    cw[:, 2] *= 1.0 + 0.45 * daytime  # point of sale during opening hours
    channel = _pick(u[:, 1], cw)
    tier = _pick_by(u[:, 2], region, _TIER_GIVEN_REGION)
    z = rng.standard_normal((n, 3))
    return Ctx(
        n=n, t_ms=t_ms, local_h=h, hour=np.floor(h).astype(np.int64), dow=dow,
        evening=evening, daytime=daytime, region=region, channel=channel, tier=tier,
        wealth=z[:, 0] + _TIER_WEALTH[tier], risk=z[:, 1], activity=z[:, 2],
    )


# --------------------------------------------------------------------------- numeric features

NumGen = Callable[[np.random.Generator, Ctx, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class NumSpec:
    """One numeric feature: how it is drawn, rounded, grouped and how often it is missing."""

    name: str
    kind: str  # money | count | int | hour | ratio | gauss | duration | distance
    decimals: int | None  # None = integer
    group: str  # upstream source; a join failure nulls a whole group
    missing: float  # natural missing rate (in training and serving alike)
    gen: NumGen


def _logn(rng: np.random.Generator, c: Ctx, mu: np.ndarray | float, sigma: float, d: np.ndarray) -> np.ndarray:
    return np.exp(mu + sigma * (rng.standard_normal(c.n) + d))


def _amount(rng, c, d):
    mu = np.log(45.0) + 0.35 * c.wealth + 0.15 * c.evening + 0.08 * (c.dow >= 5) - 0.35 * (c.channel == 2)
    return np.maximum(np.round(_logn(rng, c, mu, 0.95, d), 2), 0.5)


def _n_tx_24h(rng, c, d):
    lam = np.exp(0.1 + 0.45 * c.activity + 0.3 * c.risk + 0.7 * d)
    return np.where(rng.random(c.n) < 0.2, 0.0, rng.poisson(lam)).astype(np.float64)


def _account_age(rng, c, d):
    mu = np.log(600.0) + 0.5 * _TIER_AGE[c.tier] - 0.2 * c.risk
    return np.clip(np.floor(_logn(rng, c, mu, 1.1, d)), 0, 3650)


def _hour(rng, c, d):
    return ((c.hour + np.round(3.0 * d)) % 24).astype(np.float64)


def _ratio(mu: float, sigma: float, decimals: int, risk_w: float = 0.0) -> NumGen:
    def gen(rng, c, d):
        return np.round(sigmoid(mu + risk_w * c.risk + sigma * (rng.standard_normal(c.n) + d)), decimals)
    return gen


def _gauss(risk_w: float = 0.0, decimals: int = 3) -> NumGen:
    def gen(rng, c, d):
        s = (1.0 - risk_w**2) ** 0.5
        return np.round(risk_w * c.risk + s * (rng.standard_normal(c.n) + d), decimals)
    return gen


def _avg_amount_30d(rng, c, d):
    return np.round(_logn(rng, c, np.log(50.0) + 0.6 * c.wealth, 0.5, d), 2)


def _distance(rng, c, d):
    mu = np.log(8.0) + 0.25 * c.risk - 0.8 * (c.channel == 2)
    return np.round(_logn(rng, c, mu, 1.3, d), 1)


def _poisson(base: float, risk_w: float) -> NumGen:
    def gen(rng, c, d):
        return rng.poisson(np.exp(base + risk_w * c.risk + 0.7 * d)).astype(np.float64)
    return gen


def _chargeback_rate(rng, c, d):
    z = rng.standard_normal((c.n, 2))
    nonzero = z[:, 0] < -1.1 + 0.35 * c.risk + 0.5 * d  # ~14% non-zero
    return np.where(nonzero, np.round(sigmoid(-3.0 + 0.8 * z[:, 1] + 0.5 * d), 4), 0.0)


def _session_s(rng, c, d):
    mu = np.log(180.0) - 1.5 * (c.channel == 2) + 0.2 * c.activity
    return np.clip(np.round(_logn(rng, c, mu, 0.9, d)), 1, 86_400)


def _email_age(rng, c, d):
    return np.clip(np.floor(_logn(rng, c, np.log(2000.0) - 0.3 * c.risk, 0.9, d)), 0, 10_000)


def _n_cards(rng, c, d):
    return np.minimum(1 + rng.poisson(np.exp(np.log(0.6) + 0.2 * c.wealth + 0.7 * d)), 8).astype(np.float64)


def _credit_limit(rng, c, d):
    return np.round(_logn(rng, c, np.log(3000.0) + 0.6 * c.wealth, 0.4, d), -2)


def _days_since_last(rng, c, d):
    scale = np.exp(np.log(2.0) - 0.6 * c.activity + 0.7 * d)
    return np.floor(rng.exponential(scale)).astype(np.float64)


def _address_match(rng, c, d):
    z = rng.standard_normal((c.n, 2))
    exact = z[:, 0] > -0.5 + 0.3 * c.risk + d  # ~70% exact matches
    return np.where(exact, 1.0, np.round(sigmoid(0.5 + 1.2 * z[:, 1] - d), 3))


_NUMERIC: tuple[NumSpec, ...] = (
    NumSpec("amount", "money", 2, "txn", 0.0, _amount),
    NumSpec("n_tx_24h", "count", None, "history", 0.0, _n_tx_24h),
    NumSpec("account_age_days", "int", None, "account", 0.0, _account_age),
    NumSpec("hour_of_day", "hour", None, "txn", 0.0, _hour),
    NumSpec("ip_risk_score", "ratio", 3, "device", 0.01, _ratio(-1.2, 0.8, 3, risk_w=0.3)),
    NumSpec("behavior_score_1", "gauss", 3, "scores", 0.0, _gauss(0.3)),
    NumSpec("avg_amount_30d", "money", 2, "history", 0.005, _avg_amount_30d),
    NumSpec("distance_from_home_km", "distance", 1, "txn", 0.02, _distance),
    NumSpec("n_failed_logins_7d", "count", None, "device", 0.0, _poisson(-1.6, 0.5)),
    NumSpec("chargeback_rate_90d", "ratio", 4, "history", 0.0, _chargeback_rate),
    NumSpec("session_duration_s", "duration", None, "device", 0.01, _session_s),
    NumSpec("device_trust_score", "gauss", 3, "device", 0.03, _gauss(-0.3)),
    NumSpec("merchant_risk_score", "gauss", 3, "scores", 0.0, _gauss()),
    NumSpec("email_domain_age_days", "int", None, "account", 0.01, _email_age),
    NumSpec("n_cards_on_account", "count", None, "account", 0.0, _n_cards),
    NumSpec("credit_limit", "money", None, "account", 0.0, _credit_limit),
    NumSpec("utilization_ratio", "ratio", 3, "account", 0.0, _ratio(-0.5, 1.0, 3)),
    NumSpec("days_since_last_tx", "count", None, "history", 0.0, _days_since_last),
    NumSpec("address_match_score", "ratio", 3, "txn", 0.0, _address_match),
    NumSpec("behavior_score_2", "gauss", 3, "scores", 0.0, _gauss()),
)

#: Related features that come from one upstream join (``join_failure`` nulls them together).
GROUPS = {
    "account": ("account_age_days", "n_cards_on_account", "credit_limit", "utilization_ratio"),
    "history": ("n_tx_24h", "avg_amount_30d", "days_since_last_tx", "chargeback_rate_90d"),
    "device": ("ip_risk_score", "n_failed_logins_7d", "session_duration_s", "device_trust_score"),
}


def numeric_specs(n: int) -> tuple[NumSpec, ...]:
    """The first ``n`` catalogue features, then generic gaussian ``num_XX`` scores."""
    specs = list(_NUMERIC[:n])
    for i in range(len(_NUMERIC), n):
        specs.append(NumSpec(f"num_{i + 1:02d}", "gauss", 3, "extra", 0.0, _gauss()))
    return tuple(specs)


def gen_numeric(spec: NumSpec, rng: np.random.Generator, ctx: Ctx, drift: np.ndarray | None) -> np.ndarray:
    """One numeric column (rounded, NaN where naturally missing)."""
    d = np.zeros(ctx.n) if drift is None else drift
    x = np.asarray(spec.gen(rng, ctx, d), dtype=np.float64)
    if spec.missing > 0:
        x[rng.random(ctx.n) < spec.missing] = np.nan
    return x


# --------------------------------------------------------------------------- categorical features

_COUNTRIES = ("US", "GB", "DE", "FR", "CA", "JP", "BR", "AU", "IN", "ES", "MX", "IT", "AE", "AR", "ZA")
_COUNTRY_GIVEN_REGION = {  # region -> {country: weight}
    "na": {"US": 0.80, "CA": 0.14, "MX": 0.06},
    "eu": {"DE": 0.31, "GB": 0.30, "FR": 0.20, "ES": 0.11, "IT": 0.08},
    "apac": {"JP": 0.40, "AU": 0.30, "IN": 0.30},
    "latam": {"BR": 0.70, "AR": 0.20, "MX": 0.10},
    "mea": {"AE": 0.55, "ZA": 0.45},
}
_CURRENCY_OF = {"US": "USD", "CA": "CAD", "MX": "MXN", "DE": "EUR", "FR": "EUR", "ES": "EUR", "IT": "EUR",
                "GB": "GBP", "JP": "JPY", "AU": "AUD", "IN": "INR", "BR": "BRL", "AR": "ARS", "AE": "AED",
                "ZA": "ZAR"}
_CURRENCIES = ("USD", "EUR", "GBP", "CAD", "JPY", "BRL", "AUD", "INR", "MXN", "AED", "ARS", "ZAR")
_DEVICES = ("ios", "android", "web", "pos_terminal", "phone", "other")
_DEVICE_GIVEN_CHANNEL = np.array([
    [0.05, 0.05, 0.85, 0.00, 0.00, 0.05],  # web
    [0.52, 0.46, 0.00, 0.00, 0.00, 0.02],  # mobile_app
    [0.00, 0.00, 0.00, 0.95, 0.00, 0.05],  # pos
    [0.00, 0.00, 0.00, 0.00, 0.90, 0.10],  # call_center
])
_MERCHANTS = ("grocery", "restaurants", "retail", "fuel", "travel", "electronics", "entertainment",
              "gaming", "gift_cards", "health")
_CARD_TYPES = ("credit", "debit", "prepaid")
_CARD_GIVEN_TIER = np.array([[0.35, 0.55, 0.10], [0.50, 0.45, 0.05], [0.78, 0.20, 0.02], [0.88, 0.10, 0.02]])

CatGen = Callable[[np.random.Generator, Ctx, dict[str, np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class CatSpec:
    """One categorical feature: vocabulary, draw, natural missing rate."""

    name: str
    vocab: tuple[str, ...]
    missing: float
    gen: CatGen


def _country_table() -> np.ndarray:
    t = np.zeros((len(REGIONS), len(_COUNTRIES)))
    for r, reg in enumerate(REGIONS):
        for c, w in _COUNTRY_GIVEN_REGION[reg].items():
            t[r, _COUNTRIES.index(c)] = w
    return t


_COUNTRY_T = _country_table()
_CURRENCY_CODE = np.array([_CURRENCIES.index(_CURRENCY_OF[c]) for c in _COUNTRIES], dtype=np.int32)


def _country(rng, c, cols):
    return _pick_by(rng.random(c.n), c.region, _COUNTRY_T)


def _currency(rng, c, cols):
    # follows the country (USD when the country is unknown); 7% cross-border purchases in USD
    country = cols.get("country")
    if country is None:
        country = _pick_by(rng.random(c.n), c.region, _COUNTRY_T)
    local = np.append(_CURRENCY_CODE, np.int32(0))[country]  # code -1 -> last entry (USD)
    return np.where(rng.random(c.n) < 0.07, 0, local).astype(np.int32)


def _device(rng, c, cols):
    return _pick_by(rng.random(c.n), c.channel, _DEVICE_GIVEN_CHANNEL)


def _merchant(rng, c, cols):
    w = 1.0 / np.arange(1, len(_MERCHANTS) + 1) ** 1.1
    probs = np.tile(w, (c.n, 1))
    probs[:, 6:8] *= (1.0 + 0.5 * c.evening)[:, None]  # entertainment, gaming in the evening
    return _pick(rng.random(c.n), probs)


def _card(rng, c, cols):
    return _pick_by(rng.random(c.n), c.tier, _CARD_GIVEN_TIER)


def _generic(k: int) -> CatGen:
    w = 1.0 / np.arange(1, k + 1) ** 1.2

    def gen(rng, c, cols):
        return _pick(rng.random(c.n), w)
    return gen


_CATEGORICAL: tuple[CatSpec, ...] = (
    CatSpec("country", _COUNTRIES, 0.002, _country),
    CatSpec("device", _DEVICES, 0.01, _device),
    CatSpec("merchant_category", _MERCHANTS, 0.005, _merchant),
    CatSpec("currency", _CURRENCIES, 0.0, _currency),
    CatSpec("card_type", _CARD_TYPES, 0.005, _card),
)


def categorical_specs(n: int) -> tuple[CatSpec, ...]:
    specs = list(_CATEGORICAL[:n])
    for i in range(len(_CATEGORICAL), n):
        specs.append(CatSpec(f"cat_{i + 1:02d}", tuple(f"v{j}" for j in range(6)), 0.0, _generic(6)))
    return tuple(specs)


def gen_categorical(spec: CatSpec, rng: np.random.Generator, ctx: Ctx, drift: np.ndarray | None,
                    cols: dict[str, np.ndarray], target: int = 1) -> np.ndarray:
    """One categorical column of codes (-1 = missing); ``cols`` holds the columns drawn so far."""
    codes = np.asarray(spec.gen(rng, ctx, cols), dtype=np.int32)
    u = rng.random((ctx.n, 2))
    if drift is not None:
        codes = np.where(u[:, 0] < np.clip(0.5 * drift, 0.0, 0.95), np.int32(target), codes)
    if spec.missing > 0:
        codes = np.where(u[:, 1] < spec.missing, np.int32(-1), codes)
    return codes


def describe() -> dict[str, Any]:
    """The feature catalogue as plain data (for docs and the CLI)."""
    return {
        "numeric": [{"name": s.name, "kind": s.kind, "decimals": s.decimals, "group": s.group,
                     "missing": s.missing} for s in _NUMERIC],
        "categorical": [{"name": s.name, "values": list(s.vocab), "missing": s.missing} for s in _CATEGORICAL],
        "slices": {k: list(v) for k, v in SLICE_DIMS.items()},
    }
