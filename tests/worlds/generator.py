"""Generate a scenario of an evaluation world: train.csv, predictions, labels, offline features.

    python -m tests.worlds.generator --world A --seed 1 --rate 300 --fault unit_shift --out /tmp/scn

A scenario is (world, seed, rate, fault or none). Everything is drawn from named, seeded
streams (:func:`~tests.worlds.frame.stream_rng`), one per concern, so a fault changes only the
rows at or after its onset: the clean prefix of every scenario of a (world, seed, rate) is the
same traffic. The training table depends on (world, seed) only. See SPEC.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tests.worlds import wire
from tests.worlds.faults import DEADLINE_H, FAULTS, Fault, faults_of
from tests.worlds.frame import DAY, Frame, World, arrivals, stream_rng
from tests.worlds.world_a import WORLD_A
from tests.worlds.world_b import WORLD_B

__all__ = ["Scenario", "WORLDS", "build", "generate", "write_training", "log_start", "onset_of", "deadline_of"]

WORLDS: dict[str, World] = {"A": WORLD_A, "B": WORLD_B}
CLEAN_DAYS = 14.0
_EPOCH0 = datetime(2025, 2, 3, 6, 17, tzinfo=UTC).timestamp()


def log_start(seed: int) -> float:
    """Seed-dependent start: onsets fall on different weekdays and hours for different seeds."""
    return _EPOCH0 + 3 * seed * DAY + 5 * seed * 3600.0


def deadline_of(fault: Fault) -> float:
    """Deadline in hours after the onset."""
    if fault.deadline_class == "outcome":
        return float(WORLDS[fault.world].outcome_deadline_h)
    return DEADLINE_H[fault.deadline_class]


def onset_of(fault: Fault, seed: int) -> float:
    """Onset (epoch seconds): a fault-class day plus an hour, minute and second varied per fault and seed."""
    world = WORLDS[fault.world]
    idx = [f.name for f in faults_of(fault.world)].index(fault.name)
    day = world.outcome_onset_day if fault.deadline_class == "outcome" else 3.0
    hour = (7 * idx + 5 * seed + 3) % 24
    minute = (17 * idx + 11 * seed + 7) % 59 + 1
    second = (13 * idx + seed) % 60
    return log_start(seed) + day * DAY + hour * 3600.0 + minute * 60.0 + second


@dataclass(frozen=True)
class Scenario:
    world: str
    seed: int
    rate: float
    fault: str | None = None
    days: float | None = None  # default: 14 clean, else through the deadline plus one day

    @property
    def name(self) -> str:
        return f"{self.world}-s{self.seed}-r{self.rate:g}-{self.fault or 'clean'}"

    def spec(self) -> Fault | None:
        if self.fault is None:
            return None
        try:
            return FAULTS[(self.world, self.fault)]
        except KeyError:
            known = ", ".join(f.name for f in faults_of(self.world))
            raise ValueError(f"world {self.world} has no fault {self.fault!r}; known: {known}") from None

    def length_days(self) -> float:
        if self.days is not None:
            return self.days
        f = self.spec()
        if f is None:
            return CLEAN_DAYS
        since = (onset_of(f, self.seed) - log_start(self.seed)) / DAY
        return float(min(CLEAN_DAYS, math.ceil(since + deadline_of(f) / 24.0 + 1.0)))


def _weights(f: Frame, fault: Fault | None, onset: float) -> np.ndarray:
    if fault is None:
        return np.zeros(f.n)
    if fault.ramp_h > 0:
        return np.clip((f.t - onset) / (fault.ramp_h * 3600.0), 0.0, 1.0) * (f.t >= onset)
    return (f.t >= onset).astype(float)


def _stage(stage: str, fault: Fault | None, world: Any, f: Frame, w: np.ndarray, rng: np.random.Generator) -> None:
    if fault is not None and fault.stage == stage:
        fault.apply(world, f, w, rng)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def build(scn: Scenario) -> tuple[Frame, list[str], dict[str, Any]]:
    """The scenario's frame, prediction ids and metadata (onset, deadline, expectation)."""
    world = WORLDS[scn.world]
    key = (scn.world, scn.seed, int(round(scn.rate)))
    start = log_start(scn.seed)
    days = scn.length_days()
    f = arrivals(world, stream_rng(*key, "arrivals"), start, days, scn.rate, world.holiday(start))
    n = f.n
    world.populate(f, stream_rng(*key, "features"))
    fault = scn.spec()
    onset = onset_of(fault, scn.seed) if fault else float("inf")
    w = _weights(f, fault, onset)
    frng = stream_rng(*key, "fault", scn.fault or "")
    _stage("world", fault, world, f, w, frng)
    f.served = {k: v.copy() for k, v in f.observed.items()}
    f.offline = {k: v.copy() for k, v in f.observed.items()}
    _stage("served", fault, world, f, w, frng)

    noise = world.score_noise * stream_rng(*key, "noise").standard_normal(n)
    f.score = world.model_logit(f) + noise  # log-odds during the model stage
    f.model_version = np.full(n, world.version, dtype=object)
    _stage("model", fault, world, f, w, frng)
    f.score = np.round(np.clip(_sigmoid(f.score), 1e-4, 1 - 1e-4), 4)

    srng = stream_rng(*key, "serving")
    f.fallback = srng.random(n) < world.fallback_share
    f.latency = world.latency(f, srng)
    fb_lat = 3.0 + 5.0 * srng.random(n)
    _stage("serving", fault, world, f, w, frng)
    f.score = np.where(f.fallback, world.rules_score(f), f.score)
    f.latency = np.where(f.fallback, fb_lat, f.latency)

    f.threshold = np.full(n, world.threshold)
    _stage("policy", fault, world, f, w, frng)

    f.logit = world.true_logit(f)
    _stage("outcome", fault, world, f, w, frng)
    f.label = (stream_rng(*key, "label").random(n) < _sigmoid(f.logit)).astype(np.int64)

    drng = stream_rng(*key, "delay")
    med_neg, med_pos = world.label_median
    med = np.where(f.label == 1, med_pos, med_neg)
    f.label_delay = med * np.exp(world.label_sigma * drng.standard_normal(n))
    f.label_delay[drng.random(n) < world.never_labelled] = np.nan
    _stage("labels", fault, world, f, w, frng)

    orng = stream_rng(*key, "offline")
    lag = world.offline_lag(orng, n)
    f.offline_lag = np.where(orng.random(n) < world.offline_share, lag, np.nan)
    f.ts_shift = np.zeros(n)
    _stage("clock", fault, world, f, w, frng)

    ids_raw = stream_rng(*key, "ids").integers(0, 2**62, n)
    ids = [f"{world.model[:2]}{v:016x}" for v in ids_raw.tolist()]
    meta = {
        "scenario": scn.name, "world": scn.world, "model": world.model, "seed": scn.seed, "rate": scn.rate,
        "fault": scn.fault, "start": start, "end": start + days * DAY, "days": days,
        "onset": None if fault is None else onset, "ramp_h": 0.0 if fault is None else fault.ramp_h,
        "deadline_h": None if fault is None else deadline_of(fault),
        "deadline_class": None if fault is None else fault.deadline_class,
        "expect": None if fault is None else fault.expect.to_dict(),
        "description": None if fault is None else fault.description,
        "predictions": n,
    }
    return f, ids, meta


