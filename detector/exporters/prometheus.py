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
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from detector import __version__
from detector.core.guard import CHECKS
from detector.exporters.estimates import add_estimates
from detector.exporters.families import (  # noqa: F401 - ALL, bounded, ... are this module's API too
    _ARRAYS,
    _CLASS_OUTCOME,
    _JOIN,
    _LABEL_GAUGES,
    _OUTCOME,
    _PARITY,
    ALL,
    LATENCY_BUCKETS_MS,
    MAX_LABEL_CHARS,
    MAX_MODELS,
    MAX_REASONS,
    MAX_VERSIONS,
    OTHER,
    SCORE_BUCKETS,
    UNEXPECTED,
    FeatureLabels,
    _as_map,
    _delay_buckets,
    _Families,
    _feature_labels,
    _finite,
    _get,
    _keep_max,
    _latency_buckets,
    _le,
    _midpoints,
    _RowView,
    _score_buckets,
    _ts,
    bounded,
    slice_label,
)

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
        fam = _Families()
        info = fam.gauge("skewwatch_build_info", "skewwatch build; the value is always 1.", ("version",))
        info.add_metric([__version__], 1.0)
        eng = self.engine_getter()
        if eng is None:
            return fam
        worker = self.worker_getter() if self.worker_getter is not None else None
        side = getattr(worker, "sidecar", None)
        src = getattr(side, "engine", None) or eng  # the engine that ingests raw events
        engines = [eng] if src is eng else [src, eng]
        self._pipeline(fam, src, eng)
        names = list(dict.fromkeys([*src.models, *eng.models]))[:MAX_MODELS]
        for name in names:
            self._model(fam, name, [e.models[name] for e in engines if name in e.models],
                        src.models.get(name) or eng.models[name], eng.models.get(name) or src.models[name])
            if name in src.models:
                self._live_window(fam, name, src.models[name])
                self._served(fam, name, src.models[name])
        self._alerts(fam, eng, names)
        stats = getattr(getattr(src, "outcomes", None) or getattr(eng, "outcomes", None), "stats", None)
        if callable(stats):
            self._outcomes(fam, names, stats)
        if side is not None:
            self._worker(fam, worker, side)
        return fam

    # ------------------------------------------------------------------ pipeline health
    def _pipeline(self, fam: _Families, src: Any, eng: Any) -> None:
        """Ingest counters from ``src`` (the worker engine); window and alert counters from ``eng``."""
        c = src.counters
        ev = fam.counter("skewwatch_events", "Events accepted per model and topic (model is empty for label and "
                         "feature events, counted before they are joined to a prediction).", ("model", "topic"))
        per_model = [(n, getattr(ms, "predictions", None)) for n, ms in src.models.items()]
        if per_model and all(v is not None for _, v in per_model):
            for n, v in per_model[:MAX_MODELS]:
                ev.add_metric([n, "predictions"], float(v))
        elif len(per_model) == 1:
            ev.add_metric([per_model[0][0], "predictions"], float(c.predictions))
        else:
            ev.add_metric(["", "predictions"], float(c.predictions))
        ev.add_metric(["", "labels"], float(c.labels))
        ev.add_metric(["", "features"], float(c.feature_events))
        inv = fam.counter("skewwatch_invalid_events", "Events rejected (and sent to the dead-letter topic) by reason.",
                          ("reason",))
        reasons = sorted(c.invalid.items())
        other = sum(v for _, v in reasons[MAX_REASONS:])
        for r, v in reasons[:MAX_REASONS]:
            inv.add_metric([r], float(v))
        if other:
            inv.add_metric([OTHER], float(other))
        clipped = getattr(c, "clipped", None) or {}
        cl = fam.counter("skewwatch_clipped_values", "Retained strings (categories, slice values, versions, decisions, "
                         "override reasons, feature names) cut to detector.max_value_bytes, by field.", ("field",))
        for k, v in sorted(clipped.items())[:MAX_REASONS]:
            cl.add_metric([k], float(v))
        fam.counter("skewwatch_late_events", "Events for a window that had already closed (counted, not folded in).",
                    ()).add_metric([], float(c.late))
        fam.counter("skewwatch_windows_closed", "Event-time windows closed and evaluated.", ()).add_metric(
            [], float(eng.counters.windows_closed))
        errs = fam.counter("skewwatch_check_errors", "Windows (or matured label cohorts) in which a check raised, by "
                           "check: its results there were skipped, the window still closed; the error log names the "
                           "exception.", ("check",))
        raised = getattr(eng.counters, "check_errors", None) or {}
        for k in sorted(set(CHECKS) | set(raised))[: len(CHECKS) + MAX_REASONS]:
            errs.add_metric([k], float(raised.get(k, 0)))
        tr = fam.counter("skewwatch_alert_transitions", "Alert events emitted, by state (firing or resolved).", ("state",))
        tr.add_metric(["firing"], float(eng.counters.alerts_fired))
        tr.add_metric(["resolved"], float(eng.counters.alerts_resolved))
        if math.isfinite(c.max_event_ts):
            fam.gauge("skewwatch_last_event_timestamp_seconds", "Event time of the newest accepted prediction "
                      "(Unix seconds).", ()).add_metric([], c.max_event_ts)
        if math.isfinite(src.watermark):
            fam.gauge("skewwatch_watermark_timestamp_seconds", "Event-time watermark of this worker's input: its "
                      "windows ending before it are closed (Unix seconds).", ()).add_metric([], src.watermark)
            if math.isfinite(src.high_water):
                fam.gauge("skewwatch_watermark_lag_seconds", "Newest event time minus the watermark (event time).",
                          ()).add_metric([], max(0.0, src.high_water - src.watermark))
        fam.gauge("skewwatch_window_length_seconds", "Length of the tumbling event-time windows.", ()).add_metric(
            [], float(eng.settings.window))
        fam.gauge("skewwatch_models", "Models the engine keeps state for (exported: at most 100).", ()).add_metric(
            [], float(len(set(src.models) | set(eng.models))))

    # ------------------------------------------------------------------ per model
    def _model(self, fam: _Families, name: str, states: list[Any], ms: Any, evaluated: Any) -> None:
        """``states``: the model in every engine (open windows); ``ms``: where events are folded (slice
        vocabularies, versions); ``evaluated``: where windows are evaluated (statistics)."""
        wins = [w for st in states for w in list(st.windows.values())]
        fam.gauge("skewwatch_open_windows", "Event-time windows currently open (worker and aggregator).",
                  ("model",)).add_metric([name], float(len(wins)))
        size = sum(getattr(w, a).nbytes for w in wins for a in _ARRAYS if hasattr(w, a))
        fam.gauge("skewwatch_state_bytes", "Memory held by the open windows' counters.", ("model",)).add_metric(
            [name], float(size))
        ovf = fam.counter("skewwatch_slice_overflow_events", "Events whose slice value was folded into __other__ "
                          "because the dimension's top-K was full.", ("model", "dimension"))
        vals = fam.gauge("skewwatch_slice_values", "Distinct slice values tracked per dimension (top-K admitted).",
                         ("model", "dimension"))
        for voc in ms.layout.vocabs:
            ovf.add_metric([name, voc.dim], float(voc.overflow))
            vals.add_metric([name, voc.dim], float(len(voc.values)))
        ver = fam.counter("skewwatch_model_version_predictions", "Predictions seen per model_version (first 10 "
                          "versions; the rest are __other__).", ("model", "model_version"))
        items = list(ms.versions.items())
        for v, n in items[:MAX_VERSIONS]:
            ver.add_metric([name, bounded(str(v))], float(n))
        if len(items) > MAX_VERSIONS:
            ver.add_metric([name, OTHER], float(sum(n for _, n in items[MAX_VERSIONS:])))
        summ = evaluated.last_summary or {}
        w = summ.get("window") or {}
        if w.get("_end") is not None:
            fam.gauge("skewwatch_last_window_end_timestamp_seconds", "End (event time) of the last closed window.",
                      ("model",)).add_metric([name], float(w["_end"]))
            fam.gauge("skewwatch_last_window_events", "Predictions in the last closed window.", ("model",)).add_metric(
                [name], float(summ.get("events", 0)))
        fv = fam.gauge("skewwatch_feature_statistic", "Latest value of a tested statistic per feature and slice "
                       "(last closed window).", ("model", "kind", "feature", "slice", "statistic"))
        ft = fam.gauge("skewwatch_feature_statistic_threshold", "Effect-size threshold of skewwatch_feature_statistic.",
                       ("model", "kind", "feature", "slice", "statistic"))
        mv = fam.gauge("skewwatch_model_statistic", "Latest value of a tested model-level statistic per slice "
                       "(decision rate, threshold, fallback, latency; last closed window).",
                       ("model", "kind", "slice", "statistic"))
        mt = fam.gauge("skewwatch_model_statistic_threshold", "Threshold of skewwatch_model_statistic.",
                       ("model", "kind", "slice", "statistic"))
        feat = _feature_labels(evaluated)
        fvals: dict[tuple[str, ...], float] = {}
        fthrs: dict[tuple[str, ...], float] = {}
        for (kind, stat, feature, skey), (value, _sl, thr) in list(evaluated.last_stats.items()):
            sl = slice_label(skey)
            if feature:
                key = (name, kind, feat(feature), sl, stat)
                _keep_max(fvals, key, value)
                if _finite(thr):
                    _keep_max(fthrs, key, thr)
            else:
                mv.add_metric([name, kind, sl, stat], float(value))
                if _finite(thr):
                    mt.add_metric([name, kind, sl, stat], float(thr))
        for key, v in fvals.items():
            fv.add_metric(list(key), v)
        for key, v in fthrs.items():
            ft.add_metric(list(key), v)
        add_estimates(fam, name, getattr(evaluated, "estimate", None))  # performance before labels

    # ------------------------------------------------------------------ the open window (live view)
    def _live_window(self, fam: _Families, name: str, ms: Any) -> None:
        if not ms.windows:
            return
        w = ms.windows[max(ms.windows)]
        lay = ms.layout
        from detector.core.inputs.window import RATE

        rows = [int(r) for r in lay.active_rows()]
        events = fam.gauge("skewwatch_window_events", "Predictions so far in the current (open) window.",
                           ("model", "slice"))
        miss = fam.gauge("skewwatch_feature_missing_ratio", "Share of events with the feature missing (null, NaN, "
                         "absent) in the current window.", ("model", "feature", "slice"))
        uns = fam.gauge("skewwatch_feature_unseen_ratio", "Share of a categorical feature's values never seen in "
                        "training, in the current window.", ("model", "feature", "slice"))
        dflt = fam.gauge("skewwatch_feature_default_value_ratio", "Share of a numeric feature's values equal to its "
                         "most frequent tracked exact value (default / fallback candidates), current window.",
                         ("model", "feature", "slice"))
        score = fam.gauge("skewwatch_score_mean", "Mean model score in the current window.", ("model", "slice"))
        dec = fam.gauge("skewwatch_decision_positive_ratio", "Share of decided predictions acted on (not an approve/"
                        "no-action decision), current window.", ("model", "slice"))
        fb = fam.gauge("skewwatch_fallback_ratio", "Share of predictions served by a fallback, current window.",
                       ("model", "slice"))
        nb = lay.n_num_blocks
        arr = _RowView(w, lay)
        for r in rows:
            n = float(arr("rates", r)[RATE["events"]])
            if n <= 0:
                continue
            sl = slice_label(lay.row_label(r))
            events.add_metric([name, sl], n)
            for j, feat in enumerate(lay.numeric):
                off, size = int(lay.num_offsets[j]), int(lay.num_sizes[j])
                block = arr("num", r)[off : off + size]
                missing = float(block[-1])
                miss.add_metric([name, feat, sl], missing / n)
                present = float(block[:-1].sum())
                if present > 0:
                    dflt.add_metric([name, feat, sl], float(arr("cand", r)[j].max()) / present)
            for j, feat in enumerate(lay.categorical):
                off, size = int(lay.cat_offsets[j]), int(lay.cat_sizes[j])
                block = arr("cat", r)[off : off + size]
                miss.add_metric([name, feat, sl], float(block[-1]) / n)
                present = float(block[:-1].sum())
                if present > 0:
                    uns.add_metric([name, feat, sl], float(block[-2]) / present)
            so, ss = int(lay.num_offsets[nb - 1]), int(lay.num_sizes[nb - 1])
            scored = float(arr("num", r)[so : so + ss - 1].sum())
            if scored > 0:
                score.add_metric([name, sl], float(arr("sx", r)[nb - 1]) / scored)
            rates = arr("rates", r)
            decided = float(rates[RATE["decided"]])
            if decided > 0:
                dec.add_metric([name, sl], float(rates[RATE["acted"]]) / decided)
            fk = float(rates[RATE["fallback_known"]])
            if fk > 0:
                fb.add_metric([name, sl], float(rates[RATE["fallback"]]) / fk)

    # ------------------------------------------------------------------ served distributions (histograms)
    def _served(self, fam: _Families, name: str, ms: Any) -> None:
        """Lifetime latency and score histograms per slice row (handed-on windows + open ones)."""
        totals = getattr(ms, "served", None)
        if totals is None:
            return
        lay = ms.layout
        lat, score, ssum = totals.with_open(list(ms.windows.values()))
        lh = fam.histogram("skewwatch_latency_seconds", "Serving latency reported by the model (latency_ms), "
                           "per slice; _sum is estimated from the bin midpoints (10 bins per decade).",
                           ("model", "slice"))
        sh = fam.histogram("skewwatch_score", "Model score distribution per slice (buckets: every few of the "
                           "training score's quantile edges, so each holds a similar share of training).",
                           ("model", "slice"))
        lat_idx, lat_le = _latency_buckets(lay.lat_edges)
        mids = _midpoints(np.asarray(lay.lat_edges, dtype=np.float64))
        score_idx = _score_buckets(len(lay.score_edges))
        score_le = [_le(float(lay.score_edges[k])) for k in score_idx]
        for r in [int(r) for r in lay.active_rows()]:
            sl = slice_label(lay.row_label(r))
            n_lat = float(lat[r].sum())
            if n_lat > 0:
                cum = np.cumsum(lat[r])
                buckets = [(le, float(cum[k])) for k, le in zip(lat_idx, lat_le, strict=True)]
                buckets.append(("+Inf", n_lat))
                lh.add_metric([name, sl], buckets, float((lat[r] * mids).sum()) / 1000.0)
            n_score = float(score[r].sum())
            if n_score > 0:
                cum = np.cumsum(score[r])
                # bin k covers [edges[k-1], edges[k]): the count below edge k is cum[k]
                buckets = [(le, float(cum[k])) for k, le in zip(score_idx, score_le, strict=True)]
                buckets.append(("+Inf", n_score))
                sh.add_metric([name, sl], buckets, float(ssum[r]))

    # ------------------------------------------------------------------ alerts
    def _alerts(self, fam: _Families, eng: Any, models: list[str]) -> None:
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
            feat = _feature_labels(ms)
            for a in eng.alerts.firing(m):
                g = (m, str(a.get("kind", "")), str(a.get("severity", "")), str(a.get("cause", "")),
                     str(a.get("action", "")))
                counts[g] = counts.get(g, 0) + 1
                lv = (m, g[1], feat(a.get("feature")), slice_label(a.get("slice") or {}),
                      str(a.get("statistic", "")), g[2], g[3], g[4])
                row = rows.setdefault(lv, [0.0, math.nan, math.nan, math.inf])
                row[0] += 1
                if _finite(a.get("value")):
                    row[1] = float(a["value"]) if math.isnan(row[1]) else max(row[1], float(a["value"]))
                if _finite(a.get("threshold")):
                    row[2] = float(a["threshold"]) if math.isnan(row[2]) else max(row[2], float(a["threshold"]))
                t = _ts(a.get("ts"))
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

    # ------------------------------------------------------------------ the Kafka worker
    def _worker(self, fam: _Families, worker: Any, side: Any) -> None:
        c = fam.counter
        if _finite(getattr(side, "dlq_total", None)):
            c("skewwatch_dlq_messages", "Messages sent to the dead-letter topic (invalid events plus empty or oversized "
              "messages rejected before decoding).", ()).add_metric([], float(side.dlq_total))
        if _finite(getattr(side, "duplicates", None)):
            c("skewwatch_redelivered_messages", "Messages skipped because a checkpoint already covered their offset "
              "(at-least-once redelivery after a restart or rebalance).", ()).add_metric([], float(side.duplicates))
        if _finite(getattr(worker, "checkpoints", None)):
            c("skewwatch_checkpoints", "State checkpoints written (offsets are committed after each).", ()).add_metric(
                [], float(worker.checkpoints))
        if _finite(getattr(worker, "checkpoint_failures", None)):
            c("skewwatch_checkpoint_failures", "Checkpoints not completed (broker unreachable, a send refused or not acknowledged "
              "within the timeout); retried within 5 s, offsets stay uncommitted until one completes.", ()).add_metric(
                [], float(worker.checkpoint_failures))
        if _finite(getattr(worker, "send_failures", None)):
            c("skewwatch_send_failures", "Attempts to send alerts, dead letters or counterexamples that failed (the messages "
              "wait and are sent again; checkpoints wait for them).", ()).add_metric([], float(worker.send_failures))
            c("skewwatch_unsent_dropped_messages", "Alerts, dead letters or counterexamples dropped because more than "
              "100,000 were waiting for an unreachable broker.", ()).add_metric([], float(getattr(worker, "send_dropped", 0)))
            fam.gauge("skewwatch_unsent_messages", "Alerts, dead letters or counterexamples waiting to be sent.",
                      ()).add_metric([], float(len(getattr(worker, "unsent", ()))))
        last = getattr(worker, "last_checkpoint", None)
        if _finite(last) and last > 0:
            import time

            fam.gauge("skewwatch_checkpoint_age_seconds", "Seconds since the last checkpoint (or the restore).",
                      ()).add_metric([], max(0.0, time.monotonic() - float(last)))
        sources = getattr(side, "sources", None)
        if isinstance(sources, Mapping):
            fam.gauge("skewwatch_aggregator_sources", "Workers whose window partials this aggregator has seen (0 on "
                      "workers that do not hold the partials partition).", ()).add_metric([], float(len(sources)))

    # ------------------------------------------------------------------ outcomes (labels, parity)
    def _outcomes(self, fam: _Families, models: list[str], stats: Callable[[str], Any]) -> None:
        glob: Any = None
        for model in models:
            st = stats(model)
            if st is None:
                continue
            glob = glob if glob is not None else st
            self._outcome_model(fam, model, st)
        if glob is not None:
            self._outcome_global(fam, glob)

    def _outcome_model(self, fam: _Families, model: str, st: Any) -> None:
        mat = _get(st, "maturity_s")
        if _finite(mat):
            fam.gauge("skewwatch_label_maturity_seconds", "Label age at which prediction cohorts are evaluated "
                      "(observed 90th percentile of the label delay).", ("model",)).add_metric([model], float(mat))
        end = _ts(_get(_get(st, "window"), "end"))
        if end is not None:
            fam.gauge("skewwatch_outcome_window_end_timestamp_seconds", "End (event time) of the last evaluated "
                      "prediction cohort.", ("model",)).add_metric([model], end)
        slices = _as_map(_get(st, "slices")) or {}
        for key, fname, doc in _OUTCOME:
            for skey, row in slices.items():
                v = _get(row, key)
                if _finite(v):
                    fam.gauge(fname, doc, ("model", "slice")).add_metric([model, slice_label(skey)], float(v))
        for key, fname, doc in _CLASS_OUTCOME:
            for skey, row in slices.items():
                for cls, v in (_as_map(_get(row, key)) or {}).items():
                    if _finite(v):
                        fam.gauge(fname, doc, ("model", "slice", "class")).add_metric(
                            [model, slice_label(skey), bounded(str(cls))], float(v))
        par = _as_map(_get(_get(st, "parity"), "features")) or {}
        for feat, per in par.items():
            for skey, row in (_as_map(per) or {}).items():
                for key, fname, doc in _PARITY:
                    v = _get(row, key)
                    if _finite(v):
                        fam.gauge(fname, doc, ("model", "feature", "slice")).add_metric(
                            [model, str(feat), slice_label(skey)], float(v))
        delay = _delay_buckets(_get(_get(st, "labels"), "delay") or _get(st, "delay"))
        if delay is not None:
            fam.histogram("skewwatch_label_delay_seconds", "Delay from a prediction to its first label.",
                          ("model",)).add_metric([model], *delay)

    def _outcome_global(self, fam: _Families, st: Any) -> None:
        lab = _as_map(_get(st, "labels")) or {}
        jc = fam.counter("skewwatch_label_join_events", "Label join outcomes: matched (first label of a held "
                         "prediction), duplicate, correction, expired (no label within the TTL), evicted (store full), "
                         "orphan (label whose prediction never came), rejected (a value the prediction's model does not take, e.g. "
                         "not 0/1 for a binary model).", ("result",))
        for k, res in _JOIN.items():
            if _finite(lab.get(k)):
                jc.add_metric([res], float(lab[k]))
        for key, fname, doc in _LABEL_GAUGES:
            if _finite(lab.get(key)):
                fam.gauge(fname, doc, ()).add_metric([], float(lab[key]))
        par = _as_map(_get(st, "parity")) or {}
        pc = fam.counter("skewwatch_parity_join_events", "Offline feature events by join result: joined to a served "
                         "prediction, unjoined (no prediction within the hold), duplicate.", ("result",))
        for k in ("joined", "unjoined", "duplicates"):
            if _finite(par.get(k)):
                pc.add_metric([_JOIN.get(k, k)], float(par[k]))
        if _finite(par.get("held")):
            fam.gauge("skewwatch_parity_held", "Offline feature events waiting for their prediction.", ()).add_metric(
                [], float(par["held"]))
        if _finite(par.get("held_bytes")):
            fam.gauge("skewwatch_parity_held_bytes", "Estimated memory of the offline feature events waiting for their "
                      "prediction (bounded by a quarter of detector.max_parity_bytes).", ()).add_metric(
                [], float(par["held_bytes"]))


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
