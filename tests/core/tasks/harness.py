"""A small stand-in for the outcome monitor, to drive a task over simulated traffic in tests.

It does what :class:`detector.core.outcomes.monitor.OutcomeMonitor` does for a binary model, for any
task: predictions fold into hourly cohorts per slice row, a label counts if it arrives before
its cohort is evaluated (at cohort end + a fixed maturity), each cohort is checked against the
trailing baseline of clean cohorts (and the trailing day, for training comparisons), findings
go through :func:`detector.core.decisions.select.select_findings` (BH + effect gates + localisation), and
the attribution steps of ``OutcomeMonitor._explain`` that matter here are applied (performance
with stable inputs and labels -> concept_drift; one finding per row, most specific first).
Alerts use the engine's firing rule: a warning after two consecutive windows, critical at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from detector.core.decisions.select import Finding, select_findings
from detector.core.inputs.timeparse import parse_timestamps
from detector.core.outcomes.tasks.base import CheckContext, Counters, labels_moved

PRIORITY = ["label_drift", "concept_drift", "performance", "calibration", "score_drift", "multivariate_drift"]


@dataclass
class View:
    rows: np.ndarray
    comp: np.ndarray
    events: np.ndarray


@dataclass
class Window:
    start: float
    evaluated_at: float
    counters: Counters
    findings: list[Finding] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    checked: bool = False


@dataclass
class Traffic:
    """Columnar view of simulated events for one task."""

    ts: np.ndarray
    ridx: np.ndarray
    row_labels: list[str]
    pred: Any  # PredictionColumns
    features: dict[str, np.ndarray]
    label_y: np.ndarray  # decoded label per prediction (NaN = none)
    label_ts: np.ndarray  # arrival time per prediction (inf = never)


def traffic(task: Any, events: list[tuple[float, str, dict[str, Any]]], slice_dims: tuple[str, ...],
            threshold: float = 0.5) -> Traffic:
    preds = [e for _, t, e in events if t == "predictions"]
    ts = parse_timestamps([e["ts"] for e in preds])
    p = task.prediction_columns(preds)
    if task.name == "binary":
        p.klass = np.where(np.isnan(p.value), -1, p.value >= threshold).astype(np.int64)
    labels_rows: list[str] = ["all"]
    ridx = np.zeros((len(preds), 1 + len(slice_dims)), dtype=np.int64)
    off = 1
    for d, dim in enumerate(slice_dims):
        vals = sorted({e["slices"][dim] for e in preds})
        code = {v: i for i, v in enumerate(vals)}
        ridx[:, d + 1] = off + np.array([code[e["slices"][dim]] for e in preds])
        labels_rows += [f"{dim}={v}" for v in vals]
        off += len(vals)
    names = sorted({k for e in preds[:2000] for k in e["features"]})
    feats: dict[str, np.ndarray] = {}
    for k in names:
        col = [e["features"].get(k) for e in preds]
        if all(v is None or isinstance(v, int | float) for v in col):
            feats[k] = np.array([np.nan if v is None else v for v in col], dtype=np.float64)
        else:
            feats[k] = np.array(col, dtype=object)
    pos = {e["prediction_id"]: i for i, e in enumerate(preds)}
    labs = [(t, e) for t, top, e in events if top == "labels" and e["prediction_id"] in pos]
    dec = task.decode_labels([e["label"] for _, e in labs])
    label_y = np.full(len(preds), np.nan)
    label_ts = np.full(len(preds), np.inf)
    rev = np.full(len(preds), -1)
    for (t, e), y, ok in zip(labs, dec.y.tolist(), dec.ok.tolist(), strict=True):
        i = pos[e["prediction_id"]]
        r = int(e.get("revision") or 0)
        if ok and r >= rev[i]:  # the final label: highest revision (the join's rule); time of the first label
            label_y[i], rev[i] = y, r
            label_ts[i] = min(label_ts[i], t)
    return Traffic(ts, ridx, labels_rows, p, feats, label_y, label_ts)


def cohorts(task: Any, tr: Traffic, window: float = 3600.0, maturity: float = 12 * 3600.0,
            with_features: bool = True) -> list[Window]:
    rows = len(tr.row_labels)
    start = np.floor(tr.ts / window) * window
    out = []
    for s in np.unique(start).tolist():
        sel = np.flatnonzero(start == s)
        c = task.counters(rows)
        feats = {k: v[sel] for k, v in tr.features.items()} if with_features else None
        task.add_predictions(c, tr.ridx[sel], tr.pred.take(sel), feats)
        lab = sel[tr.label_ts[sel] < s + window + maturity]
        if lab.size:
            task.add_pairs(c, tr.ridx[lab], tr.pred.value[lab], tr.pred.klass[lab], tr.label_y[lab], np.ones(lab.size))
        out.append(Window(s, s + window + maturity, c))
    return out


def evaluate(task: Any, wins: list[Window], *, baseline: int = 24, min_baseline: int = 3, day: int = 24,
             fdr_q: float = 0.001, inputs_stable: bool = True, extra: Any = None) -> list[Window]:
    """Check every cohort against the trailing baseline of clean ones (``extra(win, cur, ctx)`` adds results)."""
    clean: list[Counters] = []
    for k, w in enumerate(wins):
        c = w.counters
        if len(clean) >= min_baseline:
            active = np.flatnonzero(c.arrays["cnt"][:, 0] > 0)
            real = np.concatenate([[0], active[active != 0]])
            srows = real[real != 0]
            comp = np.concatenate([np.zeros(real.size, bool), np.ones(srows.size, bool)])
            cur = c.pseudo(real, srows)
            base = Counters.total(clean[-baseline:]).pseudo(real, srows)
            d = Counters.total([x.counters for x in wins[max(0, k - day + 1): k + 1]]).pseudo(real, srows) if k + 1 >= day else None
            ctx = CheckContext(comp=comp, inputs_stable=inputs_stable, day=d)
            results = task.checks(cur, base, ctx)
            if extra is not None:
                results += extra(w, cur, ctx)
            rows = np.concatenate([real, srows])
            labelled = cur.arrays["cnt"][:, 3 if task.name == "multiclass" else (4 if task.name == "regression" else 6)]
            found = select_findings(results, View(rows, comp, labelled), fdr_q)  # type: ignore[arg-type]
            moved = labels_moved(results)
            moved_rows = {int(r) for r in rows[np.flatnonzero(moved)]} if moved.size else set()
            w.findings, w.results, w.checked = _attribute(found, inputs_stable, moved_rows), results, True
        if not w.findings:
            clean.append(c)
    return wins


def _attribute(findings: list[Finding], inputs_stable: bool, moved: set[int]) -> list[Finding]:
    label_rows = {f.row for f in findings if f.kind == "label_drift"} | moved
    out = []
    for f in findings:
        if f.kind == "performance" and inputs_stable and f.row not in label_rows and 0 not in label_rows \
                and not f.statistic.startswith("estimated_"):
            f = replace(f, kind="concept_drift")
        out.append(f)
    if any(f.kind == "concept_drift" and f.row == 0 for f in out):  # outcome shares moving with it are part of it
        out = [replace(f, kind="concept_drift") if f.kind == "label_drift" else f for f in out]
    g = {f.kind for f in out if f.row == 0}
    out = [f for f in out if f.row == 0 or f.kind not in g]
    best: dict[int, Finding] = {}
    for f in sorted(out, key=lambda f: (PRIORITY.index(f.kind) if f.kind in PRIORITY else 99, -f.effect)):
        best.setdefault(f.row, f)
    return list(best.values())


def alerts(wins: list[Window]) -> list[dict[str, Any]]:
    """First firing of each (kind, statistic, row): a warning in two consecutive windows, or a critical one."""
    fired: dict[tuple[str, str, int], dict[str, Any]] = {}
    prev: set[tuple[str, str, int]] = set()
    for w in wins:
        now = set()
        for f in w.findings:
            key = (f.kind, f.statistic, f.row)
            now.add(key)
            if key not in fired and (f.severity == "critical" or key in prev):
                fired[key] = {"kind": f.kind, "statistic": f.statistic, "row": f.row, "window": w.start,
                              "at": w.evaluated_at, "severity": f.severity, "summary": f.summary}
        prev = now
    return sorted(fired.values(), key=lambda a: a["at"])


def multivariate(model: Any, tr: Traffic, *, window: float = 3600.0, fdr_q: float = 0.001) -> list[Window]:
    """Multivariate drift per window over ``tr`` (history: recent clean windows, or the same hour on previous days
    when the model has no hourly standardisation)."""
    from detector.core.checks.multivariate.check import add_rows, multivariate_checks, multivariate_counters

    rows = len(tr.row_labels)
    start = np.floor(tr.ts / window) * window
    hours = np.floor(np.mod(tr.ts, 86400.0) / 3600.0).astype(np.int64)
    clean: list[tuple[float, Counters]] = []
    out = []
    for s in np.unique(start).tolist():
        sel = np.flatnonzero(start == s)
        c = multivariate_counters(model, rows)
        add_rows(c, tr.ridx[sel], model, {k: v[sel] for k, v in tr.features.items() if v.dtype.kind == "f"}, hours[sel])
        active = np.flatnonzero(c.arrays["err"][:, 0] > 0)
        real = np.concatenate([[0], active[active != 0]])
        srows = real[real != 0]
        comp = np.concatenate([np.zeros(real.size, bool), np.ones(srows.size, bool)])
        cur = c.pseudo(real, srows)
        past = [h for _, h in clean[-24:]] if model.hourly is not None else [h for t, h in clean if (s - t) % 86400 == 0][-7:]
        hist = np.stack([h.pseudo(real, srows).arrays["err"] for h in past]) if past else None
        res = multivariate_checks(model, cur, hist, comp)
        found = select_findings(res, View(np.concatenate([real, srows]), comp, cur.arrays["err"][:, 0]), fdr_q)  # type: ignore[arg-type]
        w = Window(s, s + window, c, found, res, True)
        out.append(w)
        if not found:
            clean.append((s, c))
    return out