def generate(scn: Scenario, out: Path, gz: bool = False) -> dict[str, Any]:
    """Write predictions/labels/features (and scenario.json) for ``scn`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    world = WORLDS[scn.world]
    f, ids, meta = build(scn)
    key = (scn.world, scn.seed, int(round(scn.rate)))
    order = wire.arrival_order(f.t, world.out_of_order, stream_rng(*key, "order"))
    ext = ".jsonl.gz" if gz else ".jsonl"
    paths = {k: out / f"{k}{ext}" for k in ("predictions", "labels", "features")}
    wire.write_lines(paths["predictions"], wire.prediction_events(world, f, ids, order))
    labels = wire.label_events(f, ids, meta["end"], world.duplicate_labels, stream_rng(*key, "dups"))
    meta["labels"] = wire.write_lines(paths["labels"], labels)
    meta["feature_events"] = wire.write_lines(paths["features"], wire.feature_events(world, f, ids, meta["end"]))
    meta["paths"] = {k: str(v) for k, v in paths.items()}
    (out / "scenario.json").write_text(json.dumps(meta, indent=1))
    return meta


def write_training(world_name: str, seed: int, out: Path) -> Path:
    """The training table: rows sampled uniformly from ``train_days`` of clean traffic before the log."""
    world = WORLDS[world_name]
    start = log_start(seed) - world.train_days * DAY
    rate = 2.0 * world.train_rows / (world.train_days * 24.0)
    f = arrivals(world, stream_rng(world_name, seed, "train", "arrivals"), start, world.train_days, rate)
    world.populate(f, stream_rng(world_name, seed, "train", "features"))
    f.served = f.observed
    rng = stream_rng(world_name, seed, "train", "rest")
    score = np.round(_sigmoid(world.model_logit(f) + world.score_noise * rng.standard_normal(f.n)), 4)
    label = (rng.random(f.n) < _sigmoid(world.true_logit(f))).astype(np.int64)
    keep = np.sort(rng.choice(f.n, size=min(world.train_rows, f.n), replace=False))
    sub = Frame(t=f.t[keep], region=f.region[keep], hour=f.hour[keep], wday=f.wday[keep], holiday=f.holiday[keep],
                channel=f.channel[keep], observed={k: v[keep] for k, v in f.observed.items()})
    stamps = wire.rfc3339(sub.t, 1.0, ms=False) if world.train_timestamps else None
    out.mkdir(parents=True, exist_ok=True)
    path = out / "train.csv"
    wire.write_training_csv(path, world, sub, score[keep], label[keep], stamps)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.worlds.generator", description=__doc__.splitlines()[0])
    p.add_argument("--world", choices=sorted(WORLDS), default="A")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rate", type=float, help="predictions per hour (default: the world's)")
    p.add_argument("--fault", help="fault name (default: clean); --list shows them")
    p.add_argument("--days", type=float, help="log length in days")
    p.add_argument("--out", type=Path, help="output folder")
    p.add_argument("--gz", action="store_true", help="gzip the JSONL files")
    p.add_argument("--list", action="store_true", help="list the faults of the world and exit")
    a = p.parse_args(argv)
    if a.list:
        for f in faults_of(a.world):
            print(f"{f.name:26s} {f.deadline_class:9s} {f.description}")
        return 0
    if a.out is None:
        p.error("--out is required")
    scn = Scenario(a.world, a.seed, a.rate or WORLDS[a.world].default_rate, a.fault, a.days)
    try:
        meta = generate(scn, a.out, gz=a.gz)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_training(a.world, a.seed, a.out)
    print(json.dumps({k: meta[k] for k in ("scenario", "predictions", "labels", "feature_events", "onset", "days")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
