"""Prometheus exporter: a custom collector that reads the engine's state at scrape time.

Nothing is pushed from the hot path: :class:`SkewwatchCollector` holds a callable returning the
current :class:`~detector.core.engine.Engine` (or ``None`` while it is starting) and turns its
counters, last-window statistics, open windows and firing alerts into metric families on every
``collect()``. Series that disappear from the core (a resolved alert, a closed window) stop
being exported, except ``skewwatch_alerts_firing``, which drops to 0 for groups seen before.

Labels are bounded: features come from the reference profile, slice values are already folded
into ``__other__`` by the core (top-K per dimension), reasons and alert kinds are fixed
vocabularies, model versions are capped at :data:`MAX_VERSIONS` (first come; the rest are
``__other__``) and models at :data:`MAX_MODELS`. Label conventions:

* ``slice="all"`` is all traffic, ``slice="region=eu"`` one slice row, ``slice="region=__other__"``
  the folded tail of a dimension;
* an empty label value means "not applicable" (``feature=""`` on an alert about the decision
  rate; ``model=""`` on label and feature events, which are counted before they are joined).

Two topologies: a replay has one engine that ingests and evaluates; a Kafka worker
(:mod:`detector.kafka.worker`) folds its input in one engine per *unit* (input partition), read
here as one ingest view (:func:`detector.kafka.views.ingest_view`: counters, open windows, slice
vocabularies, label-join counters), while the evaluating engine is the group's aggregator's
(statistics, alerts, outcome values; only on the worker that holds the aggregator role).
``exposition(evaluator, worker=w)`` reads each from where it lives and adds the worker's
dead-letter, redelivery and checkpoint counters and the standard ``process_*`` metrics.

The families are built by concept: pipeline health and the worker's own counters in
:mod:`detector.exporters.health`, per-model windows in :mod:`detector.exporters.windows`, outcomes in
:mod:`detector.exporters.outcomes`, performance estimates in :mod:`detector.exporters.estimates`;
label conventions and bounds in :mod:`detector.exporters.families`. This module holds the collector
(which reads each from where it lives), the alert families and the rendering.

Serving it: :func:`exposition` renders one engine as text (``skewwatch replay --metrics-out``); the
worker's HTTP server (:mod:`detector.kafka.web`, the one production serves) registers
:class:`SkewwatchCollector` next to the health and process collectors. Liveness and readiness never
depend on the Kafka broker: a broker outage shows up in the metrics, not as a restart loop.

Outcome metrics come from ``engine.outcomes.stats(model)`` when an outcome monitor is attached
(:class:`detector.core.outcomes.monitor.OutcomeMonitor`; read defensively, every key optional):
``slices[slice_key]`` (ECE, Brier, AUCs, precision, recall, base rate, labelled share, label
delay quantiles, thresholds, expected cost of the last matured cohort), ``maturity_s``,
``window``, ``labels`` (label-join counters shared by all models, exported once without a
model label), ``parity`` (``features[feature][slice_key]`` mismatch rates and join
counters) and ``delay`` (``{"counts": [...], "sum": s}``: lifetime first-label delays per
:data:`~detector.core.outcomes.labels.DELAY_EDGES` bin, exported as the ``skewwatch_label_delay_seconds``
histogram; the decayed histogram used for maturity is exported as p50/p90 gauges).

>>> from detector.core.engine import Engine
>>> b"skewwatch_build_info" in exposition(Engine())
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from detector import __version__
from detector.exporters.families import (  # noqa: F401 - ALL, bounded, ... are this module's API too
    ALL,
    ARRAYS,
    CLASS_OUTCOME_FAMILIES,
    JOIN_STATES,
    LABEL_GAUGES,
    LATENCY_BUCKETS_MS,
    MAX_LABEL_CHARS,
    MAX_MODELS,
    MAX_REASONS,
    MAX_VERSIONS,
    OTHER,
    OUTCOME_FAMILIES,
    PARITY_FAMILIES,
    SCORE_BUCKETS,
    UNEXPECTED,
    Families,
    FeatureLabels,
    RowView,
    as_map,
    bounded,
    delay_buckets,
    epoch_seconds,
    feature_labels,
    get_field,
    is_finite,
    keep_max,
    latency_buckets,
    le_label,
    midpoints,
    score_buckets,
    slice_label,
)
from detector.exporters.health import add_pipeline, add_worker
from detector.exporters.outcomes import add_outcomes
from detector.exporters.windows import add_live_window, add_model, add_served

__all__ = ["SkewwatchCollector", "exposition", "ALL", "MAX_MODELS", "MAX_VERSIONS", "UNEXPECTED", "FeatureLabels",
           "bounded", "slice_label", "LATENCY_BUCKETS_MS"]


class SkewwatchCollector(Collector):
    """Reads ``engine_getter()`` on every scrape (``None``: only build info is exported)."""

    def __init__(self, engine_getter: Callable[[], Any], lock: Any = None,
                 worker_getter: Callable[[], Any] | None = None) -> None:
        self.engine_getter = engine_getter
        self.lock = lock  # optional: held by the worker while it mutates the engine
        self.worker_getter = worker_getter
        self._alert_groups: set[tuple[str, ...]] = set()  # seen (model, kind, severity, cause, action)

    def collect(self) -> Iterable[Metric]:
        if self.lock is not None:
            with self.lock:
                return self._collect_retrying()
        return self._collect_retrying()

    def _collect_retrying(self) -> list[Metric]:
        # A scrape on another thread may see a dict change size mid-iteration: try again.
        for attempt in range(3):
            try:
                return list(self._collect())
            except RuntimeError:
                if attempt == 2:
                    raise
        return []

    def _collect(self) -> Iterable[Metric]:
        fam = Families()
        info = fam.gauge("skewwatch_build_info", "skewwatch build; the value is always 1.", ("version",))
        info.add_metric([__version__], 1.0)
        eng = self.engine_getter()
        if eng is None:
            return fam
        worker = self.worker_getter() if self.worker_getter is not None else None
        side = getattr(worker, "sidecar", None)
        src = getattr(side, "engine", None) or eng  # the engine that ingests raw events
        engines = [eng] if src is eng else [src, eng]
        add_pipeline(fam, src, eng)
        names = list(dict.fromkeys([*src.models, *eng.models]))[:MAX_MODELS]
        for name in names:
            add_model(fam, name, [e.models[name] for e in engines if name in e.models],
                      src.models.get(name) or eng.models[name], eng.models.get(name) or src.models[name])
            if name in src.models:
                add_live_window(fam, name, src.models[name])
                add_served(fam, name, src.models[name])
        self._alerts(fam, eng, names)
        stats = getattr(getattr(src, "outcomes", None) or getattr(eng, "outcomes", None), "stats", None)
        if callable(stats):
            add_outcomes(fam, names, stats)
        if side is not None:
            add_worker(fam, worker, side)
        return fam

    # ------------------------------------------------------------------ alerts
    def _alerts(self, fam: Families, eng: Any, models: list[str]) -> None:
        groups = fam.gauge("skewwatch_alerts_firing", "skewwatch incidents currently firing (0 once a group seen "
                           "firing has resolved).", ("model", "kind", "severity", "cause", "action"))
        labels = ("model", "kind", "feature", "slice", "statistic", "severity", "cause", "action")
        active = fam.gauge("skewwatch_alert_active", "One series per firing incident (value 1; incidents on features "
                           "the reference does not know share feature=\"__unexpected__\" and add up); the alert "
                           "event on the alerts topic carries the evidence.", labels)
        value = fam.gauge("skewwatch_alert_value", "Latest value of a firing incident's statistic.", labels)
        thr = fam.gauge("skewwatch_alert_threshold", "Threshold of a firing incident's statistic.", labels)
        since = fam.gauge("skewwatch_alert_started_timestamp_seconds", "When a firing incident fired (event time, "
                          "Unix seconds).", labels)
        counts: dict[tuple[str, ...], int] = {}
        rows: dict[tuple[str, ...], list[float]] = {}  # label values -> [incidents, value, threshold, since]
        for m in models:
            ms = eng.models.get(m)
            feat = feature_labels(ms)
            for a in eng.alerts.firing(m):
                g = (m, str(a.get("kind", "")), str(a.get("severity", "")), str(a.get("cause", "")),
                     str(a.get("action", "")))
                counts[g] = counts.get(g, 0) + 1
                lv = (m, g[1], feat(a.get("feature")), slice_label(a.get("slice") or {}),
                      str(a.get("statistic", "")), g[2], g[3], g[4])
                row = rows.setdefault(lv, [0.0, math.nan, math.nan, math.inf])
                row[0] += 1
                if is_finite(a.get("value")):
                    row[1] = float(a["value"]) if math.isnan(row[1]) else max(row[1], float(a["value"]))
                if is_finite(a.get("threshold")):
                    row[2] = float(a["threshold"]) if math.isnan(row[2]) else max(row[2], float(a["threshold"]))
                t = epoch_seconds(a.get("ts"))
                if t is not None:
                    row[3] = min(row[3], t)
        for lv, (n, v, th, t0) in rows.items():
            active.add_metric(list(lv), n)
            if not math.isnan(v):
                value.add_metric(list(lv), v)
            if not math.isnan(th):
                thr.add_metric(list(lv), th)
            if math.isfinite(t0):
                since.add_metric(list(lv), t0)
        if len(self._alert_groups) < 10_000:
            self._alert_groups.update(counts)
        for g in sorted(self._alert_groups | set(counts)):
            if g[0] in models:
                groups.add_metric(list(g), float(counts.get(g, 0)))






# --------------------------------------------------------------------------- rendering and serving


def exposition(engine: Any, worker: Any = None, process: bool | None = None) -> bytes:
    """The Prometheus text exposition of one engine (a fresh registry each call).

    ``worker`` (a :class:`detector.kafka.worker.Worker`) adds its ingest engine, outcome monitor,
    checkpoint and dead-letter counters; ``engine`` is then its aggregator. ``process`` adds the
    standard ``process_*`` metrics (default: when serving a worker).
    """
    reg = CollectorRegistry(auto_describe=False)
    reg.register(SkewwatchCollector(lambda: engine, worker_getter=None if worker is None else (lambda: worker)))
    if process if process is not None else worker is not None:
        ProcessCollector(registry=reg)
    return generate_latest(reg)
