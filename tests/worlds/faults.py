"""The fault catalogue: what breaks, from when, and what a correct monitor says first.

Each :class:`Fault` hooks one stage of a world (``world``, ``served``, ``model``, ``serving``,
``policy``, ``outcome``, ``labels``, ``clock``) and changes rows by a weight ``w`` per row (0
before the onset, ramping to 1 over ``ramp_h`` hours; abrupt faults jump to 1). Its
:class:`Expect` is derived from the alert contract (README "Alert contract" and its table of kinds),
not from skewwatch's current output: see SPEC.md, "Faults".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tests.worlds import world_a, world_b
from tests.worlds.frame import Frame
from tests.worlds.world_b import LIMITS

__all__ = ["Expect", "Fault", "FAULTS", "faults_of", "DEADLINE_H"]

DEADLINE_H = {"pipeline": 24.0, "gradual": 72.0}

INPUT_CONSEQUENCES = frozenset({"score_drift", "decision_rate", "multivariate_drift", "performance", "calibration",
                                "label_drift", "concept_drift"})
OUTCOME_KINDS = frozenset({"performance", "calibration", "concept_drift", "label_drift"})


@dataclass(frozen=True)
class Expect:
    kinds: tuple[str, ...]
    causes: tuple[str, ...]
    feature: str | None = None  # None: any feature / not applicable
    slices: tuple[dict[str, str], ...] | None = None  # None: any slice
    related: frozenset[str] = frozenset()  # kinds that are consequences, not false alarms

    def to_dict(self) -> dict[str, Any]:
        return {"kinds": list(self.kinds), "causes": list(self.causes), "feature": self.feature,
                "slices": None if self.slices is None else [dict(s) for s in self.slices],
                "related": sorted(self.related)}


Apply = Callable[[Any, Frame, np.ndarray, np.random.Generator], None]


@dataclass(frozen=True)
class Fault:
    name: str
    world: str
    stage: str
    deadline_class: str  # pipeline | gradual | outcome
    apply: Apply
    expect: Expect
    description: str
    ramp_h: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _hit(w: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    return rng.random(len(w)) < share * w


def _on(w: np.ndarray) -> np.ndarray:
    return w > 0


def _both(f: Frame, name: str, rows: np.ndarray, values: Any) -> None:
    """A change in the world itself: the truth and every pipeline see it."""
    for d in (f.truth, f.observed):
        d[name][rows] = values


def _held_base_rate(z_old: np.ndarray, z_new: np.ndarray) -> np.ndarray:
    """Shift ``z_new`` so that its mean probability equals that of ``z_old`` (bisection)."""
    target = float(np.mean(1 / (1 + np.exp(-z_old))))
    lo, hi = -10.0, 10.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if np.mean(1 / (1 + np.exp(-(z_new + mid)))) < target:
            lo = mid
        else:
            hi = mid
    return z_new + (lo + hi) / 2


# ---------------------------------------------------------------------------- fault bodies


def missing(feature: str, share: float) -> Apply:
    def apply(world: Any, f: Frame, w: np.ndarray, rng: np.random.Generator) -> None:
        f.served[feature][_hit(w, share, rng)] = np.nan
    return apply


def rename(feature: str, old: str, new: str, where: str = "served") -> Apply:
    def apply(world: Any, f: Frame, w: np.ndarray, rng: np.random.Generator) -> None:
        col = getattr(f, where)[feature]
        col[_on(w) & (col == old)] = new
    return apply


def new_category(feature: str, value: str, share: float) -> Apply:
    def apply(world: Any, f: Frame, w: np.ndarray, rng: np.random.Generator) -> None:
        _both(f, feature, _hit(w, share, rng), value)
    return apply


def scale(feature: str, factor: float, decimals: int) -> Apply:
    def apply(world: Any, f: Frame, w: np.ndarray, rng: np.random.Generator) -> None:
        rows = _on(w)
        f.served[feature][rows] = np.round(f.served[feature][rows] * factor, decimals)
    return apply


def constant(feature: str, value: float, share: float) -> Apply:
    def apply(world: Any, f: Frame, w: np.ndarray, rng: np.random.Generator) -> None:
        f.served[feature][_hit(w, share, rng)] = value
    return apply


def absent(feature: str) -> Apply:
    def apply(world: Any, f: Frame, w: np.ndarray, rng: np.random.Generator) -> None:
        rows = _on(w)
        f.absent[feature] = rows
        f.served[feature][rows] = np.nan  # the model service sees it missing too
    return apply


def as_text(feature: str) -> Apply:
    def apply(world: Any, f: Frame, w: np.ndarray, rng: np.random.Generator) -> None:
        f.as_text[feature] = _on(w)
    return apply


def unexpected(feature: str) -> Apply:
    def apply(world: Any, f: Frame, w: np.ndarray, rng: np.random.Generator) -> None:
        f.extra[feature] = np.where(_on(w), np.round(rng.random(f.n), 3), np.nan)
    return apply


def stale_cache(feature: str, share: float) -> Apply:
    """Served value of another entity (marginal unchanged); offline keeps the true value."""
    def apply(world: Any, f: Frame, w: np.ndarray, rng: np.random.Generator) -> None:
        rows = np.flatnonzero(_hit(w, share, rng))
        f.served[feature][rows] = f.observed[feature][rng.integers(0, f.n, len(rows))]
    return apply


def strip_zeros_offline(feature: str) -> Apply:
    def apply(world: Any, f: Frame, w: np.ndarray, rng: np.random.Generator) -> None:
        col = f.offline[feature]
        for i in np.flatnonzero(_on(w)).tolist():
            col[i] = col[i].lstrip("0") or "0"
    return apply


def clock(region: str, hours: float) -> Apply:
    def apply(world: Any, f: Frame, w: np.ndarray, rng: np.random.Generator) -> None:
        r = [n for n, _o, _s in world.regions].index(region)
        assert f.ts_shift is not None
        f.ts_shift[_on(w) & (f.region == r)] = hours * 3600.0
    return apply


def new_model(offset: float, version: str) -> Apply:
    def apply(world: Any, f: Frame, w: np.ndarray, rng: np.random.Generator) -> None:
        assert f.score is not None and f.model_version is not None
        rows = _on(w)
        f.score[rows] += offset  # f.score holds the model's log-odds during the model stage
        f.model_version[rows] = version
    return apply


def threshold(value: float) -> Apply:
    def apply(world: Any, f: Frame, w: np.ndarray, rng: np.random.Generator) -> None:
        assert f.threshold is not None
        f.threshold[_on(w)] = value
    return apply


def fallback(share: float) -> Apply:
    def apply(world: Any, f: Frame, w: np.ndarray, rng: np.random.Generator) -> None:
        assert f.fallback is not None
        f.fallback |= _hit(w, share, rng)
    return apply


def slow_channel(channel: str, factor: float) -> Apply:
    def apply(world: Any, f: Frame, w: np.ndarray, rng: np.random.Generator) -> None:
        assert f.latency is not None
        f.latency[_on(w) & (f.channel == world.channels.index(channel))] *= factor
    return apply


def high_ticket(share: float) -> Apply:
    def apply(world: Any, f: Frame, w: np.ndarray, rng: np.random.Generator) -> None:
        rows = np.flatnonzero(_hit(w, share, rng))
        _both(f, "amount", rows, np.round(400.0 * np.exp(1.1 * rng.standard_normal(len(rows))), 2))
    return apply


def limit_step_up(share: float) -> Apply:
    def apply(world: Any, f: Frame, w: np.ndarray, rng: np.random.Generator) -> None:
        rows = np.flatnonzero(_hit(w, share, rng))
        idx = np.minimum(np.searchsorted(LIMITS, f.truth["requested_limit"][rows]) + 1, len(LIMITS) - 1)
        _both(f, "requested_limit", rows, LIMITS[idx])
    return apply


def regional_mix(region: str, feature: str, value: str, share: float) -> Apply:
    def apply(world: Any, f: Frame, w: np.ndarray, rng: np.random.Generator) -> None:
        r = [n for n, _o, _s in world.regions].index(region)
        _both(f, feature, _hit(w, share, rng) & (f.region == r), value)
    return apply


def odds(factor: float) -> Apply:
    def apply(world: Any, f: Frame, w: np.ndarray, rng: np.random.Generator) -> None:
        assert f.logit is not None
        f.logit = f.logit + np.log(factor) * w
    return apply


def concept(change: Callable[[Frame, np.ndarray], np.ndarray]) -> Apply:
    """Replace the outcome log-odds of rows after onset by ``change``, holding their base rate."""
    def apply(world: Any, f: Frame, w: np.ndarray, rng: np.random.Generator) -> None:
        assert f.logit is not None
        rows = _on(w)
        if rows.any():
            z = f.logit.copy()
            z[rows] = _held_base_rate(f.logit[rows], change(f, f.logit)[rows])
            f.logit = z
    return apply


def _concept_a(f: Frame, z: np.ndarray) -> np.ndarray:
    x, k = f.truth, world_a.SCALE
    return (z - k * 0.55 * (np.log(x["amount"]) - 3.6) - k * 4.0 * (x["merchant_risk"] - 0.2)
            + k * 1.2 * (f.channel == 2) + k * 1.0 * (x["local_hour"] < 6))


def _concept_b(f: Frame, z: np.ndarray) -> np.ndarray:
    return z - 2 * world_b.SCALE * 2.2 * (f.truth["utilization"] - 0.4)


def _overdispersed(f: Frame, z: np.ndarray) -> np.ndarray:
    return 1.8 * (z - np.mean(z))


def slow_labels(factor: float, lost: float) -> Apply:
    def apply(world: Any, f: Frame, w: np.ndarray, rng: np.random.Generator) -> None:
        assert f.label_delay is not None
        rows = _on(w)
        f.label_delay = np.where(rows, f.label_delay * factor, f.label_delay)
        f.label_delay[rows & (rng.random(f.n) < lost)] = np.nan
    return apply


# ---------------------------------------------------------------------------- the catalogue

PIPE = ("pipeline_skew",)


def _catalogue() -> list[Fault]:
    out: list[Fault] = []

    def add(name: str, world: str, stage: str, cls: str, apply: Apply, kinds: tuple[str, ...],
            causes: tuple[str, ...], feature: str | None, desc: str, ramp: float = 0.0,
            slices: tuple[dict[str, str], ...] | None = None, related: frozenset[str] = INPUT_CONSEQUENCES) -> None:
        out.append(Fault(name, world, stage, cls, apply, Expect(kinds, causes, feature, slices, related), desc, ramp))

    for w, f_miss, f_cat, old, new, f_unit, fac, dec, f_def, dval, dshare, f_txt in (
        ("A", "account_age_days", "card_type", "credit", "CREDIT", "amount", 100.0, 0, "merchant_risk", 0.5, 0.4, "items"),
        ("B", "income", "product", "gold", "GOLD_V2", "income", 1 / 12, -1, "utilization", 0.0, 0.5, "open_accounts"),
    ):
        add("missing_values", w, "served", "pipeline", missing(f_miss, 0.6), ("missing_values",), PIPE, f_miss,
            f"{f_miss} null in 60% of events (a failed join)")
        add("unseen_category_renamed", w, "served", "pipeline", rename(f_cat, old, new), ("unseen_categories",), PIPE,
            f_cat, f"{f_cat} '{old}' sent as '{new}'")
        add("unit_shift", w, "served", "pipeline", scale(f_unit, fac, dec), ("unit_shift",), PIPE, f_unit,
            f"{f_unit} sent x{fac:g}")
        add("default_value_spike", w, "served", "pipeline", constant(f_def, dval, dshare), ("default_value_spike",),
            PIPE, f_def, f"{f_def} = {dval:g} for {dshare:.0%} (a timeout default)")
        add("schema_type", w, "served", "pipeline", as_text(f_txt), ("schema",), PIPE, f_txt,
            f"{f_txt} sent as JSON strings")
    add("unseen_category_new", "A", "world", "pipeline", new_category("merchant_category", "crypto_exchange", 0.15),
        ("unseen_categories",), PIPE, "merchant_category", "new merchant_category 'crypto_exchange' for 15%")
    add("schema_absent", "A", "served", "pipeline", absent("velocity_1h"), ("schema",), PIPE, "velocity_1h",
        "velocity_1h dropped from the payload")
    add("schema_unexpected", "A", "served", "pipeline", unexpected("device_score"), ("schema",), PIPE, "device_score",
        "a new feature device_score in every event", related=frozenset())
    add("feature_parity", "A", "served", "pipeline", stale_cache("merchant_risk", 0.35), ("feature_parity",), PIPE,
        "merchant_risk", "served merchant_risk from a stale cache for 35% (offline keeps the truth)")
    add("feature_parity", "B", "served", "pipeline", strip_zeros_offline("branch_code"), ("feature_parity",), PIPE,
        "branch_code", "the offline job strips leading zeros from branch_code", related=frozenset())
    # label_delay too: the measured delay is label time minus the (wrong) prediction stamp, so it really moves
    clock_related = frozenset({"feature_drift", "default_value_spike", "missing_values", "multivariate_drift",
                               "score_drift", "decision_rate", "latency", "fallback_rate", "label_delay"}) | OUTCOME_KINDS
    for w, region, hours in (("A", "apac", 8.0), ("B", "east", 1.0)):
        add("clock_shift", w, "clock", "pipeline", clock(region, hours), ("feature_drift",), PIPE, None,
            f"the {region} producer's clock is {hours:+g} h off", slices=({"region": region}, {}), related=clock_related)
    for w, ver, thr_new, ch in (("A", "3.5.0", 0.5, "app"), ("B", "2025.2", 0.45, "partner")):
        add("score_drift", w, "model", "pipeline", new_model(1.0, ver), ("score_drift", "decision_rate"),
            ("serving_health",), None, f"model {ver} with log-odds +1.0, inputs unchanged",
            related=frozenset({"decision_rate", "calibration", "performance", "label_drift", "concept_drift"}))
        add("decision_threshold", w, "policy", "pipeline", threshold(thr_new), ("decision_rate",), ("decision_policy",),
            None, f"threshold changed to {thr_new}", related=frozenset({"performance"}))
        add("fallback_rate", w, "serving", "pipeline", fallback(0.08), ("fallback_rate",), ("serving_health",), None,
            "fallback share to 8%",
            related=frozenset({"score_drift", "decision_rate", "latency", "performance", "calibration"}))
        add("latency_channel", w, "serving", "pipeline", slow_channel(ch, 6.0), ("latency",), ("serving_health",), None,
            f"p95 latency x6 in channel {ch} only", slices=({"channel": ch},), related=frozenset())
    add("covariate_drift", "A", "world", "gradual", high_ticket(0.35), ("feature_drift",), ("covariate_drift",), "amount",
        "a growing share (to 35% over 36 h) of high-ticket transactions", ramp=36.0)
    add("covariate_drift", "B", "world", "gradual", limit_step_up(0.6), ("feature_drift",), ("covariate_drift",),
        "requested_limit", "requested limits step up for a share growing to 60% over 48 h", ramp=48.0)
    add("slice_drift", "A", "world", "gradual", regional_mix("emea", "merchant_category", "travel", 0.27),
        ("feature_drift",), ("covariate_drift",), "merchant_category", "emea only: travel from ~5% to ~30% over 24 h",
        ramp=24.0, slices=({"region": "emea"},))
    for w in ("A", "B"):
        add("label_drift", w, "outcome", "outcome", odds(2.5), ("label_drift",), ("label_drift",), None,
            "outcome odds x2.5 for every input", related=OUTCOME_KINDS)
        add("concept_drift", w, "outcome", "outcome", concept(_concept_a if w == "A" else _concept_b),
            ("concept_drift", "performance"), ("concept_drift",), None,
            "the outcome's dependence on inputs changes, base rate held", related=OUTCOME_KINDS)
    add("calibration", "A", "outcome", "outcome", concept(_overdispersed), ("calibration", "concept_drift", "performance"),
        ("concept_drift", "decision_policy"), None, "outcomes over-dispersed around the scores (log-odds x1.8)",
        related=OUTCOME_KINDS)
    add("label_delay", "A", "labels", "outcome", slow_labels(3.0, 0.45), ("label_delay",), ("label_quality",), None,
        "labels 3x later, 45% never labelled", related=OUTCOME_KINDS)
    return out


FAULTS: dict[tuple[str, str], Fault] = {(f.world, f.name): f for f in _catalogue()}


def faults_of(world: str) -> list[Fault]:
    return [f for (w, _n), f in FAULTS.items() if w == world]
