"""A feature's distribution in one slice row of the last closed window against its training profile
(:func:`feature_distribution`, drawn by :func:`distribution_svg`), which features to chart
(:func:`chart_targets`) and their statistics (:func:`stats_for`); shared by the status page and the report."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.core.decisions.alerts import slice_key
from detector.web.alert_text import FEATURE_KINDS, breach_ratio, short_ts, slice_text
from detector.web.svg import fmt_num, fmt_pct, paired_bars

__all__ = ["Dist", "current_window", "feature_distribution", "distribution_svg", "chart_targets", "stats_for"]


@dataclass
class Dist:
    """Reference vs current shares of one feature (or the score) in one slice row."""

    feature: str
    slice: dict[str, str]
    kind: str  # numeric | categorical
    labels: list[str]
    ref: list[float]
    cur: list[float]
    n: int  # events in the current window's row
    source: str  # which window, which reference
    notes: list[str] = field(default_factory=list)

    @property
    def distance(self) -> float:
        """Half the L1 distance between the two share vectors (0 = same, 1 = disjoint)."""
        return 0.5 * float(sum(abs(a - b) for a, b in zip(self.ref, self.cur, strict=True)))


def current_window(ms: Any) -> tuple[Any, str]:
    """The window to chart: the last closed one (``ms.last_window``), else the newest open one."""
    w = getattr(ms, "last_window", None)
    if w is not None:
        return w, f"last closed window {short_ts(w.start)}–{short_ts(w.end)[11:]} UTC"
    wins = getattr(ms, "windows", None) or {}
    if wins:
        w = wins[max(wins)]
        return w, f"open window from {short_ts(w.start)} UTC (so far)"
    return None, ""


def _reference(lay: Any, row: int, name: str, w: Any) -> tuple[Any, str]:
    """The training profile a row is compared with (same hours for seasonal features)."""
    from detector.core.inputs.layout import SCORE

    hours = None
    hourly = getattr(lay.ref, "hourly", None) or {}
    if name != SCORE and hourly.get("counts") and name in hourly.get("features", {}):
        try:
            from detector.core.reference.hourly import hour_weights

            hours = hour_weights(w.start, w.end, hourly["counts"])
        except Exception:  # noqa: BLE001 - fall back to the all-hours profile
            hours = None
    try:
        prof = lay.ref_for_row(row, name, hours)
    except Exception:  # noqa: BLE001
        prof = None
    what = "training, same hours of day" if hours is not None else "training"
    if prof is None and row != 0:
        glob = lay.score_profile if name == SCORE else lay.ref.features.get(name)
        return glob, "training, all traffic (no training profile for this slice)"
    return prof, what


def feature_distribution(ms: Any, feature: str, slice_: dict[str, str] | None = None) -> Dist | None:
    """Bin shares of ``feature`` ("score" = the model score) in the charted window vs its reference.

    Numeric features use the reference's decile (coarse) bins, plus the below-training-minimum,
    above-training-maximum and missing bins when either side has mass there; categorical features
    the most prominent categories, "unseen / other" and missing. None when there is no window
    yet, the feature is unknown, or the slice is not tracked.
    """
    from detector.core.inputs.layout import SCORE

    w, source = current_window(ms)
    if w is None:
        return None
    lay = ms.layout
    sl = dict(slice_ or {})
    try:
        row = lay.row_of(sl)
    except Exception:  # noqa: BLE001 - a multi-key slice: not a layout row
        row = None
    if row is None:
        return None
    name = SCORE if feature in ("score", SCORE) else feature
    if name == SCORE or name in lay.numeric:
        return _numeric_dist(lay, w, row, name, feature, sl, source)
    if name in lay.categorical:
        return _categorical_dist(lay, w, row, name, sl, source)
    return None


def _edge_label(x: float) -> str:
    return fmt_num(x, 3)


def _numeric_dist(lay: Any, w: Any, row: int, name: str, feature: str, sl: dict[str, str], source: str) -> Dist | None:
    from detector.core.inputs.layout import SCORE

    j = lay.n_num_blocks - 1 if name == SCORE else lay.numeric.index(name)
    off, size = int(lay.num_offsets[j]), int(lay.num_sizes[j])
    counts = np.asarray(w.num[row, off : off + size], dtype=np.float64)
    fine, miss = counts[:-1], float(counts[-1])
    edges = np.asarray(lay.score_edges if name == SCORE else lay.num_edges[j], dtype=np.float64)
    g = np.asarray(lay.coarse[j])
    if g.size != fine.size:
        return None
    nc = int(g.max()) + 1
    cur = np.bincount(g, weights=fine, minlength=nc)
    prof, what = _reference(lay, row, name, w)
    notes: list[str] = []
    if prof is not None and len(getattr(prof, "freqs", []) or []) == fine.size:
        mr = float(prof.missing_rate)
        ref = np.bincount(g, weights=np.asarray(prof.freqs, dtype=np.float64), minlength=nc) * (1.0 - mr)
        ref_miss = mr
    else:
        ref, ref_miss = np.zeros(nc), 0.0
        what = "no training profile"
        notes.append("no training distribution to compare with")
    total = float(fine.sum() + miss)
    if total <= 0:
        return None
    cur_sh = cur / total
    labels: list[str] = []
    r_out: list[float] = []
    c_out: list[float] = []
    for c in range(nc):
        idx = np.flatnonzero(g == c)
        lo_b, hi_b = int(idx[0]), int(idx[-1])
        if hi_b == 0:
            lab = f"< {_edge_label(edges[0])}"
        elif lo_b == fine.size - 1:
            lab = f"> {_edge_label(edges[-1])}"
        else:
            lab = f"{_edge_label(edges[lo_b - 1])}–{_edge_label(edges[hi_b])}"
        is_edge = hi_b == 0 or lo_b == fine.size - 1
        if is_edge and ref[c] < 1e-9 and cur_sh[c] < 1e-9:
            continue
        labels.append(lab)
        r_out.append(float(ref[c]))
        c_out.append(float(cur_sh[c]))
    if ref_miss > 1e-9 or miss > 0:
        labels.append("missing")
        r_out.append(float(ref_miss))
        c_out.append(miss / total)
    below = cur_sh[0] if nc else 0.0
    above = cur_sh[-1] if nc else 0.0
    if below + above >= 0.01:
        notes.append(f"{fmt_pct(below + above)} of current values outside the training range")
    return Dist(feature if feature != SCORE else "score", sl, "numeric", labels, r_out, c_out, int(total),
                f"{what} vs {source}", notes)


def _categorical_dist(lay: Any, w: Any, row: int, name: str, sl: dict[str, str], source: str) -> Dist | None:
    j = lay.categorical.index(name)
    off, size = int(lay.cat_offsets[j]), int(lay.cat_sizes[j])
    counts = np.asarray(w.cat[row, off : off + size], dtype=np.float64)
    vocab = lay.cat_vocab[name]
    K = len(vocab)
    total = float(counts.sum())
    if total <= 0 or counts.size != K + 2:
        return None
    names = [""] * K
    for cat, code in vocab.items():
        names[code] = cat
    prof, what = _reference(lay, row, name, w)
    if prof is not None and hasattr(prof, "categories"):
        mr = float(prof.missing_rate)
        ref_known = np.array([float(prof.categories.get(c, 0.0)) for c in names])
        ref = np.concatenate([ref_known, [max(0.0, 1.0 - ref_known.sum())]]) * (1.0 - mr)
    else:
        ref, mr, what = np.zeros(K + 1), 0.0, "no training profile"
    cur = counts / total
    order = sorted(range(K), key=lambda k: -max(ref[k], cur[k]))
    top = [k for k in order[:8] if max(ref[k], cur[k]) > 0]
    rest = [k for k in range(K) if k not in top]
    labels = [names[k] for k in top]
    r_out = [float(ref[k]) for k in top]
    c_out = [float(cur[k]) for k in top]
    if rest:
        labels.append(f"{len(rest)} other known")
        r_out.append(float(sum(ref[k] for k in rest)))
        c_out.append(float(sum(cur[k] for k in rest)))
    labels.append("unseen / rare")
    r_out.append(float(ref[K]))
    c_out.append(float(cur[K]))
    if mr > 0 or counts[K + 1] > 0:
        labels.append("missing")
        r_out.append(mr)
        c_out.append(float(cur[K + 1]))
    notes = []
    unseen = {}
    try:
        unseen = dict(w.unseen[j]) if row == 0 else {}
    except (IndexError, AttributeError, TypeError):
        unseen = {}
    if unseen:
        top_u = sorted(unseen.items(), key=lambda kv: -kv[1])[:4]
        notes.append("values never seen in training: " + ", ".join(f"{k!r} ({v})" for k, v in top_u))
    return Dist(name, sl, "categorical", labels, r_out, c_out, int(total), f"{what} vs {source}", notes)


def distribution_svg(d: Dist, *, width: int = 560, height: int = 230) -> str:
    hl = [abs(a - b) >= 0.05 for a, b in zip(d.ref, d.cur, strict=True)]
    title = f"{d.feature} ({slice_text(d.slice)}): training vs current share per bin"
    return paired_bars(d.labels, d.ref, d.cur, title=title, width=width, height=height, highlight=hl,
                       names=("training", f"current (n={d.n:,})"))


def chart_targets(engine: Any, model: str, alerts: Iterable[dict[str, Any]], *, extra: int = 0,
                  limit: int = 8) -> list[tuple[str, dict[str, str], list[dict[str, Any]]]]:
    """(feature, slice, alerts) to chart: features of the given alerts first, then up to ``extra``
    more from the last window's statistics furthest past their threshold."""
    out: dict[tuple[str, str], tuple[str, dict[str, str], list[dict[str, Any]]]] = {}
    for a in alerts:
        if a.get("model") != model or a.get("kind") not in FEATURE_KINDS or not a.get("feature"):
            continue
        sl = a.get("slice") or {}
        key = (str(a["feature"]), slice_key(sl))
        if key not in out:
            out[key] = (str(a["feature"]), dict(sl), [])
        out[key][2].append(a)
    if extra > 0:
        ms = engine.models.get(model)
        ranked: list[tuple[float, str, dict[str, str]]] = []
        for (kind, stat, feat, _sk), (val, sl, thr) in list(getattr(ms, "last_stats", {}).items()):
            if not feat or kind not in FEATURE_KINDS:
                continue
            r = breach_ratio(stat, val, thr)
            if r >= 1.5:  # well past: a statistic at its threshold without significance is noise
                ranked.append((r, feat, dict(sl)))
        added = 0
        for _r, feat, sl in sorted(ranked, key=lambda x: -x[0]):
            key = (feat, slice_key(sl))
            if key in out or any(f == feat for f, _ in out):
                continue  # one chart per feature is enough to show the story; prefer other features
            out[key] = (feat, sl, [])
            added += 1
            if added >= extra:
                break
    return list(out.values())[:limit]


def stats_for(ms: Any, feature: str, sl: dict[str, str]) -> list[tuple[str, str, float, float]]:
    """(kind, statistic, value, threshold) of one feature and slice in the last window, worst first."""
    from detector.core.inputs.layout import SCORE

    sk = slice_key(sl)
    names = {feature, SCORE, "score"} if feature in ("score", SCORE) else {feature}
    rows = [(k, s, v, t) for (k, s, f, key), (v, _sl, t) in list(getattr(ms, "last_stats", {}).items())
            if f in names and key == sk]
    return sorted(rows, key=lambda r: -breach_ratio(r[1], r[2], r[3]))
