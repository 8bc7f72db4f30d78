"""Decoded prediction events as columns: a model's :class:`Schema` (its features and their codes) and
a :class:`PredictionBatch` (one model's events, one array per field), the unit every later stage
works on. :mod:`detector.core.inputs.events` makes them from JSON values, :mod:`.fastdecode` and
:mod:`.arrowdecode` straight from bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import numpy as np

__all__ = ["Schema", "PredictionBatch", "concat", "OUTPUT_FIELDS"]

OUTPUT_FIELDS = ("predicted_class", "scores")  # a multiclass prediction's outputs (regression: the score column)


# --------------------------------------------------------------------------- schema


@dataclass
class Schema:
    """Which features a model has and how to encode them (taken from its reference)."""

    numeric: list[str]
    categorical: list[str]
    vocab: dict[str, dict[str, int]]  # categorical feature -> category -> code (0..K-1)

    def __post_init__(self) -> None:
        self.known = frozenset(self.numeric) | frozenset(self.categorical)
        self._num_get = itemgetter(*self.numeric) if len(self.numeric) > 1 else None
        self._cat_get = itemgetter(*self.categorical) if len(self.categorical) > 1 else None

    def unseen_code(self, feature: str) -> int:
        return len(self.vocab[feature])

    def missing_code(self, feature: str) -> int:
        return len(self.vocab[feature]) + 1


@dataclass
class PredictionBatch:
    """Columns of one model's prediction events (all arrays have length ``n``)."""

    model: str
    ids: list[str]
    ts: np.ndarray  # float64 epoch seconds
    num: np.ndarray  # (n, F_num) float64, NaN = missing
    num_absent: np.ndarray  # (F_num,) int64 count of events without the key
    num_nonfinite: np.ndarray  # (F_num,) int64 NaN/Inf sent as values
    num_type_err: np.ndarray  # (F_num,) int64 values of a non-numeric type
    cat_codes: np.ndarray  # (n, F_cat) int32 codes; unseen = K, missing = K+1 (per feature)
    cat_absent: np.ndarray
    cat_type_err: np.ndarray
    unseen: list[list[str]]  # per categorical feature: the unseen values (only those)
    slices: dict[str, list[Any]]  # slice dim -> raw values (None when absent)
    score: np.ndarray  # float64, NaN when absent
    acted: np.ndarray  # float64 1 = decision other than "no action", 0 = no action, NaN = none
    threshold: np.ndarray  # float64, NaN when absent
    latency_ms: np.ndarray  # float64, NaN when absent
    fallback: np.ndarray  # float64 1/0, NaN when absent
    versions: dict[str, int]  # model_version -> events
    unexpected: dict[str, int]  # feature names not in the schema -> events
    override: list[Any] | None = None
    decisions: dict[str, int] = field(default_factory=dict)  # decision value -> events (bounded)
    # what the rules / manual process the model replaces would have decided (``baseline_decision``):
    # 1 = act, 0 = no action, NaN = not sent; None when no event of the batch carries it
    baseline: np.ndarray | None = None
    # sparse per-event record of feature-level problems: (event index, feature index, kind)
    # kind 0 = key absent, 1 = wrong type, 2 = non-finite; feature index: numeric then categorical
    flags: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), dtype=np.int64))
    unexpected_rows: list[tuple[int, str]] = field(default_factory=list)
    origin: np.ndarray | None = None  # message index per event (to attribute engine-level errors)
    item: np.ndarray | None = None  # position inside its batch envelope per event, -1 = a single-event message
    clipped: dict[str, int] = field(default_factory=dict)  # field -> retained values cut to max_value_bytes
    # multiclass models only: the raw "predicted_class" and "scores" per event (None when absent); the
    # model's task turns them into class codes (detector.core.outcomes.tasks.multiclass)
    outputs: dict[str, list[Any]] | None = None

    @property
    def n(self) -> int:
        return len(self.ids)

    def take(self, idx: np.ndarray) -> PredictionBatch:
        """Row subset (used to drop late or far-future events)."""
        il = idx.tolist()
        pos = np.full(self.n, -1, dtype=np.int64)
        pos[idx] = np.arange(len(il))
        flags = self.flags[pos[self.flags[:, 0]] >= 0] if len(self.flags) else self.flags
        if len(flags):
            flags = flags.copy()
            flags[:, 0] = pos[flags[:, 0]]
        unexpected_rows = [(int(pos[i]), k) for i, k in self.unexpected_rows if pos[i] >= 0]
        f = len(il) / self.n if self.n else 0.0
        nn, nc = self.num.shape[1], self.cat_codes.shape[1]
        t = _tallies(flags, nn, nc)
        return PredictionBatch(
            model=self.model, ids=[self.ids[i] for i in il], ts=self.ts[idx], num=self.num[idx],
            num_absent=t[0][:nn], num_nonfinite=t[2][:nn], num_type_err=t[1][:nn],
            cat_codes=self.cat_codes[idx], cat_absent=t[0][nn:], cat_type_err=t[1][nn:],
            unseen=[u[: int(round(len(u) * f))] for u in self.unseen],
            slices={k: [v[i] for i in il] for k, v in self.slices.items()},
            score=self.score[idx], acted=self.acted[idx], threshold=self.threshold[idx],
            latency_ms=self.latency_ms[idx], fallback=self.fallback[idx],
            versions={k: c for k, v in self.versions.items() if (c := int(round(v * f)))},
            unexpected=_count_names(unexpected_rows),
            override=[self.override[i] for i in il] if self.override is not None else None,
            decisions={k: c for k, v in self.decisions.items() if (c := int(round(v * f)))},
            flags=flags, unexpected_rows=unexpected_rows,
            baseline=self.baseline[idx] if self.baseline is not None else None,
            origin=self.origin[idx] if self.origin is not None else None, clipped=dict(self.clipped),
            item=self.item[idx] if self.item is not None else None,
            outputs={k: [v[i] for i in il] for k, v in self.outputs.items()} if self.outputs is not None else None,
        )


