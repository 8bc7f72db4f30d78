"""World A, ``txguard``: card payments in three time zones (see SPEC.md, "World A")."""

from __future__ import annotations

import numpy as np

from tests.worlds.frame import Frame, bump, softmax_draw

__all__ = ["WORLD_A", "WorldA"]

CHANNELS = ("pos", "app", "web", "phone")
MCATS = ("grocery", "fuel", "restaurants", "electronics", "travel", "fashion", "digital_goods", "health",
         "home", "entertainment")
CARDS = ("debit", "credit", "prepaid", "corporate")
VERSIONS = {  # per channel: (values, probabilities) — numeric-looking codes, strings on the wire
    "pos": (("3.9", "3.10"), (0.35, 0.65)),
    "app": (("7.0", "7.1", "7.2"), (0.15, 0.35, 0.5)),
    "web": (("5.3", "5.4"), (0.4, 0.6)),
    "phone": (("1.0",), (1.0,)),
}
ZIPS = (  # per region: zero-padded three-digit billing codes
    (("021", "100", "303", "606", "941", "011"), (0.25, 0.25, 0.15, 0.15, 0.12, 0.08)),
    (("750", "080", "101", "092", "013"), (0.3, 0.25, 0.2, 0.15, 0.1)),
    (("100", "200", "530", "048", "069"), (0.3, 0.25, 0.2, 0.15, 0.1)),
)


SCALE = 1.6  # strength of the fraud signal: ~1.3% of events at or above the 0.7 threshold


def _cat(rng: np.random.Generator, values: tuple[str, ...], p: tuple[float, ...], n: int) -> np.ndarray:
    out = np.empty(n, dtype=object)
    out[:] = np.array(values, dtype=object)[rng.choice(len(values), size=n, p=np.array(p) / sum(p))]
    return out


