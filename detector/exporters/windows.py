"""Per-model window metrics: open windows and their memory, slice vocabularies, model versions, the last
closed window's statistics against their thresholds (:func:`add_model`), the window being filled now
(:func:`add_live_window`) and the served distributions as Prometheus histograms (:func:`add_served`).
Read at scrape time by :class:`detector.exporters.prometheus.SkewwatchCollector`."""

from __future__ import annotations

from typing import Any

import numpy as np

from detector.exporters.estimates import add_estimates
from detector.exporters.families import (
    ARRAYS,
    MAX_VERSIONS,
    OTHER,
    Families,
    RowView,
    bounded,
    feature_labels,
    is_finite,
    keep_max,
    latency_buckets,
    le_label,
    midpoints,
    score_buckets,
    slice_label,
)

__all__ = ["add_model", "add_live_window", "add_served"]


def add_model(fam: Families, name: str, states: list[Any], ms: Any, evaluated: Any) -> None:
    """``states``: the model in every engine (open windows); ``ms``: where events are folded (slice
    vocabularies, versions); ``evaluated``: where windows are evaluated (statistics)."""
    wins = [w for st in states for w in list(st.windows.values())]
    fam.gauge("skewwatch_open_windows", "Event-time windows currently open (worker and aggregator).",
              ("model",)).add_metric([name], float(len(wins)))
    size = sum(getattr(w, a).nbytes for w in wins for a in ARRAYS if hasattr(w, a))
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
    feat = feature_labels(evaluated)
    fvals: dict[tuple[str, ...], float] = {}
    fthrs: dict[tuple[str, ...], float] = {}
    for (kind, stat, feature, skey), (value, _sl, thr) in list(evaluated.last_stats.items()):
        sl = slice_label(skey)
        if feature:
            key = (name, kind, feat(feature), sl, stat)
            keep_max(fvals, key, value)
            if is_finite(thr):
                keep_max(fthrs, key, thr)
        else:
            mv.add_metric([name, kind, sl, stat], float(value))
            if is_finite(thr):
                mt.add_metric([name, kind, sl, stat], float(thr))
    for key, v in fvals.items():
        fv.add_metric(list(key), v)
    for key, v in fthrs.items():
        ft.add_metric(list(key), v)
    add_estimates(fam, name, getattr(evaluated, "estimate", None))  # performance before labels


def add_live_window(fam: Families, name: str, ms: Any) -> None:
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
    arr = RowView(w, lay)
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


def add_served(fam: Families, name: str, ms: Any) -> None:
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
    lat_idx, lat_le = latency_buckets(lay.lat_edges)
    mids = midpoints(np.asarray(lay.lat_edges, dtype=np.float64))
    score_idx = score_buckets(len(lay.score_edges))
    score_le = [le_label(float(lay.score_edges[k])) for k in score_idx]
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