def concat(batches: list[PredictionBatch]) -> PredictionBatch:
    """One batch of the rows of several batches of the same model, in order."""
    if len(batches) == 1:
        return batches[0]
    b0 = batches[0]
    offs = np.cumsum([0] + [b.n for b in batches[:-1]])
    flags = np.concatenate([b.flags + np.array([o, 0, 0]) for b, o in zip(batches, offs, strict=True)]).astype(np.int64)

    def add(dicts: list[dict[str, int]]) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in dicts:
            for k, v in d.items():
                out[k] = out.get(k, 0) + v
        return out

    has_override = any(b.override is not None for b in batches)
    has_baseline = any(b.baseline is not None for b in batches)
    return PredictionBatch(
        model=b0.model, ids=[i for b in batches for i in b.ids], ts=np.concatenate([b.ts for b in batches]),
        num=np.concatenate([b.num for b in batches]), num_absent=sum(b.num_absent for b in batches),
        num_nonfinite=sum(b.num_nonfinite for b in batches), num_type_err=sum(b.num_type_err for b in batches),
        cat_codes=np.concatenate([b.cat_codes for b in batches]), cat_absent=sum(b.cat_absent for b in batches),
        cat_type_err=sum(b.cat_type_err for b in batches),
        unseen=[[v for b in batches for v in b.unseen[j]] for j in range(len(b0.unseen))],
        slices={d: [v for b in batches for v in b.slices[d]] for d in b0.slices},
        score=np.concatenate([b.score for b in batches]), acted=np.concatenate([b.acted for b in batches]),
        threshold=np.concatenate([b.threshold for b in batches]),
        latency_ms=np.concatenate([b.latency_ms for b in batches]),
        fallback=np.concatenate([b.fallback for b in batches]),
        versions=dict(sorted(add([b.versions for b in batches]).items(), key=lambda kv: -kv[1])[:16]),
        unexpected=add([b.unexpected for b in batches]),
        override=[v for b in batches for v in (b.override if b.override is not None else [None] * b.n)]
        if has_override else None,
        decisions=add([b.decisions for b in batches]),
        baseline=np.concatenate([b.baseline if b.baseline is not None else np.full(b.n, np.nan) for b in batches])
        if has_baseline else None,
        flags=flags.reshape(-1, 3),
        unexpected_rows=[(i + int(o), k) for b, o in zip(batches, offs, strict=True) for i, k in b.unexpected_rows],
        origin=np.concatenate([b.origin if b.origin is not None else np.full(b.n, -1) for b in batches]).astype(np.int64),
        item=np.concatenate([b.item if b.item is not None else np.full(b.n, -1) for b in batches]).astype(np.int64),
        clipped=add([b.clipped for b in batches]),
        outputs={k: [v for b in batches for v in (b.outputs[k] if b.outputs is not None else [None] * b.n)]
                 for k in OUTPUT_FIELDS} if any(b.outputs is not None for b in batches) else None,
    )


def _tallies(flags: np.ndarray, nn: int, nc: int) -> list[np.ndarray]:
    """Per-feature counts of each problem kind from the sparse flag records."""
    out = []
    for kind in range(3):
        cols = flags[flags[:, 2] == kind, 1] if len(flags) else np.zeros(0, dtype=np.int64)
        out.append(np.bincount(cols, minlength=nn + nc).astype(np.int64))
    return out


def _count_names(rows: list[tuple[int, str]]) -> dict[str, int]:
    d: dict[str, int] = {}
    for _, k in rows:
        d[k] = d.get(k, 0) + 1
    return d
