"""Incidents: findings become one ``firing`` alert per incident and one ``resolved`` when it ends.

Hysteresis per alert key (model, incident kind, feature, slice): a warning must breach in
``fire_after`` consecutive evaluated windows (critical: ``fire_after_critical``) before it
fires, and an open incident resolves only after ``resolve_after`` consecutive windows in which
the key was *evaluated* and clean (a quiet night with too few events is not evidence of
recovery). Alert ids are derived from the key and the incident's first breaching window, so a
replay and the live sidecar emit the same ids, and a restored worker does not re-fire an
incident that is already open.

The incident kind is the alert's ``kind`` except for performance *estimated* before labels
(statistics ``estimated_*``): ``performance:estimated`` (:func:`incident_kind`). The estimate is judged
at window close from the scores, the realised performance days later from matured labels; under one
key a clean matured cohort (traffic from days ago) would resolve a live estimated incident, and an
open estimated incident would swallow the realised one when the labels confirm it (an update of the
open incident instead of an alert of its own). Two keys keep two incidents; the alert's ``kind``
stays ``performance`` for both (the contract), its ``statistic`` and ``alert_id`` tell them apart.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from detector.core.decisions.kinds import ALL_KINDS, DAY_KINDS, INPUT_KINDS, OUTCOME_KINDS, PARITY_KINDS
from detector.core.decisions.select import Finding, is_generic
from detector.core.decisions.triage import triage
from detector.core.inputs.timeparse import format_ts
from detector.core.settings import DetectorSettings
from detector.core.stats.effects import rnd

__all__ = ["Alert", "AlertManager", "is_consequence", "OUTCOME_KINDS", "PARITY_KINDS", "INPUT_SCOPE", "ALL_KINDS", "DAY_KINDS", "slice_key",
           "ESTIMATED_PERFORMANCE", "incident_kind"]

Key = tuple[str, str, str, str]

# the kinds and their families live in detector.core.decisions.kinds; re-exported for the alert manager's callers
#: the incident kind of a performance finding estimated before labels (see the module docstring)
ESTIMATED_PERFORMANCE = "performance:estimated"
#: what a window close speaks for: the input kinds and performance estimated from the window's scores
INPUT_SCOPE = INPUT_KINDS | {ESTIMATED_PERFORMANCE}  # model, kind, feature, slice "dim=value" ("" = all traffic)


def incident_kind(kind: str, statistic: str) -> str:
    """The kind part of an alert key: ``performance:estimated`` for ``estimated_*`` statistics, else ``kind``.

    >>> incident_kind("performance", "estimated_precision_drop"), incident_kind("performance", "precision_drop")
    ('performance:estimated', 'performance')
    """
    return ESTIMATED_PERFORMANCE if kind == "performance" and statistic.startswith("estimated_") else kind


@dataclass
class Alert:
    """One alert event, exactly the README's alert contract (see :meth:`to_dict`)."""

    alert_id: str
    ts: float
    state: str
    model: str
    model_version: str | None
    kind: str
    feature: str | None
    slice: dict[str, str]
    statistic: str
    value: float
    threshold: float
    severity: str
    window: dict[str, Any]
    cause: str
    action: str
    evidence: dict[str, Any]
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id, "ts": format_ts(self.ts), "state": self.state, "model": self.model,
            "model_version": self.model_version, "kind": self.kind, "feature": self.feature, "slice": self.slice,
            "statistic": self.statistic, "value": rnd(self.value, 6), "threshold": rnd(self.threshold, 6),
            "severity": self.severity, "window": self.window, "cause": self.cause, "action": self.action,
            "evidence": _plain(self.evidence), "summary": self.summary,
        }

    @property
    def key(self) -> str:
        s = ",".join(f"{k}={v}" for k, v in sorted(self.slice.items()))
        return f"{self.model}/{incident_kind(self.kind, self.statistic)}/{self.feature or '-'}/{s or '-'}"


