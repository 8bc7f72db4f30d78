"""How predictions' labels get into cohorts: matched pairs folded per prediction-time window and slice row.

:func:`fold_matches` takes the label join's matches (:class:`~detector.core.outcomes.labels.Matches`) of an
:class:`~detector.core.outcomes.monitor.OutcomeMonitor` and folds every (prediction, label) pair into the cohort
of its prediction window, per slice row (:class:`~detector.core.outcomes.cohort.Cohort`): first labels update the
model's label-delay histograms and are folded by :func:`fold_pairs` - only those in by the cohort's end + the
label age, so every cohort (current and baseline) is measured at the same label age and labels in flight never
look like a base-rate drop; the later ones are counted as ``late``. While the label age is not chosen yet the
pairs are held (:mod:`detector.core.outcomes.maturity`). Corrections move the pair to its new label, never
double count it. :func:`take_held` / :func:`add_held` hand held pairs between workers
(:mod:`detector.core.outcomes.exchange`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detector.core.outcomes.cohort import C, fold
from detector.core.outcomes.labels import N_DELAY, Matches, delay_bins
from detector.core.outcomes.model_state import OutcomeModel as _Model

__all__ = ["HELD", "fold_matches", "fold_pairs", "take_held", "add_held"]

HELD = 2  # label-store ``counted`` flag: matched, but not (yet) in its cohort's counts (held or late)


def fold_matches(mon: Any, mt: Matches) -> None:
    if mt.slots.size == 0:
        return
    for lis in mon.listeners:
        lis.on_matches(mt)
    store = mon.join.store
    L = mon.L
    for mi in np.unique(mt.rows.model).tolist():
        m = mon.by_idx[mi]
        sel = np.flatnonzero(mt.rows.model == mi)
        rows = mt.rows
        D = len(m.layout.dims)
        ridx = m.ridx(rows.codes[sel, :D])
        ts, score, pred = rows.ts[sel], rows.score[sel], rows.pred[sel]
        new, old, slots = mt.label[sel].astype(np.float64), mt.old[sel], mt.slots[sel]
        counted = rows.counted[sel]
        first = np.isnan(old)
        R = m.layout.n_rows
        if first.any():
            f = np.flatnonzero(first)
            db = delay_bins(mt.delay[sel][f])
            m.delay_all += fold(ridx[f], R, N_DELAY, db, np.ones(f.size))
            m.delay_cls += np.bincount(m.y01(new[f]).astype(np.int64) * N_DELAY + db,
                                       minlength=2 * N_DELAY).reshape(2, N_DELAY)
            m.delay_total += np.bincount(db, minlength=N_DELAY)
            m.delay_sum += float(np.maximum(mt.delay[sel][f], 0.0).sum())
        ones = np.ones(sel.size)
        m.arrivals[:, 0] += fold(ridx, R, 1, np.zeros(sel.size, dtype=np.int64), ones)[:, 0]
        if (~first).any():
            k = np.flatnonzero(~first)
            m.arrivals[:, 1] += fold(ridx[k], R, 1, np.zeros(k.size, dtype=np.int64), np.ones(k.size))[:, 0]
        starts = np.floor(ts / L) * L
        for s in np.unique(starts).tolist():
            here = starts == s
            c = m.open.get(s)
            target = c if c is not None else m.done.get(s)
            f = np.flatnonzero(here & first)
            if f.size and c is not None:
                pairs = {"start": np.full(f.size, s), "ridx": ridx[f], "score": score[f], "pred": pred[f], "y": new[f],
                         "delay": mt.delay[sel][f], "label_ts": ts[f] + mt.delay[sel][f], "slot": slots[f],
                         "end": np.full(f.size, s + L)}
                if m.age.horizon > 0:
                    fold_pairs(mon, m, pairs)
                else:  # the label age is not known yet: hold them (detector.core.outcomes.maturity)
                    store.set_counted(slots[f], np.full(f.size, HELD, dtype=np.int8))
                    for batch in m.age.hold(pairs):
                        fold_pairs(mon, m, batch, gated=False)
            elif f.size and target is not None:
                target.count_late(np.asarray(score[f], dtype=np.float64), m.y01(new[f]))
            held = np.flatnonzero(here & ~first & (counted == HELD))
            if held.size and m.age.horizon <= 0:  # a correction of a pair still held: fold it corrected
                m.age.correct(slots[held], new[held])
            k = np.flatnonzero(here & ~first & (counted == 1))
            if k.size and target is not None:  # a correction: move the pair to its new label
                r, sc, pr = ridx[k], score[k], pred[k]
                target.add_pairs(r, sc, m.gpred(pr), m.y01(old[k].astype(np.float64)), -np.ones(k.size), None)
                target.add_pairs(r, sc, m.gpred(pr), m.y01(new[k]), np.ones(k.size), None)
                if target.tc is not None:
                    m.task.add_pairs(target.tc, r, sc, pr.astype(np.int64), old[k], -np.ones(k.size))
                    m.task.add_pairs(target.tc, r, sc, pr.astype(np.int64), new[k], np.ones(k.size))
                target.cnt[:, C["corr"]] += fold(r, R, 1, np.zeros(k.size, dtype=np.int64), np.ones(k.size))[:, 0]


def fold_pairs(mon: Any, m: _Model, p: dict[str, np.ndarray], gated: bool = True) -> None:
    """Fold first labels into their open cohorts: those that arrived by the cohort's end + the label
    age (``gated``), so a cohort counts the same labels whenever it is evaluated (a replay evaluates
    days of cohorts at once, a live worker on time); the others are late."""
    A = m.age.horizon
    store = mon.join.store
    for s in np.unique(p["start"]).tolist():
        idx = np.flatnonzero(p["start"] == s)
        c = m.open.get(s)
        if c is None:
            continue
        c.gate = min(c.gate, A if gated else 0.0)
        if gated:
            in_time = p["label_ts"][idx] <= p["end"][idx] + A
            late = idx[~in_time]
            c.count_late(np.asarray(p["score"][late], dtype=np.float64), m.y01(p["y"][late]))
            local = late[p["slot"][late] >= 0]  # pairs another worker joined have no slot here
            store.set_counted(p["slot"][local], np.full(local.size, HELD, dtype=np.int8))
            idx = idx[in_time]
        if idx.size:
            c.add_pairs(p["ridx"][idx], p["score"][idx], m.gpred(p["pred"][idx]), m.y01(p["y"][idx]), np.ones(idx.size),
                        delay_bins(p["delay"][idx]))
            if c.tc is not None:
                m.task.add_pairs(c.tc, p["ridx"][idx], p["score"][idx], p["pred"][idx].astype(np.int64), p["y"][idx],
                                 np.ones(idx.size))
            local = idx[p["slot"][idx] >= 0]
            store.set_counted(p["slot"][local], np.ones(local.size, dtype=np.int8))


def take_held(mon: Any, m: _Model) -> list[dict[str, np.ndarray]]:
    """A unit's first pairs held for the label age, handed on whole (an aggregator chooses the age
    and gates them: see :func:`detector.core.outcomes.exchange.take_outcome_step`)."""
    out = m.age.release()
    for b in out:
        mon.join.store.set_counted(b["slot"], np.ones(len(b["slot"]), dtype=np.int8))
    return out


def add_held(mon: Any, m: _Model, batch: dict[str, np.ndarray]) -> None:
    """First pairs another worker joined (``slot`` -1, rows already re-keyed): folded gated once the
    label age is known, held with this monitor's own until then."""
    if m.age.horizon > 0:
        fold_pairs(mon, m, batch)
    else:
        for b in m.age.hold(batch):
            fold_pairs(mon, m, b, gated=False)
