"""One engine-like view of a worker's units, for the status page and the metrics exporter.

A worker folds its input in one engine per unit (input partition). The status page and the
Prometheus exporter read "the ingest engine" of a worker: :func:`ingest_view` builds one from the
units - open windows merged onto one set of slice rows (the same re-keying as partials), counters,
model versions, slice overflow and lifetime served histograms summed (those of units this worker
has handed on stay: a histogram never goes down), the newest event time and the slowest watermark - and
an outcome view whose label-join and parity counters are this worker's (units) while the evaluated
values (maturity, per-slice outcome metrics, parity mismatch rates) come from the aggregator when
this worker holds it. Counters stay per worker, as Prometheus expects (sum them across workers).
The view is rebuilt at most once a second.

:func:`worker_status` is the worker's machine-readable state behind ``/status?format=json``.
"""

from __future__ import annotations

import math
import time
from typing import Any

from detector.core.engine import Engine
from detector.core.modelstate import Counters
from detector.core.outcomes.labels import LabelJoin
from detector.core.state.partials import row_map
from detector.core.stats.effects import rnd

__all__ = ["ingest_view", "worker_status"]

_CACHE_SECONDS = 1.0
_JOIN = ("matched", "duplicates", "corrections", "expired", "evicted", "orphans", "rejected")


def ingest_view(side: Any) -> Engine:
    cached = getattr(side, "_view", None)
    if cached is not None and time.monotonic() - cached[0] < _CACHE_SECONDS:
        return cached[1]
    view = Engine(side.cfg.detector, side.refs, side.default)
    units = list(side.units.values())
    c = Counters()
    for u in units:
        e = u.engine
        view.merge_windows(e)
        uc = e.counters
        c.predictions += uc.predictions
        c.labels += uc.labels
        c.feature_events += uc.feature_events
        c.late += uc.late
        c.max_event_ts = max(c.max_event_ts, uc.max_event_ts)
        for k, v in uc.invalid.items():
            c.invalid[k] = c.invalid.get(k, 0) + v
        for name, ms in e.models.items():
            vm = view.models.get(name)
            if vm is None:
                continue
            for v, n in ms.versions.items():
                vm.versions[v] = vm.versions.get(v, 0) + n
            for vv, uv in zip(vm.layout.vocabs, ms.layout.vocabs, strict=False):
                vv.overflow += uv.overflow
    view.counters = c
    for name, vm in view.models.items():  # lifetime served histograms of this process: units here and gone
        parts = [(u.engine.models[name].layout, u.engine.models[name].served) for u in units if name in u.engine.models]
        if name in side.departed:
            parts.append(side.departed[name])
        for lay, totals in parts:
            vm.served.add_rows(totals, row_map(lay, vm.layout))
    marks = [u.engine.high_water for u in units if math.isfinite(u.engine.high_water)]
    view.high_water = max(marks, default=-math.inf)
    wms = [u.engine.watermark for u in units if math.isfinite(u.engine.watermark)]
    view.watermark = min(wms, default=-math.inf)
    view.outcomes = _OutcomeView(units, side.agg.engine.outcomes if side.agg is not None else None)
    side._view = (time.monotonic(), view)  # noqa: SLF001
    return view


class _JoinView:
    """The label-join counters of a worker's units (``coverage``/``match_rate`` as LabelJoin computes them)."""

    coverage = LabelJoin.coverage
    match_rate = LabelJoin.match_rate

    def __init__(self, units: list[Any]) -> None:
        joins = [u.gate.monitor.join for u in units]
        self.counters = {k: sum(j.counters[k] for j in joins) for k in _JOIN}
        self.store = _Sized(sum(len(j.store) for j in joins), sum(getattr(j.store, "pending", 0) for j in joins))
        self.early = _Sized(sum(len(j.early) for j in joins), 0)


class _Sized:
    def __init__(self, n: int, pending: int) -> None:
        self.n, self.pending = n, pending

    def __len__(self) -> int:
        return self.n