def _plain(o: Any) -> Any:
    """Evidence as plain JSON types (numpy scalars -> Python, NaN/Inf -> None)."""
    if isinstance(o, dict):
        return {str(k): _plain(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_plain(v) for v in o]
    if hasattr(o, "item") and not isinstance(o, str | bytes):
        o = o.item()
    if isinstance(o, float) and (o != o or o in (float("inf"), float("-inf"))):
        return None
    return o


@dataclass
class _State:
    streak: int = 0
    clean: int = 0
    firing: bool = False
    alert_id: str = ""
    first_start: float = 0.0
    last: dict[str, Any] = field(default_factory=dict)  # last firing alert, for resolved events


class AlertManager:
    """Per-model alert state; ``update`` is called once per closed window."""

    def __init__(self, settings: DetectorSettings) -> None:
        self.settings = settings
        self.state: dict[Key, _State] = {}

    def update(
        self,
        model: str,
        window: dict[str, Any],
        findings: list[tuple[Finding, dict[str, str]]],
        evaluated: set[str],
        context: dict[str, Any],
        scope: frozenset[str] | None = None,
        hold: set[Key] | None = None,
        ts: float | None = None,
        evaluated_daily: set[str] | None = None,
    ) -> list[Alert]:
        """``findings``: (finding, slice dict); ``evaluated``: slice keys with enough events.
        ``evaluated_daily``: slice keys the trailing day's distribution tests judged (a slice too quiet for
        one window): they count as evaluated for the kinds those tests report (``kinds.DAY_KINDS``) only - a quiet
        slice that day found clean is evidence against their incidents, not against a latency incident of its busier hours.

        ``hold``: keys still breaching but reported under a more specific kind this window
        (de-duplicated) — they neither fire nor count as clean.
        ``scope`` is the set of kinds this evaluation speaks for (input checks at window close,
        outcome checks when labels mature, parity when joins complete): keys of other kinds are
        neither counted clean nor resolved by it. None = every kind not in ``OUTCOME_KINDS``.
        """
        if scope is None:
            scope = INPUT_SCOPE
        st = self.settings
        out: list[Alert] = []
        seen: set[Key] = set()
        start, end = window["_start"], window["_end"]
        at = end if ts is None else ts  # when the alert is raised (event time)
        win = {k: v for k, v in window.items() if not k.startswith("_")}
        # an input that starts moving in this window without a specific cause yet (a generic drift: it waits a
        # window for the specific check to name it) leaves the cause of its consequences open too
        upstream_open = any(is_generic(f.kind, f.statistic) and _fresh(self.state.get(_key(model, f, sl)))
                            for f, sl in findings)
        for f, sl in findings:
            key: Key = _key(model, f, sl)
            seen.add(key)
            s = self.state.setdefault(key, _State())
            s.clean = 0
            if s.streak == 0:
                s.first_start = start
            s.streak += 1
            # deterministic facts (no p-value: a threshold changed, a feature vanished) need no
            # second window to rule out noise
            fact = f.pvalue is None and f.statistic != "mean_shift"
            need = st.fire_after_critical if (f.severity == "critical" or fact) else st.fire_after
            if is_generic(f.kind, f.statistic):
                # "a feature moved" waits a window even when large: a partial first hour of a unit change
                # or a default value looks like drift, and the next one names the specific cause
                need = max(need, st.fire_after)
            if upstream_open and is_consequence(f.kind, f.statistic):
                # a decision rate or an estimated performance moved because an input did, and what moved it is
                # not named yet: the first page waits with it, so it already says the cause (issue: a unit change
                # first paged as a per-channel decision-rate move "caused by covariate drift")
                need = max(need, st.fire_after)
            if f.kind in OUTCOME_KINDS and f.row_is_slice:
                # a slice's labelled cohort is small and noisy: it must breach twice in a row
                need = max(need, st.fire_after)
            cause, action = triage(f, context)
            if not s.firing and s.streak >= need:
                s.firing = True
                s.alert_id = _alert_id(key, s.first_start)
                a = Alert(s.alert_id, at, "firing", model, context.get("model_version"), f.kind, f.feature, sl,
                          f.statistic, f.value, f.threshold, f.severity, win, cause, action,
                          {**f.evidence, **({"pvalue": f.pvalue} if f.pvalue is not None else {})}, f.summary)
                s.last = a.to_dict()
                out.append(a)
            elif s.firing:
                s.last.update({"value": rnd(f.value, 6), "window": win})
        for key, s in list(self.state.items()):
            if key in seen or key[0] != model or key[1] not in scope or (hold and key in hold):
                continue
            if key[3] not in evaluated and not (evaluated_daily and key[1] in DAY_KINDS and key[3] in evaluated_daily):
                continue  # not enough traffic in that slice to judge either way
            s.streak = 0
            if not s.firing:
                del self.state[key]
                continue
            s.clean += 1
            if s.clean >= st.resolve_after:
                last = s.last
                a = Alert(s.alert_id, at, "resolved", model, last.get("model_version"), last.get("kind") or key[1], key[2] or None,
                          last.get("slice", {}), last.get("statistic", ""), float("nan"), last.get("threshold") or float("nan"),
                          last.get("severity", "warning"), win, last.get("cause", ""), last.get("action", ""),
                          {"last_value": last.get("value"), "fired_at": last.get("ts")},
                          f"resolved after {s.clean} clean windows: {last.get('summary', '')}")
                out.append(a)
                del self.state[key]
        return out

    def firing(self, model: str | None = None) -> list[dict[str, Any]]:
        return [s.last for k, s in self.state.items() if s.firing and (model is None or k[0] == model)]

    def firing_features(self, model: str) -> set[str]:
        return {k[2] for k, s in self.state.items() if s.firing and k[0] == model and k[2]}

    def firing_keys(self, model: str) -> set[tuple[str, str]]:
        """(kind, feature) of every open incident of the model ("" = no feature)."""
        return {(k[1], k[2]) for k, s in self.state.items() if s.firing and k[0] == model}

    def firing_stats(self, model: str) -> set[tuple[str, str, str]]:
        """(kind, feature, statistic) of every open incident of the model."""
        return {(k[1], k[2], str(s.last.get("statistic", ""))) for k, s in self.state.items() if s.firing and k[0] == model}

    def firing_kinds(self, model: str) -> set[str]:
        return {k[1] for k, s in self.state.items() if s.firing and k[0] == model}

    # state is plain data: snapshot as dicts
    def to_state(self) -> list[Any]:
        return [[list(k), s.streak, s.clean, s.firing, s.alert_id, s.first_start, s.last] for k, s in self.state.items()]

    def load_state(self, rows: list[Any]) -> None:
        self.state = {tuple(k): _State(streak, clean, firing, aid, fs, last)  # type: ignore[misc]
                      for k, streak, clean, firing, aid, fs, last in rows}


def is_consequence(kind: str, statistic: str) -> bool:
    """A model-level signal that an input change passes on, whose cause triage reads from the input alerts:
    the share acted on (not a changed threshold, a fact of the policy) and performance estimated from the scores.

    >>> is_consequence("decision_rate", "decision_rate_delta"), is_consequence("decision_rate", "threshold")
    (True, False)
    """
    return (kind == "decision_rate" and statistic == "decision_rate_delta") or incident_kind(kind, statistic) == ESTIMATED_PERFORMANCE


def _key(model: str, f: Finding, sl: dict[str, str]) -> Key:
    return (model, incident_kind(f.kind, f.statistic), f.feature or "", slice_key(sl))


def _fresh(s: _State | None) -> bool:
    """No open incident and no breach before this window: the key starts breaching now."""
    return s is None or (not s.firing and s.streak == 0)


def slice_key(sl: dict[str, str] | None) -> str:
    """The text key of a slice (``"channel=web,region=eu"``; ``""`` for all traffic): incidents, gauges and
    pages name a slice by it."""
    return ",".join(f"{k}={v}" for k, v in sorted((sl or {}).items()))


def _alert_id(key: Key, first_start: float) -> str:
    h = hashlib.sha1(("|".join(key) + f"|{first_start:.3f}").encode()).hexdigest()
    return h[:16]
