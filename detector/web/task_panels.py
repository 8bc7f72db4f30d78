"""Task-appropriate outcome panels: what a regression or multiclass model's matured labels say.

A binary classifier is judged by ROC AUC, precision and recall at its threshold and calibration
(the report's reliability panel); a regression model by its errors in the target's units (MAE,
RMSE, bias = mean prediction - target, |error| quantiles) and a multiclass model by accuracy,
macro-F1 and per-class recall and precision. Each number sits next to the same number in training
(the reference's task block), so a reader sees the change, not just a level.

* :func:`task_outcomes_html` - the report's "outcomes" section of a regression / multiclass model;
* :func:`performance_line` - one line per model on the status page (any task, binary included).

Values come from the outcome monitor's stats of the last matured cohort (``stats(model)``:
``slices[""]`` is all traffic; a multiclass row carries ``class_recall`` / ``class_precision``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from detector.web import esc, finite
from detector.web.svg import fmt_num, fmt_pct

__all__ = ["task_outcomes_html", "performance_line", "training_class_metrics", "is_task_model"]

MAX_SLICES = 12
OTHER = "__other__"


def training_class_metrics(task: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Per class: recall and precision in training (from the reference's confusion, rows = true class)."""
    conf = np.asarray(task.get("confusion") or [], dtype=np.float64)
    classes = list(task.get("classes") or [])
    if conf.ndim != 2 or conf.shape != (len(classes), len(classes)):
        return {}
    tp = np.diag(conf)
    with np.errstate(divide="ignore", invalid="ignore"):
        rec, prec = tp / conf.sum(1), tp / conf.sum(0)
    return {c: {"recall": float(rec[i]), "precision": float(prec[i])} for i, c in enumerate(classes)}


def _kpis(items: list[tuple[str, str, bool]]) -> str:
    return '<div class="kpis">' + "".join(
        f'<div class="kpi{" bad" if bad else ""}"><div class="v">{esc(v)}</div><div class="k">{esc(k)}</div></div>'
        for k, v, bad in items) + "</div>"


def _worse(now: Any, train: Any, higher_is_better: bool, rel: float = 0.1) -> bool:
    """A KPI shown as bad: at least ``rel`` (relative) worse than training."""
    a, b = finite(now), finite(train)
    if a is None or b is None or b == 0:
        return False
    return (a < b * (1 - rel)) if higher_is_better else (a > b * (1 + rel))


def _regression(glob: Mapping[str, Any], task: Mapping[str, Any]) -> str:
    err = task.get("errors") or {}
    q = err.get("abs_quantiles") or {}
    items = [
        ("MAE now / training", f"{fmt_num(finite(glob.get('mae')))} / {fmt_num(finite(err.get('mae')))}",
         _worse(glob.get("mae"), err.get("mae"), False)),
        ("RMSE now / training", f"{fmt_num(finite(glob.get('rmse')))} / {fmt_num(finite(err.get('rmse')))}",
         _worse(glob.get("rmse"), err.get("rmse"), False)),
        ("bias (prediction − target) now / training", f"{fmt_num(finite(glob.get('bias')))} / {fmt_num(finite(err.get('bias')))}",
         False),
        ("R²", fmt_num(finite(glob.get("r2"))), False),
        ("|error| p50 / p90 / p99", " / ".join(fmt_num(finite(glob.get(f"abs_error_p{p}"))) for p in (50, 90, 99)), False),
        ("… in training", " / ".join(fmt_num(finite(q.get(f"p{p}"))) for p in (50, 90, 99)), False),
        ("mean prediction / target", f"{fmt_num(finite(glob.get('mean_prediction')))} / {fmt_num(finite(glob.get('mean_target')))}",
         False),
    ]
    return _kpis(items)


def _multiclass(glob: Mapping[str, Any], task: Mapping[str, Any]) -> str:
    met = task.get("metrics") or {}
    items = [
        ("accuracy now / training", f"{fmt_pct(finite(glob.get('accuracy')))} / {fmt_pct(finite(met.get('accuracy')))}",
         _worse(glob.get("accuracy"), met.get("accuracy"), True, 0.05)),
        ("macro-F1 now / training", f"{fmt_pct(finite(glob.get('macro_f1')))} / {fmt_pct(finite(met.get('macro_f1')))}",
         _worse(glob.get("macro_f1"), met.get("macro_f1"), True, 0.05)),
        ("mean confidence", fmt_pct(finite(glob.get("mean_confidence"))), False),
    ]
    train = training_class_metrics(task)
    rec, prec = glob.get("class_recall") or {}, glob.get("class_precision") or {}
    rows = []
    for c in [c for c in (task.get("classes") or []) if c in rec or c in prec]:
        t = train.get(c) or {}
        bad = _worse(rec.get(c), t.get("recall"), True, 0.15)
        name = "other classes" if c == OTHER else c
        cls = ' class="bad"' if bad else ""
        rows.append(f'<tr{cls}><td>{esc(name)}</td>'
                    f'<td class="num">{fmt_pct(finite(rec.get(c)))}</td><td class="num">{fmt_pct(finite(t.get("recall")))}</td>'
                    f'<td class="num">{fmt_pct(finite(prec.get(c)))}</td><td class="num">{fmt_pct(finite(t.get("precision")))}</td></tr>')
    table = ('<table class="small" data-task-panel="classes"><tr><th>class</th><th class="num">recall</th>'
             '<th class="num">in training</th><th class="num">precision</th><th class="num">in training</th></tr>'
             + "".join(rows) + "</table>") if rows else ""
    return _kpis(items) + table


