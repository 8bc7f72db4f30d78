"""Scenarios, faults and the event stream of the regression and multiclass simulated models.

A :class:`TaskScenario` names a model (``eta``: delivery-time regression, ``intent``:
support-ticket routing, see :mod:`.eta` / :mod:`.intent`), a traffic rate, a time span and
:class:`TaskFault` s. Traffic follows the same seasonal clock as the fraud simulator
(:mod:`detector.sim.world`: daily and weekly curves, local time zone), and so do the models'
inputs and outcomes (rush hours, evening intents), so a monitor that ignores the time of day
raises false alarms on clean traffic.

Fault kinds (``KINDS``: stage, expected alert kind, cause, action):

====================  ========  ======================  ================  ===========================================
kind                  stage     alert                   cause             what changes
====================  ========  ======================  ================  ===========================================
``concept_change``    label     ``concept_drift``       concept_drift     the input -> outcome relationship; inputs and
                                                                          the outcome's marginal stay as they were
``correlation_flip``  world     ``multivariate_drift``  covariate_drift   a feature pair's correlation changes sign;
                                                                          every marginal unchanged
``shuffled_join``     serving   ``multivariate_drift``  pipeline_skew     a feature comes from another row of the batch
``class_prior_drift`` label     ``label_drift``         label_drift       one class becomes more frequent (inputs stable)
====================  ========  ======================  ================  ===========================================

Random numbers come from :func:`detector.sim.world.rng_for` streams per (seed, domain, chunk,
column): a faulted run shares every value the fault does not touch with the clean run.

>>> sc = TaskScenario("x", "eta", hours=2, rate_per_hour=200)
>>> ev = simulate_task(sc)
>>> sorted({t for _, t, _ in ev}), sorted(ev[0][2])[:4]
(['labels', 'predictions'], ['features', 'model', 'model_version', 'prediction'])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

import numpy as np

from detector.sim.stream import hex_ids, ts_values
from detector.sim.tasks.eta import EtaModel
from detector.sim.tasks.intent import IntentModel
from detector.sim.tasks.model import Draw, TaskModel
from detector.sim.world import DEFAULT_START, World, rng_for, sample_times, to_epoch_ms

__all__ = ["TaskFault", "TaskScenario", "Draw", "KINDS", "simulate_task", "task_training", "model_of",
           "DOMAIN_SERVE", "DOMAIN_TRAIN"]

DOMAIN_SERVE, DOMAIN_TRAIN = 10, 11
S_TIME, S_DELAY, S_MISS, S_IDS = 0, 1, 2, 3
# each model draws its prediction ids from its own stream: two models of one seed never share an id
_ID_STREAM = {"eta": S_IDS, "intent": 4}
KINDS: dict[str, tuple[str, str, str, str]] = {
    "concept_change": ("label", "concept_drift", "concept_drift", "fix_model"),
    "correlation_flip": ("world", "multivariate_drift", "covariate_drift", "fix_data"),
    "shuffled_join": ("serving", "multivariate_drift", "pipeline_skew", "fix_data"),
    "class_prior_drift": ("label", "label_drift", "label_drift", "fix_model"),
}


@dataclass(frozen=True)
class TaskFault:
    kind: str
    onset_h: float
    end_h: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"TaskFault.kind {self.kind!r} is unknown; use one of {sorted(KINDS)}")
        if self.end_h is not None and self.end_h <= self.onset_h:
            raise ValueError(f"TaskFault({self.kind}): end_h {self.end_h} must be after onset_h {self.onset_h}")
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def weight(self, t_h: np.ndarray) -> np.ndarray:
        """1.0 while the fault is active at hours-since-start ``t_h``, else 0.0."""
        on = t_h >= self.onset_h
        if self.end_h is not None:
            on &= t_h < self.end_h
        return on.astype(np.float64)


def model_of(name: str) -> TaskModel:
    models: dict[str, TaskModel] = {"eta": EtaModel(), "intent": IntentModel()}
    if name not in models:
        raise ValueError(f"unknown task model {name!r}; use one of {sorted(models)}")
    return models[name]


@dataclass(frozen=True)
class TaskScenario:
    name: str
    model: str = "eta"
    hours: float = 72.0
    rate_per_hour: float = 1000.0
    faults: tuple[TaskFault, ...] = ()
    seed: int = 0
    start: datetime = DEFAULT_START
    tz_offset_hours: int = -5
    label_delay_median_h: float = 2.0
    label_delay_sigma: float = 1.0
    label_missing_rate: float = 0.05
    label_names_model: bool = False  # label events carry ``"model"`` (needed where several models' labels share a topic)

    @property
    def start_ms(self) -> int:
        return to_epoch_ms(self.start)

    def world(self) -> World:
        return World(rate_per_hour=self.rate_per_hour, tz_offset_hours=self.tz_offset_hours)

    def ground_truth(self) -> list[dict[str, Any]]:
        out = []
        for f in self.faults:
            stage, alert, cause, action = KINDS[f.kind]
            out.append({"fault": f.kind, "kind": alert, "cause": cause, "action": action, "stage": stage,
                        "onset_ts": self.start_ms / 1000 + f.onset_h * 3600,
                        "end_ts": None if f.end_h is None else self.start_ms / 1000 + f.end_h * 3600,
                        "params": dict(f.params)})
        return out


def _chunk(model: TaskModel, sc: TaskScenario, seed: int, domain: int, idx: int, t_ms: np.ndarray) -> Draw:
    t_h = (t_ms - sc.start_ms) / 3.6e6
    w = {f.kind: np.maximum(0.0, f.weight(t_h)) for f in sc.faults} if domain == DOMAIN_SERVE else {}
    params = {f.kind: f.params for f in sc.faults}
    return model.draw(seed, domain, idx, t_ms, sc.tz_offset_hours, w, params)


def _events(model: TaskModel, d: Draw, t_ms: np.ndarray, ids: list[str]) -> list[dict[str, Any]]:
    ts = ts_values(t_ms, "rfc3339")
    nums = {k: np.round(v, d.decimals.get(k, 3)).tolist() for k, v in d.num.items()}
    cats = {k: v.tolist() for k, v in d.cat.items()}
    sl = {k: v.tolist() for k, v in d.slices.items()}
    out = []
    for i in range(len(ids)):
        e: dict[str, Any] = {"prediction_id": ids[i], "model": model.name, "model_version": model.version, "ts": ts[i],
                             "features": {**{k: v[i] for k, v in nums.items()}, **{k: v[i] for k, v in cats.items()}},
                             "slices": {k: v[i] for k, v in sl.items()}}
        if d.prediction is not None:
            e["prediction"] = round(float(d.prediction[i]), 3)
        if d.predicted is not None:
            e["predicted_class"] = d.predicted[i]
        if d.scores is not None:
            e["scores"] = dict(zip(d.classes, np.round(d.scores[i], 4).tolist(), strict=True))
        out.append(e)
    return out


def simulate_task(sc: TaskScenario, seed: int | None = None) -> list[tuple[float, str, dict[str, Any]]]:
    """The scenario's prediction and label events, ``(ts seconds, topic, event)`` in event-time order.

    Labels arrive after a lognormal delay (median ``label_delay_median_h``); ``label_missing_rate``
    never arrive; labels due after the end are not emitted.
    """
    seed = sc.seed if seed is None else seed
    model = model_of(sc.model)
    world = sc.world()
    t0, end = sc.start_ms, sc.start_ms + int(round(sc.hours * 3.6e6))
    out: list[tuple[float, str, dict[str, Any]]] = []
    for idx, a in enumerate(range(t0, end, 3_600_000)):
        t_ms = sample_times(rng_for(seed, DOMAIN_SERVE, idx, S_TIME), world, a, min(a + 3_600_000, end))
        if t_ms.size == 0:
            continue
        d = _chunk(model, sc, seed, DOMAIN_SERVE, idx, t_ms)
        ids = hex_ids(rng_for(seed, DOMAIN_SERVE, idx, _ID_STREAM[model.name]).integers(0, 2**63, t_ms.size, dtype=np.uint64))
        for e, t in zip(_events(model, d, t_ms, ids), t_ms.tolist(), strict=True):
            out.append((t / 1000.0, "predictions", e))
        delay = np.exp(np.log(sc.label_delay_median_h * 3.6e6) + sc.label_delay_sigma *
                       rng_for(seed, DOMAIN_SERVE, idx, S_DELAY).standard_normal(t_ms.size))
        arrive = t_ms + delay.astype(np.int64)
        keep = (rng_for(seed, DOMAIN_SERVE, idx, S_MISS).random(t_ms.size) >= sc.label_missing_rate) & (arrive < end)
        lts = ts_values(arrive, "rfc3339")
        for i in np.flatnonzero(keep).tolist():
            y = d.label[i]
            lab = {"prediction_id": ids[i], "ts": lts[i], "label": round(float(y), 3) if model.task == "regression" else y}
            if sc.label_names_model:
                lab["model"] = model.name
            out.append((float(arrive[i]) / 1000.0, "labels", lab))
    out.sort(key=lambda x: (x[0], x[1] != "predictions"))
    return out


def task_training(model_name: str, n: int, seed: int = 0, weeks: float = 2.0, tz_offset_hours: int = -5,
                  start: datetime = DEFAULT_START) -> dict[str, np.ndarray]:
    """About ``n`` clean labelled rows spread over ``weeks`` before ``start`` (a reference's training data).

    Columns: ``ts`` (epoch seconds), every feature, every slice, ``label``, and ``prediction``
    (regression) or ``predicted_class`` + ``scores`` (multiclass; a list of dicts).
    """
    model = model_of(model_name)
    span_ms = int(weeks * 7 * 86_400_000)
    t1 = to_epoch_ms(start)
    world = World(rate_per_hour=n / (span_ms / 3.6e6), tz_offset_hours=tz_offset_hours)
    t_ms = sample_times(rng_for(seed, DOMAIN_TRAIN, 0, S_TIME), world, t1 - span_ms, t1)
    sc = TaskScenario("training", model_name, tz_offset_hours=tz_offset_hours, start=start)
    d = _chunk(model, sc, seed, DOMAIN_TRAIN, 0, t_ms)
    cols: dict[str, np.ndarray] = {"ts": t_ms / 1000.0}
    cols.update({k: np.round(v, d.decimals.get(k, 3)) for k, v in d.num.items()})
    cols.update(d.cat)
    cols.update(d.slices)
    cols["label"] = d.label
    if d.prediction is not None:
        cols["prediction"] = np.round(d.prediction, 3)
    if d.predicted is not None:
        cols["predicted_class"] = d.predicted
    if d.scores is not None:
        sc_list = np.empty(len(t_ms), dtype=object)
        sc_list[:] = [dict(zip(d.classes, r, strict=True)) for r in np.round(d.scores, 4).tolist()]
        cols["scores"] = sc_list
    return cols
