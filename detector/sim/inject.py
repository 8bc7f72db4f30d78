"""Serving-side fault injection: break the served copy of the features, never the world.

:class:`Served` starts as a view of the world's columns (what the offline pipeline computes);
each serving fault replaces the columns it touches with modified copies, so offline features keep
the true values and feature parity can see the difference. Every fault draws a fixed number of
random numbers from its own stream, so faults never disturb each other or the clean traffic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from detector.sim.faults import Fault

__all__ = ["Served", "apply_serving"]

_NUMERIC_ONLY = {"unit_change", "timezone_shift", "parity_skew"}
_CATEGORICAL_ONLY = {"new_category", "renamed_category"}


@dataclass
class Served:
    """The served features of one chunk (columns shared with the world until modified)."""

    num: dict[str, np.ndarray]  # float64, NaN = null
    cat: dict[str, np.ndarray]  # int32 codes into vocab[name], -1 = null
    vocab: dict[str, list[str]]
    decimals: dict[str, int | None]  # emission rounding per numeric feature (None = integer)
    absent: dict[str, np.ndarray] = field(default_factory=dict)  # feature -> events without the key
    extra: dict[str, tuple[np.ndarray, list]] = field(default_factory=dict)  # new key -> (mask, values)


def _need(served: Served, fault: Fault, name: str) -> None:
    if name not in served.num and name not in served.cat:
        raise ValueError(f"Fault({fault.kind}): feature {name!r} is not in this world's features")


def apply_serving(fault: Fault, w: np.ndarray, rng: np.random.Generator, served: Served,
                  tz_offset_hours: int) -> None:
    """Apply one serving-stage fault with per-event intensity ``w``."""
    n = len(w)
    u = rng.random(n)
    p = fault.params
    kind = fault.kind
    if kind == "join_failure":  # one draw per event for the whole group: they fail together
        hit = u < p["share"] * w
        for name in fault.features:
            _null(served, fault, name, hit)
        return
    if kind == "unexpected_feature":
        hit = u < w
        values = (rng.random(n) < 0.3).astype(np.int64).tolist()
        for name in fault.features:
            served.extra[name] = (hit, values)
        return
    for name in fault.features:
        _need(served, fault, name)
        if kind in _NUMERIC_ONLY and name not in served.num:
            raise ValueError(f"Fault({kind}) needs a numeric feature; {name!r} is categorical")
        if kind in _CATEGORICAL_ONLY and name not in served.cat:
            raise ValueError(f"Fault({kind}) needs a categorical feature; {name!r} is numeric")
        if kind == "default_spike" and name in served.cat:
            code = _code(served, name, str(p["value"]))
            served.cat[name] = np.where(u < p["share"] * w, code, served.cat[name]).astype(np.int32)
        elif kind == "unit_change":
            hit = u < w
            x = served.num[name].copy()
            x[hit] = x[hit] * p["factor"]
            served.num[name] = x
            dec = served.decimals.get(name)
            if p["factor"] < 1:  # keep the precision the smaller unit needs
                served.decimals[name] = (dec or 0) + math.ceil(-math.log10(p["factor"]) - 1e-9)
        elif kind == "missing_jump":
            _null(served, fault, name, u < p["share"] * w)
        elif kind == "default_spike":
            x = served.num[name].copy()
            x[u < p["share"] * w] = float(p["value"])
            served.num[name] = x
        elif kind == "new_category":
            code = _code(served, name, str(p["value"]))
            served.cat[name] = np.where(u < p["share"] * w, code, served.cat[name]).astype(np.int32)
        elif kind == "renamed_category":
            vocab = served.vocab[name]
            if p["old"] in vocab:
                old = vocab.index(p["old"])
                new = _code(served, name, str(p["new"]))
                c = served.cat[name]
                served.cat[name] = np.where((c == old) & (u < w), new, c).astype(np.int32)
        elif kind == "timezone_shift":
            shift = p["hours"] if p["hours"] is not None else (-tz_offset_hours or 5)
            x = served.num[name].copy()
            hit = u < w
            x[hit] = (x[hit] + shift) % 24
            served.num[name] = x
        elif kind == "parity_skew":
            _parity(served, name, u < p["share"] * w, p, rng)
        elif kind == "feature_absent":
            hit = u < w
            served.absent[name] = hit
            _null(served, fault, name, hit)
        else:  # pragma: no cover - KINDS and this function are kept in step by the tests
            raise ValueError(f"{kind} is not a serving fault")


def _null(served: Served, fault: Fault, name: str, hit: np.ndarray) -> None:
    _need(served, fault, name)
    if name in served.num:
        x = served.num[name].copy()
        x[hit] = np.nan
        served.num[name] = x
    else:
        served.cat[name] = np.where(hit, np.int32(-1), served.cat[name]).astype(np.int32)


def _code(served: Served, name: str, value: str) -> int:
    vocab = served.vocab[name] = list(served.vocab[name])
    if value not in vocab:
        vocab.append(value)
    return vocab.index(value)


def _parity(served: Served, name: str, hit: np.ndarray, p, rng: np.random.Generator) -> None:
    """Served value differs from the offline one while the served distribution stays normal."""
    x = served.num[name].copy()
    idx = np.flatnonzero(hit)
    perm = rng.permutation(len(idx))
    if p["mode"] == "stale":  # a cached value of another entity: same distribution, wrong row
        x[idx] = x[idx[perm]]
    elif p["mode"] == "shift":
        x[idx] = x[idx] + float(p["delta"])
    elif p["mode"] == "round":
        x[idx] = np.round(x[idx], int(p["digits"]))
    else:
        raise ValueError(f"parity_skew mode {p['mode']!r}: use stale, shift or round")
    served.num[name] = x
