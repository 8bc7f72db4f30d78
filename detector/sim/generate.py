"""One chunk of simulated traffic, as columns: world -> truth -> serving -> model -> labels.

:func:`generate_chunk` is the vectorised heart of the simulator. For the events of one time chunk
it draws the context and the world's features (with world-level drift), the true label, the
served copy of the features (with serving faults), the served model's score, decision and serving
health, and when each label arrives. Stream/file formatting lives in :mod:`detector.sim.stream`.

Random numbers come from independent streams per (seed, domain, chunk, column) — see
:func:`detector.sim.world.rng_for` — so the same seed gives the same traffic with or without
faults, except where a fault acts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from detector.sim.faults import Fault, intensity, slice_mask
from detector.sim.features import (
    CatSpec,
    Ctx,
    NumSpec,
    categorical_specs,
    gen_categorical,
    gen_numeric,
    make_context,
    numeric_specs,
)
from detector.sim.inject import Served, apply_serving
from detector.sim.outcome import (
    MODEL_COEF,
    TERMS,
    TRUE_COEF,
    Calibration,
    calibrate,
    solve_intercept,
    term_matrix,
)
from detector.sim.world import DEFAULT_START, World, rng_for, sample_times, sigmoid, to_epoch_ms

if TYPE_CHECKING:
    from detector.sim.scenario import Scenario

__all__ = ["ChunkData", "generate_chunk", "calibration", "specs", "make_ids", "DOMAIN_SERVE", "DOMAIN_TRAIN"]

DOMAIN_SERVE, DOMAIN_TRAIN, DOMAIN_CALIB, DOMAIN_FAULT = 0, 1, 2, 3
S_TIME, S_CTX, S_MODEL, S_LABEL, S_NUM, S_CAT = 0, 1, 2, 3, 100, 200


@lru_cache(maxsize=32)
def specs(world: World) -> tuple[tuple[NumSpec, ...], tuple[CatSpec, ...]]:
    return numeric_specs(world.n_numeric), categorical_specs(world.n_categorical)


def _world_columns(world: World, seed: int, domain: int, chunk: int, ctx: Ctx,
                   drift: dict[str, np.ndarray], targets: dict[str, int]):
    nspecs, cspecs = specs(world)
    num = {s.name: gen_numeric(s, rng_for(seed, domain, chunk, S_NUM + i), ctx, drift.get(s.name))
           for i, s in enumerate(nspecs)}
    cat: dict[str, np.ndarray] = {}
    for j, s in enumerate(cspecs):
        cat[s.name] = gen_categorical(s, rng_for(seed, domain, chunk, S_CAT + j), ctx, drift.get(s.name), cat,
                                      targets.get(s.name, 1))
    return num, cat


def _raw_terms(num, cat, vocab, n) -> np.ndarray:
    return term_matrix(num, {k: (v, vocab[k]) for k, v in cat.items()}, n)


@lru_cache(maxsize=16)
def calibration(world: World) -> Calibration:
    """Term standardisation and intercepts on a clean week (~40k events), independent of seeds."""
    t0 = to_epoch_ms(DEFAULT_START)
    t_ms = sample_times(rng_for(0, DOMAIN_CALIB, 0, S_TIME), world.with_(rate_per_hour=240.0), t0, t0 + 7 * 86_400_000)
    ctx = make_context(t_ms, world.tz_offset_hours, rng_for(0, DOMAIN_CALIB, 0, S_CTX))
    num, cat = _world_columns(world, 0, DOMAIN_CALIB, 0, ctx, {}, {})
    vocab = {s.name: list(s.vocab) for s in specs(world)[1]}
    noise = rng_for(0, DOMAIN_CALIB, 0, S_MODEL).standard_normal(len(t_ms)) * world.model_noise
    return calibrate(_raw_terms(num, cat, vocab, len(t_ms)), noise, world.base_rate)


@lru_cache(maxsize=64)
def _true_intercept(world: World, flipped: tuple[str, ...], factor: float) -> float:
    cal = calibration(world)
    return solve_intercept(cal.z @ _coef(flipped), min(0.95, world.base_rate * factor))


def _coef(flipped: tuple[str, ...]) -> np.ndarray:
    return np.array([-t.coef if t.feature in flipped else t.coef for t in TERMS])


def make_ids(seed: int, domain: int, chunk: int, n: int) -> np.ndarray:
    """Unique, random-looking 64-bit prediction ids (splitmix64 of a counter: a bijection)."""
    key = np.uint64((seed * 0x2545F4914F6CDD1D + domain * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)
    x = (np.uint64(chunk) << np.uint64(26)) + np.arange(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (x ^ key) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


@dataclass
class ChunkData:
    """All columns of one chunk of predictions (and the labels they will produce)."""

    idx: int
    t_ms: np.ndarray
    ids: np.ndarray  # uint64
    ctx: Ctx
    world_num: dict[str, np.ndarray]  # the offline pipeline's view (true values)
    world_cat: dict[str, np.ndarray]
    vocab: dict[str, list[str]]
    served: Served
    p_true: np.ndarray
    y: np.ndarray  # int8 true label
    score: np.ndarray  # served score (fallback default where fallback)
    model_score: np.ndarray  # the model's own score (before any fallback)
    fallback: np.ndarray
    threshold: np.ndarray
    review: np.ndarray
    latency_ms: np.ndarray
    override: np.ndarray
    versions: list[tuple[np.ndarray, str]]  # (mask, model_version) overrides
    offline: np.ndarray  # events whose offline features are emitted
    label_ms: np.ndarray  # label events: arrival time, row, value, revision (0 = none)
    label_row: np.ndarray
    label_value: np.ndarray
    label_rev: np.ndarray
    override_reason: np.ndarray | None = None  # per event (object), where a fault changed the reason
    baseline_review: np.ndarray | None = None  # the rules engine's decision (World.rules_baseline)

    @property
    def n(self) -> int:
        return len(self.t_ms)


def generate_chunk(scenario: Scenario, seed: int, idx: int, t0_ms: int, t1_ms: int,
                   domain: int = DOMAIN_SERVE, t_ms: np.ndarray | None = None) -> ChunkData:
    """Generate the predictions (with their labels) whose decision time is in [t0_ms, t1_ms)."""
    world = scenario.world
    if t_ms is None:
        t_ms = sample_times(rng_for(seed, domain, idx, S_TIME), world, t0_ms, t1_ms)
    n = len(t_ms)
    ctx = make_context(t_ms, world.tz_offset_hours, rng_for(seed, domain, idx, S_CTX))
    t_h = (t_ms - scenario.start_ms) / 3_600_000.0
    slices = {"region": ctx.region, "channel": ctx.channel, "tier": ctx.tier}
    faults: list[tuple[int, Fault, np.ndarray]] = []
    for k, f in enumerate(scenario.faults if domain == DOMAIN_SERVE else ()):
        w = intensity(f, t_h)
        m = slice_mask(f, slices)
        if m is not None:
            w = w * m
        if w.any():
            faults.append((k, f, w))
    nspecs, cspecs = specs(world)
    vocab = {s.name: list(s.vocab) for s in cspecs}

    # ---- world (world-level drift changes what the offline pipeline sees too)
    drift: dict[str, np.ndarray] = {}
    targets: dict[str, int] = {}
    for _, f, w in faults:
        if f.info.stage == "world":
            for name in f.features:
                drift[name] = drift.get(name, 0.0) + f.params["magnitude"] * w
                if name in vocab and f.params.get("category") in vocab[name]:
                    targets[name] = vocab[name].index(f.params["category"])
    num, cat = _world_columns(world, seed, domain, idx, ctx, drift, targets)

    # ---- truth
    cal = calibration(world)
    z = cal.standardise(_raw_terms(num, cat, vocab, n))
    lin = z @ TRUE_COEF
    b = np.full(n, cal.intercept_true)
    for _, f, w in faults:
        if f.kind == "label_drift":
            b += w * (_true_intercept(world, (), float(f.params["factor"])) - cal.intercept_true)
        elif f.kind == "concept_drift":
            flip = _coef(f.features) != TRUE_COEF
            lin = lin - 2.0 * w * (z[:, flip] @ TRUE_COEF[flip])
            b += w * (_true_intercept(world, tuple(f.features), 1.0) - cal.intercept_true)
    p_true = sigmoid(b + lin)
    lrng = rng_for(seed, domain, idx, S_LABEL)
    lab = lrng.random((n, 5))
    labz = lrng.standard_normal((n, 2))
    y = (lab[:, 0] < p_true).astype(np.int8)

    # ---- serving pipeline
    served = Served(num=dict(num), cat=dict(cat), vocab=dict(vocab), decimals={s.name: s.decimals for s in nspecs})
    for k, f, w in faults:
        if f.info.stage == "serving":
            apply_serving(f, w, rng_for(seed, DOMAIN_FAULT, idx, k), served, world.tz_offset_hours)

    # ---- served model and serving health
    mr = rng_for(seed, domain, idx, S_MODEL).standard_normal((n, 2))
    mu = rng_for(seed, domain, idx, S_MODEL + 50).random((n, 3))
    zs = cal.standardise(_raw_terms(served.num, served.cat, served.vocab, n))
    logit = zs @ MODEL_COEF + cal.intercept_model + world.model_noise * mr[:, 0]
    threshold = np.full(n, world.threshold)
    fallback = mu[:, 0] < world.fallback_rate
    latency = world.latency_median_ms * np.exp(world.latency_sigma * mr[:, 1])
    versions: list[tuple[np.ndarray, str]] = []
    delay_factor = np.ones(n)
    override_rate = np.full(n, world.override_rate)
    override_reason = None
    for k, f, w in faults:
        if f.info.stage not in ("model", "arrival"):
            continue
        u = rng_for(seed, DOMAIN_FAULT, idx, k).random(n)
        if f.kind == "score_drift":
            logit = logit + f.params["shift"] * w
            if f.params["model_version"]:
                versions.append((u < w, str(f.params["model_version"])))
        elif f.kind == "threshold_change":
            threshold = np.where(u < w, float(f.params["threshold"]), threshold)
        elif f.kind == "fallback_surge":
            fallback = fallback | (u < f.params["share"] * w)
        elif f.kind == "latency_spike":
            latency = np.where(u < w, latency * float(f.params["factor"]), latency)
        elif f.kind == "label_delay_increase":
            delay_factor = np.where(u < w, float(f.params["factor"]), delay_factor)
        elif f.kind == "override_surge":
            hit = u < w
            override_rate = np.where(hit, float(f.params["rate"]), override_rate)
            if override_reason is None:
                override_reason = np.full(n, "approved_manually", dtype=object)
            override_reason[hit] = str(f.params["reason"])
    model_score = np.round(sigmoid(logit), 4)
    score = np.where(fallback, world.fallback_score, model_score)
    review = (score >= threshold) & ~fallback
    override = review & (mu[:, 1] < override_rate)
    baseline_review = _rules_review(world, cal, zs) if world.rules_baseline else None
    offline = mu[:, 2] < world.offline_sample

    # ---- label arrival
    delay_s = world.label_delay_median_h * 3600.0 * np.exp(world.label_delay_sigma * labz[:, 0]) * delay_factor
    first_ms = t_ms + np.maximum(np.round(delay_s * 1000.0), 1000).astype(np.int64)
    has = lab[:, 1] >= world.label_missing_rate
    corrected = has & (lab[:, 2] < world.label_correction_rate)
    dup = has & (lab[:, 3] < world.label_duplicate_rate)
    corr_ms = first_ms + np.round(world.label_correction_delay_h * 3.6e6 * np.exp(0.8 * labz[:, 1])).astype(np.int64)
    dup_ms = first_ms + np.round(-600_000.0 * np.log1p(-lab[:, 4] * 0.999)).astype(np.int64) + 1
    rows = np.arange(n)
    first_value = np.where(corrected, 1 - y, y).astype(np.int8)
    parts = [
        (first_ms[has], rows[has], first_value[has], np.zeros(int(has.sum()), np.int8)),
        (dup_ms[dup], rows[dup], first_value[dup], np.zeros(int(dup.sum()), np.int8)),
        (corr_ms[corrected], rows[corrected], y[corrected], np.full(int(corrected.sum()), 2, np.int8)),
    ]
    return ChunkData(
        idx=idx, t_ms=t_ms, ids=make_ids(seed, domain, idx, n), ctx=ctx, world_num=num, world_cat=cat,
        vocab=vocab, served=served, p_true=p_true, y=y, score=score, model_score=model_score, fallback=fallback, threshold=threshold,
        review=review, latency_ms=np.round(latency, 1), override=override, versions=versions, offline=offline,
        label_ms=np.concatenate([q[0] for q in parts]), label_row=np.concatenate([q[1] for q in parts]),
        label_value=np.concatenate([q[2] for q in parts]), label_rev=np.concatenate([q[3] for q in parts]),
        override_reason=override_reason, baseline_review=baseline_review,
    )


#: Terms a rules engine looks at (the behavioural and amount signals are the model's own).
RULE_TERMS = ("account_age_days", "n_failed_logins_7d", "chargeback_rate_90d", "night", "country", "device",
              "merchant_category", "card_type")


def _rules_review(world: World, cal: Calibration, zs: np.ndarray) -> np.ndarray:
    """The rules engine's decision: a fixed scorecard on a few served terms, cut to flag as often as the model."""
    mask, cut = _rules(world)
    return (zs[:, mask] @ TRUE_COEF[mask]) >= cut


@lru_cache(maxsize=16)
def _rules(world: World) -> tuple[np.ndarray, float]:
    cal = calibration(world)
    mask = np.array([t.name in RULE_TERMS for t in TERMS])
    model_score = sigmoid(cal.z @ MODEL_COEF + cal.intercept_model + cal.noise)
    share = float(np.mean(model_score >= world.threshold))
    rule = cal.z[:, mask] @ TRUE_COEF[mask]
    return mask, float(np.quantile(rule, 1.0 - max(share, 1e-3)))