class _OutcomeView:
    def __init__(self, units: list[Any], evaluator: Any) -> None:
        self.units, self.evaluator = units, evaluator
        self.join = _JoinView(units)

    @property
    def listeners(self) -> list[Any]:
        return list(self.evaluator.listeners) if self.evaluator is not None else []

    def stats(self, model: str) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.evaluator.stats(model)) if self.evaluator is not None else {"slices": {}}
        j = self.join
        out["labels"] = {**j.counters, "coverage": rnd(j.coverage, 6), "match_rate": rnd(j.match_rate, 6),
                         "pending": len(j.store), "early_held": len(j.early)}
        pars = [u.gate.monitor.parity for u in self.units]
        parity = dict(out.get("parity") or {})
        for k in ("joined", "unjoined", "duplicates"):
            parity[k] = sum(p.counters.get(k, 0) for p in pars)
        parity["held"] = sum(len(p.held) for p in pars)
        parity["retained"] = sum(p.served[model].size for p in pars if model in p.served)
        out["parity"] = parity
        return out


def worker_status(worker: Any) -> dict[str, Any]:
    """A worker's machine-readable state (``/status?format=json``): ingest and label-join counters, alerts."""
    side = worker.sidecar
    view = side.engine
    c = view.counters
    counters = {"predictions": c.predictions, "labels": c.labels, "feature_events": c.feature_events,
                "invalid": dict(c.invalid), "late": c.late, "max_event_ts": c.max_event_ts
                if c.max_event_ts != float("-inf") else None}
    j = view.outcomes.join
    join = {k: int(v) for k, v in j.counters.items()}
    join.update(pending=len(j.store), early_held=len(j.early))
    wm = side.watermark
    agg = side.agg
    evaluator = side.evaluator
    offsets: dict[str, int] = {}
    for u in side.units.values():
        offsets.update(u.offsets)
    return {
        "worker": worker.worker_id, "group": worker.cfg.kafka.group_id, "restored": worker.restored.is_set(),
        "uptime_seconds": round(time.time() - worker.started_at, 1), "checkpoints": worker.checkpoints,
        "units": {n: {"boundary": _ts(u.boundary), "watermark": _ts(u.watermark()), "seq": u.seq,
                      "outbox": len(u.outbox), "marks": {tp: _ts(m) for tp, m in u.marks.items()}}
                  for n, u in sorted(side.units.items())},
        "counters": counters, "label_join": join, "duplicates": side.duplicates, "dlq_total": side.dlq_total,
        "alerts_suppressed": worker.alerts_suppressed, "restored_counts": worker.restored_counts,
        "restore_errors": worker.restore_errors,
        # after a broker lost its data: topics this worker re-created, partitions it found holding a new log
        "topics_recreated": getattr(worker, "topics_recreated", 0), "log_resets": getattr(worker, "log_resets", 0),
        "gathered": sum(len(p.batch.offsets) for p in worker.pending.values()),  # received, waiting for their fold
        "watermark": wm if wm != float("-inf") else None, "offsets": offsets,
        "aggregator": None if agg is None else {
            "windows_closed": evaluator.counters.windows_closed, "late": evaluator.counters.late,
            "alerts_fired": evaluator.counters.alerts_fired, "alerts_resolved": evaluator.counters.alerts_resolved,
            "boundary": agg.boundary if agg.boundary != float("-inf") else None, "sources": sorted(agg.sources),
            "duplicate_steps": agg.duplicates, "rejected": agg.rejected, "capped_claims": agg.capped,
            # days of history of each model's seasonal baseline (its best-known time-of-day slot)
            "baseline_days": {n: float(ms.seasonal.days.max()) for n, ms in evaluator.models.items()}},
        "firing": evaluator.alerts.firing(), "recent": worker.alert_log[-50:],
    }


def _ts(t: float | None) -> float | None:
    return t if t is not None and math.isfinite(t) else None
