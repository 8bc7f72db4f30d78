"""Pipeline health metrics: events in and rejected, windows closed, checks that raised, alert transitions,
event time and watermark (:func:`add_pipeline`), and the Kafka worker's dead letters, redeliveries and
checkpoints (:func:`add_worker`). Read at scrape time by :class:`detector.exporters.prometheus.SkewwatchCollector`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from detector.core.guard import CHECKS
from detector.exporters.families import (
    MAX_MODELS,
    MAX_REASONS,
    OTHER,
    Families,
    is_finite,
)

__all__ = ["add_pipeline", "add_worker"]


def add_pipeline(fam: Families, src: Any, eng: Any) -> None:
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


def add_worker(fam: Families, worker: Any, side: Any) -> None:
    c = fam.counter
    if is_finite(getattr(side, "dlq_total", None)):
        c("skewwatch_dlq_messages", "Messages sent to the dead-letter topic (invalid events plus empty or oversized "
          "messages rejected before decoding).", ()).add_metric([], float(side.dlq_total))
    if is_finite(getattr(side, "duplicates", None)):
        c("skewwatch_redelivered_messages", "Messages skipped because a checkpoint already covered their offset "
          "(at-least-once redelivery after a restart or rebalance).", ()).add_metric([], float(side.duplicates))
    if is_finite(getattr(worker, "checkpoints", None)):
        c("skewwatch_checkpoints", "State checkpoints written (offsets are committed after each).", ()).add_metric(
            [], float(worker.checkpoints))
    if is_finite(getattr(worker, "checkpoint_failures", None)):
        c("skewwatch_checkpoint_failures", "Checkpoints not completed (broker unreachable, a send refused or not acknowledged "
          "within the timeout); retried within 5 s, offsets stay uncommitted until one completes.", ()).add_metric(
            [], float(worker.checkpoint_failures))
    if is_finite(getattr(worker, "log_resets", None)):
        c("skewwatch_partition_log_resets", "Input or partials partitions found holding a new log (the topic was "
          "re-created or truncated, e.g. by a broker back without its data): read again from their start.",
          ()).add_metric([], float(worker.log_resets))
        c("skewwatch_topics_recreated", "Topics the worker re-created, with their partitions and configs, after "
          "the cluster lost them.", ()).add_metric([], float(getattr(worker, "topics_recreated", 0)))
    if is_finite(getattr(worker, "send_failures", None)):
        c("skewwatch_send_failures", "Attempts to send alerts, dead letters or counterexamples that failed (the messages "
          "wait and are sent again; checkpoints wait for them).", ()).add_metric([], float(worker.send_failures))
        c("skewwatch_unsent_dropped_messages", "Alerts, dead letters or counterexamples dropped because more than "
          "100,000 were waiting for an unreachable broker.", ()).add_metric([], float(getattr(worker, "send_dropped", 0)))
        fam.gauge("skewwatch_unsent_messages", "Alerts, dead letters or counterexamples waiting to be sent.",
                  ()).add_metric([], float(len(getattr(worker, "unsent", ()))))
    last = getattr(worker, "last_checkpoint", None)
    if is_finite(last) and last > 0:
        import time

        fam.gauge("skewwatch_checkpoint_age_seconds", "Seconds since the last checkpoint (or the restore).",
                  ()).add_metric([], max(0.0, time.monotonic() - float(last)))
    sources = getattr(side, "sources", None)
    if isinstance(sources, Mapping):
        fam.gauge("skewwatch_aggregator_sources", "Workers whose window partials this aggregator has seen (0 on "
                  "workers that do not hold the partials partition).", ()).add_metric([], float(len(sources)))
