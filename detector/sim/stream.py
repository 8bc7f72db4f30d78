"""Turn generated chunks into contract events, merged in event-time order.

:func:`simulate` yields ``(ts_epoch_seconds, topic, event)`` for the topics ``predictions``,
``features`` (offline feature events, at the prediction's time, right after it) and ``labels``
(at their *arrival* time), so the merged stream is time-ordered. Labels still pending at the end
of the scenario are dropped unless they arrive within ``World.label_tail_hours`` after it (a log
snapshot taken at the end time).

Dicts are built from whole columns (``tolist`` + ``zip``), never value by value, which keeps
generation well above 100k prediction events per second.

>>> from detector.sim.scenarios import get_scenario
>>> ev = next(iter(simulate(get_scenario("stable", rate_per_hour=100, hours=1))))
>>> ev[1], sorted(ev[2])[:4]
('predictions', ['decision', 'fallback', 'features', 'latency_ms'])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from itertools import repeat
from typing import Any

import numpy as np

from detector.core.engine import gc_paused
from detector.sim.features import CHANNELS, REGIONS, TIERS
from detector.sim.generate import ChunkData, generate_chunk, specs
from detector.sim.scenario import Scenario
from detector.sim.world import chunk_seconds

__all__ = ["Event", "TOPICS", "simulate", "iter_chunks", "prediction_dicts", "offline_dicts", "hex_ids",
           "ts_values"]

Event = tuple[float, str, dict[str, Any]]
TOPICS = ("predictions", "features", "labels")
_RANK = {"predictions": 0, "features": 1, "labels": 2}

_REGION = np.array(REGIONS, dtype=object)
_CHANNEL = np.array(CHANNELS, dtype=object)
_TIER = np.array(TIERS, dtype=object)
_DECISION = np.array(["approve", "review"], dtype=object)


def iter_chunks(scenario: Scenario, seed: int | None = None,
                hours: tuple[float, float] | None = None) -> Iterator[ChunkData]:
    """The scenario's predictions, one generated chunk (an hour, or less at high rates) at a time.

    ``hours=(h0, h1)`` generates only the chunks starting in [h0, h1) hours after the start —
    the same columns as a full run (each chunk depends only on the seed and its index).
    """
    seed = scenario.seed if seed is None else seed
    step = chunk_seconds(scenario.world) * 1000
    t0, end = scenario.start_ms, scenario.end_ms
    for idx, a in enumerate(range(t0, end, step)):
        if hours is not None and not hours[0] * 3.6e6 <= a - t0 < hours[1] * 3.6e6:
            continue
        yield generate_chunk(scenario, seed, idx, a, min(a + step, end))


def hex_ids(ids: np.ndarray) -> list[str]:
    """uint64 ids -> 16-character lowercase hex strings."""
    h = ids.astype(">u8").tobytes().hex()
    return [h[i:i + 16] for i in range(0, len(h), 16)]


def ts_values(ms: np.ndarray, ts_format: str) -> list:
    """Epoch ms -> RFC 3339 strings with 'Z' and milliseconds, or epoch seconds (float)."""
    if ts_format == "epoch":
        return (ms / 1000.0).tolist()
    return np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms", timezone="UTC").tolist()


def num_list(x: np.ndarray, decimals: int | None) -> list:
    nan = np.isnan(x)
    if decimals is None:
        out = np.where(nan, 0.0, x).astype(np.int64).tolist()
    else:
        out = np.round(x, decimals).tolist()
    if nan.any():
        for i in np.flatnonzero(nan).tolist():
            out[i] = None
    return out


def cat_list(codes: np.ndarray, vocab: list[str]) -> list:
    return np.array([*vocab, None], dtype=object)[codes].tolist()


@lru_cache(maxsize=256)
def dict_maker(keys: tuple[str, ...]) -> Callable[..., dict[str, Any]]:
    """A function ``f(v0, v1, ...) -> {keys[0]: v0, ...}``: a constant-key dict display is about
    twice as fast as ``dict(zip(keys, values))``, and ``map(f, *columns)`` builds no tuples."""
    args = ", ".join(f"v{i}" for i in range(len(keys)))
    body = ", ".join(f"{k!r}: v{i}" for i, k in enumerate(keys))
    return eval(f"lambda {args}: {{{body}}}", {})  # noqa: S307 - keys are our own feature names


_SLICES = dict_maker(("region", "channel", "tier"))
_PREDICTION = dict_maker(("prediction_id", "model", "model_version", "ts", "features", "score", "decision",
                           "threshold", "slices", "latency_ms", "fallback"))
_OFFLINE = dict_maker(("prediction_id", "ts", "features", "source"))
_LABEL = dict_maker(("prediction_id", "ts", "label"))


def _feature_dicts(num: dict[str, np.ndarray], decimals: dict[str, int | None], cat: dict[str, np.ndarray],
                   vocab: dict[str, list[str]], rows: np.ndarray | None = None) -> list[dict[str, Any]]:
    keys = list(num) + list(cat)
    cols = [num_list(x if rows is None else x[rows], decimals[k]) for k, x in num.items()]
    cols += [cat_list(c if rows is None else c[rows], vocab[k]) for k, c in cat.items()]
    if not cols:
        return []
    return list(map(dict_maker(tuple(keys)), *cols))


def prediction_dicts(ch: ChunkData, scenario: Scenario, ts_format: str, pids: list[str]) -> list[dict[str, Any]]:
    """The chunk's prediction events (the README's event contract)."""
    sv = ch.served
    feats = _feature_dicts(sv.num, sv.decimals, sv.cat, sv.vocab)
    for name, mask in sv.absent.items():
        for i in np.flatnonzero(mask).tolist():
            del feats[i][name]
    for name, (mask, values) in sv.extra.items():
        for i in np.flatnonzero(mask).tolist():
            feats[i][name] = values[i]
    world = scenario.world
    if ch.versions:
        ver = np.full(ch.n, world.model_version, dtype=object)
        for mask, v in ch.versions:
            ver[mask] = v
        versions = ver.tolist()
    else:
        versions = [world.model_version] * ch.n
    n = ch.n
    slices = list(map(_SLICES, _REGION[ch.ctx.region].tolist(), _CHANNEL[ch.ctx.channel].tolist(),
                      _TIER[ch.ctx.tier].tolist()))
    out = list(map(
        _PREDICTION, pids, repeat(world.model, n), versions, ts_values(ch.t_ms, ts_format), feats,
        ch.score.tolist(), _DECISION[ch.review.view(np.int8)].tolist(), ch.threshold.tolist(), slices,
        ch.latency_ms.tolist(), ch.fallback.tolist()))
    reasons = ch.override_reason
    for i in np.flatnonzero(ch.override).tolist():
        out[i]["override"] = "approved_manually" if reasons is None else reasons[i]
    if ch.baseline_review is not None:
        for e, d in zip(out, _DECISION[ch.baseline_review.view(np.int8)].tolist(), strict=True):
            e["baseline_decision"] = d
    return out


def offline_dicts(ch: ChunkData, scenario: Scenario, ts_format: str,
                  pids: list[str]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """(rows, offline feature events) for the sampled predictions: the true (offline) values."""
    rows = np.flatnonzero(ch.offline)
    decimals = {s.name: s.decimals for s in specs(scenario.world)[0]}
    feats = _feature_dicts(ch.world_num, decimals, ch.world_cat, ch.vocab, rows)
    ts = ts_values(ch.t_ms[rows], ts_format)
    ids = [pids[i] for i in rows.tolist()]
    return rows, list(map(_OFFLINE, ids, ts, feats, repeat("offline", len(ids))))


def _label_dicts(ids: np.ndarray, ms: np.ndarray, value: np.ndarray, rev: np.ndarray, ts_format: str) -> list[dict]:
    out = list(map(_LABEL, hex_ids(ids), ts_values(ms, ts_format), value.tolist()))
    for i in np.flatnonzero(rev).tolist():
        out[i]["revision"] = int(rev[i])
    return out


class _PendingLabels:
    """Labels generated but not yet due, kept as columns (sorted on emission)."""

    def __init__(self) -> None:
        self.ms = np.empty(0, np.int64)
        self.ids = np.empty(0, np.uint64)
        self.value = np.empty(0, np.int8)
        self.rev = np.empty(0, np.int8)

    def add(self, ch: ChunkData) -> None:
        self.ms = np.concatenate([self.ms, ch.label_ms])
        self.ids = np.concatenate([self.ids, ch.ids[ch.label_row]])
        self.value = np.concatenate([self.value, ch.label_value])
        self.rev = np.concatenate([self.rev, ch.label_rev])

    def pop_before(self, t_ms: int) -> tuple[np.ndarray, ...]:
        due = self.ms < t_ms
        idx = np.flatnonzero(due)
        idx = idx[np.argsort(self.ms[idx], kind="stable")]
        out = (self.ms[idx], self.ids[idx], self.value[idx], self.rev[idx])
        keep = ~due
        self.ms, self.ids, self.value, self.rev = self.ms[keep], self.ids[keep], self.value[keep], self.rev[keep]
        return out


def simulate(scenario: Scenario, seed: int | None = None, *, topics: Iterable[str] = TOPICS,
             ts_format: str | None = None) -> Iterator[Event]:
    """Yield ``(ts_epoch_seconds, topic, event)`` in event-time order (see the module docstring)."""
    topics = tuple(topics)
    bad = set(topics) - set(TOPICS)
    if bad:
        raise ValueError(f"unknown topics {sorted(bad)}; use {TOPICS}")
    fmt = ts_format or scenario.ts_format
    want_p, want_f, want_l = (t in topics for t in TOPICS)
    pending = _PendingLabels()
    label_end = scenario.end_ms + int(round(scenario.world.label_tail_hours * 3.6e6))
    step = chunk_seconds(scenario.world) * 1000
    for ch in iter_chunks(scenario, seed):
        chunk_end = min(scenario.start_ms + (ch.idx + 1) * step, scenario.end_ms)
        pids = hex_ids(ch.ids)
        objs: list[dict[str, Any]] = []
        ms_parts, rank_parts = [], []
        with gc_paused():
            if want_p:
                objs += prediction_dicts(ch, scenario, fmt, pids)
                ms_parts.append(ch.t_ms)
                rank_parts.append(np.zeros(ch.n, np.int8))
            if want_f:
                rows, offl = offline_dicts(ch, scenario, fmt, pids)
                objs += offl
                ms_parts.append(ch.t_ms[rows])
                rank_parts.append(np.ones(len(rows), np.int8))
            if want_l:
                pending.add(ch)
                lab = pending.pop_before(chunk_end if chunk_end < scenario.end_ms else label_end)
                objs += _label_dicts(lab[1], lab[0], lab[2], lab[3], fmt)
                ms_parts.append(lab[0])
                rank_parts.append(np.full(len(lab[0]), 2, np.int8))
        yield from _merged(objs, ms_parts, rank_parts)


def _merged(objs: list[dict[str, Any]], ms_parts: list[np.ndarray], rank_parts: list[np.ndarray]) -> Iterator[Event]:
    if not objs:
        return
    ms = np.concatenate(ms_parts)
    rank = np.concatenate(rank_parts)
    order = np.lexsort((rank, ms))
    ts = (ms[order] / 1000.0).tolist()
    topics = np.array(TOPICS, dtype=object)[rank[order]].tolist()
    yield from zip(ts, topics, map(objs.__getitem__, order.tolist()), strict=True)