_SLICE_COLS = {"regression": (("mae", "MAE", fmt_num), ("rmse", "RMSE", fmt_num), ("bias", "bias", fmt_num)),
               "multiclass": (("accuracy", "accuracy", fmt_pct), ("macro_f1", "macro-F1", fmt_pct))}


def _slices(st: Mapping[str, Any], task_name: str) -> str:
    cols = _SLICE_COLS[task_name]
    rows = sorted(((k, v) for k, v in (st.get("slices") or {}).items() if k), key=lambda kv: -(kv[1].get("labels") or 0))
    if not rows:
        return ""
    head = "".join(f'<th class="num">{esc(t)}</th>' for _, t, _ in cols)
    body = "".join(f"<tr><td>{esc(k)}</td><td class=\"num\">{fmt_num(v.get('labels'))}</td>"
                   + "".join(f'<td class="num">{f(finite(v.get(key)))}</td>' for key, _, f in cols) + "</tr>"
                   for k, v in rows[:MAX_SLICES])
    return (f'<table class="small" data-task-panel="slices"><tr><th>slice</th><th class="num">labelled</th>{head}</tr>'
            f"{body}</table>")


def is_task_model(st: Mapping[str, Any]) -> bool:
    """Outcome stats of a regression / multiclass model (these panels), not of a binary classifier."""
    return st.get("task") in _SLICE_COLS


def task_outcomes_html(st: Mapping[str, Any], task: Mapping[str, Any], maturity: str) -> str:
    """The outcome panel of a regression / multiclass model (``st``: its outcome stats, ``task``: the reference's
    task block, ``maturity``: the label age it was evaluated at, as text)."""
    name = str(st.get("task") or task.get("task") or "")
    glob = (st.get("slices") or {}).get("") or {}
    win = st.get("window") or {}
    caption = (f"last matured cohort {esc(str(win.get('start', ''))[:16])} – {esc(str(win.get('end', ''))[11:16])} UTC, "
               f"evaluated at label age {esc(maturity)}") if win else "no matured cohort yet"
    if name not in _SLICE_COLS or not glob:
        return ('<p class="empty">No matured labelled cohort: send labels (--labels L.jsonl or the `labels` topic) and '
                'cover at least the label delay.</p>')
    panel = _regression(glob, task) if name == "regression" else _multiclass(glob, task)
    return (f'<div data-task-panel="{esc(name)}">{panel}<p class="small muted">{caption}; labelled share '
            f"{fmt_pct(finite(glob.get('match_rate')))}</p>{_slices(st, name)}</div>")


def performance_line(st: Mapping[str, Any]) -> str | None:
    """One status-page line: the last matured cohort's realised performance, in its task's terms (None: none yet)."""
    glob = (st.get("slices") or {}).get("") or {}
    if not glob:
        return None
    task = st.get("task") or "binary"
    if task == "regression":
        parts = [f"MAE {fmt_num(finite(glob.get('mae')))}", f"RMSE {fmt_num(finite(glob.get('rmse')))}",
                 f"bias {fmt_num(finite(glob.get('bias')))}"]
    elif task == "multiclass":
        parts = [f"accuracy {fmt_pct(finite(glob.get('accuracy')))}", f"macro-F1 {fmt_pct(finite(glob.get('macro_f1')))}"]
        rec = {k: v for k, v in (glob.get("class_recall") or {}).items() if finite(v) is not None and k != OTHER}
        if rec:
            worst = min(rec, key=lambda k: rec[k])
            parts.append(f"lowest recall {fmt_pct(rec[worst])} ({worst})")
    else:
        parts = [f"ROC AUC {fmt_num(finite(glob.get('auc')), 3)}", f"precision {fmt_pct(finite(glob.get('precision')))}",
                 f"recall {fmt_pct(finite(glob.get('recall')))}"]
    labels = glob.get("labels")
    win = st.get("window") or {}
    when = f" (cohort {str(win.get('start', ''))[5:16]} UTC, {int(labels):,} labelled)" if win and labels else ""
    return esc("realised at label maturity" + when + ": " + ", ".join(parts))