def day_part(hour: np.ndarray) -> np.ndarray:
    parts = np.array(["night", "morning", "afternoon", "evening"], dtype=object)
    return parts[(np.floor(hour).astype(np.int64) // 6)]


class WorldA:
    name = "A"
    model = "txguard"
    version = "3.4.0"
    regions = (("amer", -5.0, 0.45), ("emea", 1.0, 0.35), ("apac", 8.0, 0.20))
    channels = CHANNELS
    default_rate = 300.0
    rates = (150.0, 400.0)
    threshold = 0.7
    decisions = ("review", "approve")
    score_noise = 0.35
    fallback_share = 0.004
    numeric = ("amount", "merchant_risk", "items", "prior_chargebacks", "account_age_days", "distance_km",
               "velocity_1h", "device_trust", "local_hour")
    integer = ("items", "prior_chargebacks", "account_age_days", "velocity_1h", "local_hour")
    categorical = ("day_part", "card_type", "merchant_category", "client_version", "billing_zip3")
    # labels: log-normal delays (median seconds, log sd), never-labelled and duplicate shares
    label_median = (86400.0, 1.7 * 86400.0)  # negatives, positives
    label_sigma = 1.0
    never_labelled = 0.10
    duplicate_labels = 0.005
    offline_share = 0.30
    out_of_order = 0.10
    train_rows = 30_000
    train_days = 28
    train_timestamps = False
    outcome_deadline_h = 120.0
    outcome_onset_day = 5.0

    # ------------------------------------------------------------------ time structure
    def holiday(self, start: float) -> float | None:
        return None

    def volume(self, hour: np.ndarray, wday: np.ndarray, hol: np.ndarray, region: int) -> np.ndarray:
        shape = 0.22 + 1.0 * bump(hour, 13.5, 3.5) + 0.55 * bump(hour, 20.5, 2.0)
        return shape * np.where(wday >= 5, 1.10, 1.0)

    def load(self, hour: np.ndarray) -> np.ndarray:
        """0..1 serving load by local hour (latency rises at the peak)."""
        return (bump(hour, 13.5, 3.5) + 0.55 * bump(hour, 20.5, 2.0)) / 1.1

    # ------------------------------------------------------------------ features
    def populate(self, f: Frame, rng: np.random.Generator) -> None:
        n, h, reg = f.n, f.hour, f.region
        night = h < 6
        weekend = (f.wday >= 5).astype(float)
        base = np.array([[1.0, 0.3, 0.2, -1.6], [0.7, 0.5, 0.3, -1.8], [0.2, 1.1, 0.2, -2.0]])[reg]
        tilt = np.stack([
            0.9 * bump(h, 13, 4) - 1.2 * night - 0.1 * weekend,
            0.8 * bump(h, 20.5, 2.5) + 0.2 * weekend,
            0.6 * night,
            0.5 * bump(h, 11, 3) - 1.0 * night,
        ], axis=1)
        f.channel = softmax_draw(base + tilt, rng.random(n))
        ch = f.channel

        mc = np.tile(np.array([1.2, 0.6, 0.8, 0.0, -0.6, 0.3, 0.0, -0.2, -0.1, -0.3]), (n, 1))
        mc[:, 2] += 1.0 * bump(h, 19.5, 2.5) + 0.6 * bump(h, 12.5, 1.5)
        mc[:, 0] += 0.6 * bump(h, 17, 3) - 1.0 * night
        mc[:, 6] += 1.2 * night
        mc[:, 9] += 0.6 * bump(h, 21, 2.5)
        mc[:, 1] += 0.4 * bump(h, 8, 2)
        per_channel = np.zeros((4, 10))
        per_channel[0, [6, 4]] = [-2.0, -1.0]
        per_channel[2, [6, 4, 3, 0, 1, 2]] = [1.0, 0.8, 0.5, -0.5, -2.0, -1.5]
        per_channel[1, [2, 1]] = [0.3, -1.5]
        per_channel[3, [4, 8]] = [1.2, 0.5]
        mc += per_channel[ch]
        mcat_i = softmax_draw(mc, rng.random(n))
        mcat = np.array(MCATS, dtype=object)[mcat_i]

        card_p = np.array([[0.45, 0.42, 0.09, 0.04], [0.6, 0.28, 0.08, 0.04], [0.4, 0.4, 0.15, 0.05]])[reg]
        card = np.array(CARDS, dtype=object)[softmax_draw(np.log(card_p), rng.random(n))]

        med = np.array([35.0, 25.0, 60.0, 120.0])[ch]
        sd = np.array([0.9, 1.0, 1.1, 0.8])[ch]
        mult = np.array([1.2, 1.3, 1.0, 3.0, 5.0, 1.5, 0.6, 0.9, 1.8, 1.1])[mcat_i]
        amount = med * mult * np.exp(sd * rng.standard_normal(n)) * np.where(night, 1.3, 1.0)
        tail = rng.random(n) < 0.03
        amount[tail] = 300.0 * (1.0 + rng.pareto(1.5, int(tail.sum())))
        amount = np.round(np.maximum(amount, 0.5), 2)

        risky = np.isin(mcat_i, [3, 6])
        merchant_risk = np.round(rng.beta(2.0 + 2.0 * risky, 8.0), 4)
        items = 1.0 + rng.negative_binomial(1.5 + 1.5 * (mcat_i == 0), 0.5)
        charge = np.where(rng.random(n) < 0.88, 0.0, rng.geometric(0.5, n).astype(float))
        new = rng.random(n) < 0.2
        age = np.where(new, np.ceil(rng.exponential(30.0, n)), np.round(900.0 * np.exp(0.8 * rng.standard_normal(n))))
        age = np.clip(age, 0, 9000)
        zero_p = np.where(ch == 0, 0.75, 0.15)
        dist = np.where(ch == 0, 5.0 * np.exp(1.2 * rng.standard_normal(n)), 40.0 * np.exp(1.5 * rng.standard_normal(n)))
        dist = np.round(np.where(rng.random(n) < zero_p, 0.0, dist), 1)
        vel = rng.poisson(0.6 + 0.8 * (ch == 1)).astype(float)
        trust = np.round(rng.beta(5.0, 2.0, n), 3)
        trust = np.where(np.isin(ch, [1, 2]), trust, np.nan)

        version = np.empty(n, dtype=object)
        u = rng.random(n)
        for c, name in enumerate(CHANNELS):
            vals, p = VERSIONS[name]
            rows = ch == c
            cp = np.cumsum(p) / sum(p)
            version[rows] = np.array(vals, dtype=object)[np.minimum(np.searchsorted(cp, u[rows]), len(vals) - 1)]
        zips = np.empty(n, dtype=object)
        for r, (vals, p) in enumerate(ZIPS):
            rows = reg == r
            zips[rows] = _cat(rng, vals, p, int(rows.sum()))

        f.truth = {
            "amount": amount, "merchant_risk": merchant_risk, "items": items, "prior_chargebacks": charge,
            "account_age_days": age, "distance_km": dist, "velocity_1h": vel, "device_trust": trust,
            "local_hour": np.floor(h), "day_part": day_part(h), "card_type": card, "merchant_category": mcat,
            "client_version": version, "billing_zip3": zips,
        }
        f.observed = {k: v.copy() for k, v in f.truth.items()}
        f.observed["account_age_days"][rng.random(n) < 0.02] = np.nan  # missing at random

    # ------------------------------------------------------------------ outcome and model
    @staticmethod
    def _linear(x: dict[str, np.ndarray], channel: np.ndarray, impute_age: float | None) -> np.ndarray:
        age = x["account_age_days"]
        if impute_age is not None:
            age = np.where(np.isnan(age), impute_age, age)
        trust = np.nan_to_num(x["device_trust"] - 0.7, nan=0.0)
        mcat = x["merchant_category"]
        return SCALE * (0.55 * (np.log(np.maximum(x["amount"], 0.01)) - 3.6)
                + 4.0 * (x["merchant_risk"] - 0.2)
                + 0.7 * x["prior_chargebacks"]
                + 0.6 * (age < 60)
                + 0.15 * np.log1p(x["distance_km"])
                + 0.3 * x["velocity_1h"]
                + 0.5 * (x["local_hour"] < 6)
                + 0.6 * (x["card_type"] == "prepaid")
                + 0.4 * (channel == 2)
                + 0.9 * (mcat == "digital_goods") + 0.5 * (mcat == "electronics")
                - 1.5 * trust)

    INTERCEPT = -7.04  # base rate ~5% (checked in test_world)

    def true_logit(self, f: Frame) -> np.ndarray:
        return self.INTERCEPT + self._linear(f.truth, f.channel, None)

    def model_logit(self, f: Frame) -> np.ndarray:
        """What the deployed model computes from the *served* values (missing age -> training median)."""
        x = dict(f.served)
        x["velocity_1h"] = np.nan_to_num(x["velocity_1h"], nan=0.0)
        return 0.92 * (self.INTERCEPT + self._linear(x, f.channel, impute_age=700.0))

    def rules_score(self, f: Frame) -> np.ndarray:
        return np.round(np.clip(0.02 + 0.6 * np.nan_to_num(f.served["merchant_risk"], nan=0.2), 0, 1), 4)

    def latency(self, f: Frame, rng: np.random.Generator) -> np.ndarray:
        med = np.array([25.0, 45.0, 38.0, 60.0])[f.channel]
        return med * (1.0 + 0.25 * self.load(f.hour)) * np.exp(0.45 * rng.standard_normal(f.n))

    # ------------------------------------------------------------------ wire
    def wire_ts(self, ts: np.ndarray, f: Frame) -> list[object]:
        """amer: local RFC 3339 with -05:00 and ms; emea: UTC 'Z' seconds; apac: epoch float."""
        from tests.worlds.wire import rfc3339

        out: list[object] = [None] * len(ts)
        for r, fmt in ((0, "local_ms"), (1, "z_s"), (2, "epoch")):
            rows = np.flatnonzero(f.region == r)
            if fmt == "epoch":
                vals: list[object] = np.round(ts[rows], 3).tolist()
            else:
                vals = rfc3339(ts[rows], self.regions[r][1] if fmt == "local_ms" else 0.0, ms=fmt == "local_ms")
            for i, v in zip(rows.tolist(), vals, strict=True):
                out[i] = v
        return out

    def offline_lag(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.maximum(1200.0 + 180.0 * rng.standard_normal(n), 300.0)


WORLD_A = WorldA()
