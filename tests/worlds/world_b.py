"""World B, ``creditline``: credit applications with a weekly cycle and a holiday (SPEC.md, "World B")."""

from __future__ import annotations

import numpy as np

from tests.worlds.frame import DAY, Frame, bump, softmax_draw

__all__ = ["WORLD_B", "WorldB"]

CHANNELS = ("branch", "online", "partner")
PRODUCTS = ("classic", "gold", "platinum", "student", "business")
WEEKDAY_W = np.array([1.15, 1.05, 1.0, 1.0, 1.05, 0.55, 0.35])
WEEKDAY_NAMES = np.array(["mon", "tue", "wed", "thu", "fri", "sat", "sun"], dtype=object)
LIMITS = np.array([500.0, 1000.0, 1500.0, 2000.0, 3000.0, 5000.0, 10000.0])
BRANCHES = (  # per region: four-digit codes with leading zeros
    ("0412", "0077", "0930", "0005", "1204"),
    ("2210", "0318", "0451", "2702", "0099", "3105"),
    ("4410", "0620", "4077", "0813"),
)
PARTNERS = ("8001", "8002", "8040")
SCALE = 1.3  # strength of the default signal: ~1.6% of applications at or above the 0.6 threshold


def _open_hours(hour: np.ndarray, wday: np.ndarray, hol: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(branch open 0/1, partner open 0/1) by local time."""
    sunday_like = (wday == 6) | hol
    branch = ((hour >= 9) & (hour < 17) & (wday <= 4) & ~hol) | ((hour >= 9) & (hour < 13) & (wday == 5))
    partner = (hour >= 8) & (hour < 20) & ~sunday_like
    return branch.astype(float), partner.astype(float)


class WorldB:
    name = "B"
    model = "creditline"
    version = "2025.1"
    regions = (("west", 0.0, 0.30), ("central", 1.0, 0.45), ("east", 2.0, 0.25))
    channels = CHANNELS
    default_rate = 1000.0
    rates = (700.0, 1300.0)
    threshold = 0.6
    decisions = ("refer", "approve")
    score_noise = 0.3
    fallback_share = 0.003
    numeric = ("income", "utilization", "open_accounts", "delinquencies_24m", "employment_months",
               "requested_limit", "age", "application_hour")
    integer = ("open_accounts", "delinquencies_24m", "employment_months", "age", "application_hour")
    categorical = ("product", "branch_code", "weekday")
    label_median = (3 * 3600.0, 2 * 3600.0)
    label_sigma = 0.7
    never_labelled = 0.05
    duplicate_labels = 0.0
    offline_share = 0.20
    out_of_order = 0.03
    train_rows = 50_000
    train_days = 42
    train_timestamps = True
    outcome_deadline_h = 96.0
    outcome_onset_day = 3.0

    def holiday(self, start: float) -> float | None:
        """The 9th day of the log, moved to the next weekday if it is a weekend."""
        d = np.floor(start / DAY) + 8
        while (int(d) + 3) % 7 >= 5:
            d += 1
        return float(d * DAY)

    def _daily(self, hour: np.ndarray, wday: np.ndarray, hol: np.ndarray) -> np.ndarray:
        branch, partner = _open_hours(hour, wday, hol)
        online = 0.25 + bump(hour, 20.5, 3.0) + 0.5 * bump(hour, 12.5, 2.5)
        return np.stack([1.6 * branch, online, 1.0 * partner], axis=1)

    def volume(self, hour: np.ndarray, wday: np.ndarray, hol: np.ndarray, region: int) -> np.ndarray:
        w = np.where(hol, WEEKDAY_W[6], WEEKDAY_W[wday])
        return self._daily(hour, wday, hol).sum(axis=1) * w

    def populate(self, f: Frame, rng: np.random.Generator) -> None:
        n, h, reg = f.n, f.hour, f.region
        mix = self._daily(h, f.wday, f.holiday)
        f.channel = softmax_draw(np.log(mix + 1e-9), rng.random(n))
        ch = f.channel
        prod_logits = np.tile(np.array([1.2, 0.6, -0.4, 0.0, -0.6]), (n, 1))
        prod_logits[:, 3] += 0.8 * (ch == 1)
        prod_logits[:, 4] += 0.9 * (ch == 2)
        prod_logits[:, 2] += 0.5 * (ch == 0)
        pi = softmax_draw(prod_logits, rng.random(n))
        product = np.array(PRODUCTS, dtype=object)[pi]
        age = np.clip(np.round(np.where(pi == 3, 21 + 3 * rng.standard_normal(n), 44 + 13 * rng.standard_normal(n))), 18, 85)
        income = 42000.0 * np.exp(0.55 * rng.standard_normal(n)) * np.array([1.0, 1.4, 2.2, 0.35, 1.8])[pi]
        income = np.round(income, -2)
        u = rng.random(n)
        util = np.where(u < 0.10, 0.0, np.where(u < 0.14, 1.0, np.round(rng.beta(2.0, 3.0, n), 3)))
        accounts = rng.negative_binomial(3.0, 0.37, n).astype(float)
        delinq = np.where(rng.random(n) < 0.8, 0.0, 1.0 + rng.poisson(0.8, n))
        emp = np.round(30.0 * np.exp(1.0 * rng.standard_normal(n)))
        lim_base = np.array([2, 3, 4, 0, 3])[pi] + rng.integers(-1, 2, n)
        limit = LIMITS[np.clip(lim_base + (rng.random(n) < 0.08) * 2, 0, len(LIMITS) - 1)]
        code = np.empty(n, dtype=object)
        code[ch == 1] = "9001"
        rows = np.flatnonzero(ch == 2)
        code[rows] = np.array(PARTNERS, dtype=object)[rng.integers(0, len(PARTNERS), len(rows))]
        for r, vals in enumerate(BRANCHES):
            rows = np.flatnonzero((ch == 0) & (reg == r))
            code[rows] = np.array(vals, dtype=object)[rng.integers(0, len(vals), len(rows))]
        f.truth = {
            "income": income, "utilization": util, "open_accounts": accounts, "delinquencies_24m": delinq,
            "employment_months": emp, "requested_limit": limit, "age": age, "application_hour": np.floor(h),
            "product": product, "branch_code": code, "weekday": WEEKDAY_NAMES[f.wday],
        }
        f.observed = {k: v.copy() for k, v in f.truth.items()}
        f.observed["income"][rng.random(n) < 0.03] = np.nan
        f.observed["employment_months"][rng.random(n) < 0.06] = np.nan

    @staticmethod
    def _linear(x: dict[str, np.ndarray], channel: np.ndarray, impute: bool) -> np.ndarray:
        inc = x["income"]
        emp = x["employment_months"]
        if impute:
            inc = np.where(np.isnan(inc), 42000.0, inc)
            emp = np.where(np.isnan(emp), 30.0, emp)
        return SCALE * (-0.8 * (np.log(np.maximum(inc, 100.0)) - 10.6)
                + 2.2 * (x["utilization"] - 0.4)
                + 0.55 * x["delinquencies_24m"]
                - 0.25 * (np.log1p(emp) - 3.4)
                - 0.02 * (x["age"] - 44)
                + 0.05 * x["open_accounts"]
                + 0.15 * np.log(x["requested_limit"] / 2000.0)
                + 0.5 * (x["product"] == "student") - 0.4 * (x["product"] == "platinum")
                + 0.35 * (channel == 1))

    INTERCEPT = -4.21  # base rate ~8% (checked in test_world)

    def true_logit(self, f: Frame) -> np.ndarray:
        return self.INTERCEPT + self._linear(f.truth, f.channel, impute=False)

    def model_logit(self, f: Frame) -> np.ndarray:
        return 0.95 * (self.INTERCEPT + self._linear(f.served, f.channel, impute=True))

    def rules_score(self, f: Frame) -> np.ndarray:
        return np.round(np.clip(0.05 + 0.3 * np.nan_to_num(f.served["utilization"], nan=0.4), 0, 1), 4)

    def latency(self, f: Frame, rng: np.random.Generator) -> np.ndarray:
        med = np.array([80.0, 60.0, 140.0])[f.channel]
        return med * np.exp(0.35 * rng.standard_normal(f.n))

    def wire_ts(self, ts: np.ndarray, f: Frame) -> list[object]:
        """online: UTC 'Z' with ms; partner: epoch ms; branch: RFC 3339 at +01:00."""
        from tests.worlds.wire import rfc3339

        out: list[object] = [None] * len(ts)
        for c in range(3):
            rows = np.flatnonzero(f.channel == c)
            if c == 2:
                vals: list[object] = np.round(ts[rows] * 1000.0).astype(np.int64).tolist()
            else:
                vals = rfc3339(ts[rows], 1.0 if c == 0 else 0.0, ms=c == 1)
            for i, v in zip(rows.tolist(), vals, strict=True):
                out[i] = v
        return out

    def offline_lag(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return 2400.0 + 3000.0 * rng.random(n)


WORLD_B = WorldB()
