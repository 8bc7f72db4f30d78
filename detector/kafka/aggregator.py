"""The group's evaluation: every unit's steps merged, windows closed, outcomes evaluated, alerts kept.

One worker of the group holds the aggregator: the owner of partition 0 of the partials topic, so
the role moves with a rebalance like any partition, and its state (merged open windows, seasonal
baselines, change detectors, alert state, outcome cohorts, parity windows, what each unit has
reported) is checkpointed under its own key and restored by the next owner.

Units send *steps* (see :mod:`detector.kafka.unit`), chunked, with headers ``skewwatch-kind:
step``, ``skewwatch-unit``, ``skewwatch-seq``, ``skewwatch-part`` and ``skewwatch-parts``, and
after each checkpoint a *claim* (``skewwatch-kind: claim``, ``skewwatch-seq``,
``skewwatch-watermark``): "everything before this boundary is in the steps up to this seq". A
step whose seq the aggregator has already applied is a duplicate (a unit resending its outbox
after a restart) and is ignored, which makes every step count exactly once. Sequence numbers
belong to a unit's *life* (``skewwatch-life``, a random id drawn when a unit starts without a
checkpoint and kept in its checkpoints): a unit that had to start from empty state counts from 1
again. A step is taken as applied only once it decoded, so bytes that are not a step (garbage, or
foreign serialisations) are counted as rejected and cannot block the unit's real steps.

The aggregator's event time is the smallest claim of the live units (a unit silent for
``source_timeout`` seconds stops holding it back; a unit never heard of holds it back for that long
after the aggregator starts). A unit that has claimed nothing yet (``-inf``: it has not reached the
end of its first window) holds it back however long that takes - a worker starting under load, or
reading a backlog, is slow, not empty. Only the unit knows that it has nothing: no step taken,
no window open, its predictions read to their end and quiet (:meth:`Unit.claim
<detector.kafka.unit.Unit.claim>`); it then claims ``+inf`` with seq 0, and once it has said so for
``source_timeout`` seconds, with no other claim in between, it stops holding event time back (a
partition without traffic would otherwise hold the group for ever; a forged ``+inf`` is undone by
the unit's next real claim). It advances boundary by boundary: before advancing to ``T`` it
applies the outcome steps of every unit up to ``T``, so an evaluation never depends on which unit
reported first. A claim is a unit's latest, not the largest ever seen, and it is capped at what the
unit has shown: the boundary of its last applied step plus the wall time since that step arrived
(a quiet unit's watermark moves on with the wall clock; an active unit steps every window it has
data for). The cap is per unit on purpose: a forged ``skewwatch-watermark: 1e300`` cannot let
other units' progress close windows that this unit's real events are still arriving for, and the
unit's next real claim replaces it. The price is that a unit whose last window was empty may hold
the group back by one window during a catch-up, until its next step. Claims of units this worker
owns come from the units themselves, never from headers.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from detector.config import Config
from detector.core.decisions.alerts import Alert
from detector.core.engine import Engine, EngineError
from detector.core.guard import guarded
from detector.core.outcomes.exchange import apply_outcome_step
from detector.core.reference.profile import Reference
from detector.core.state.codec import StateError, check, decode, unpack
from detector.core.state.partials import Partial
from detector.core.state.snapshot import engine_state, load_engine_state

__all__ = ["Aggregator", "MAX_PARTS_BYTES"]

log = logging.getLogger("skewwatch.aggregator")
MAX_PARTS_BYTES = 256 << 20  # chunks of incomplete steps held at most


class Aggregator:
    def __init__(self, cfg: Config, refs: dict[str, Reference], default: Reference | None) -> None:
        from detector.core.checks.adoption import attach_adoption
        from detector.core.outcomes.monitor import attach_outcomes

        self.cfg = cfg
        self.engine = Engine(cfg.detector, refs, default)
        attach_outcomes(self.engine, cfg)
        attach_adoption(self.engine, cfg)
        self.sources: dict[str, dict[str, Any]] = {}  # unit -> latest claim, seq applied and its boundary, life
        self.seen: dict[str, float] = {}  # unit -> monotonic time of its last message (not state)
        self.empty: dict[str, float] = {}  # unit -> monotonic time since it claims to have nothing (not state)
        self.expected: set[str] = set()  # the group's units (from the input topics' partition counts)
        self.local: dict[str, tuple[float, int]] = {}  # units this worker owns: (claim, seq) as sent
        self.pending: dict[float, list[bytes]] = {}  # boundary -> packed outcome steps not applied yet
        self.parts: dict[str, dict[str, Any]] = {}  # "unit/seq" -> {"parts": n, "chunks": {i: bytes}}
        self.offsets: dict[str, int] = {}  # partials topic-partition -> last offset read
        self.boundary = -math.inf  # event time: windows and cohorts are evaluated up to here
        self.clock = time.monotonic  # wall time for liveness and claim caps (a test may simulate it)
        self.step_at: dict[str, float] = {}  # unit -> wall time its last step was applied (not state)
        self.started = self.clock()
        self.source_timeout = max(60.0, 4 * float(cfg.checkpoint_interval))
        self.duplicates = self.rejected = self.capped = 0
        self.behind = False  # advance() stopped at its budget with boundaries left to evaluate
        self.dirty = True

    # ------------------------------------------------------------------ input
    def on_message(self, topic: str, partition: int, offset: int, headers: dict[str, str], value: bytes | None,
                   now: float | None = None) -> None:
        """One message of the partials topic (a step chunk or a claim)."""
        now = self.clock() if now is None else now
        k = f"{topic}:{partition}"
        if offset <= self.offsets.get(k, -1):
            return
        self.offsets[k] = offset
        self.dirty = True
        unit, kind = headers.get("skewwatch-unit"), headers.get("skewwatch-kind")
        try:
            seq = int(headers.get("skewwatch-seq", ""))
        except ValueError:
            seq = -1
        if not unit or seq < 0 or kind not in ("step", "claim"):
            self.rejected += 1
            log.warning("ignoring a partials message without unit, seq or kind", extra={"offset": offset})
            return
        if unit not in self.local:
            self.seen[unit] = now
        src = self._source(unit)
        life = headers.get("skewwatch-life", "")
        if kind == "claim":
            if unit in self.local:
                return  # this worker knows its own units' progress
            try:
                claim = float(headers.get("skewwatch-watermark", "nan"))
            except ValueError:
                claim = math.nan
            if math.isnan(claim):
                self.rejected += 1
                return
            if claim == math.inf and seq == 0:  # "I have nothing" (whatever its life: one that never stepped has none here)
                self.empty.setdefault(unit, now)
                return
            self.empty.pop(unit, None)
            if life != src["life"]:
                return
            # a claim speaks for steps up to its seq: while some are missing, only the applied ones count
            src["claim"] = self._cap(unit, claim, now) if seq <= src["seq"] else src["step"]
            return
        self._chunk(unit, seq, life, headers, value or b"")

    def _source(self, unit: str) -> dict[str, Any]:
        return self.sources.setdefault(unit, {"claim": -math.inf, "seq": 0, "step": -math.inf, "life": ""})

    def _chunk(self, unit: str, seq: int, life: str, headers: dict[str, str], value: bytes) -> None:
        src = self.sources[unit]
        if seq <= src["seq"] and life == src["life"]:
            self.duplicates += 1
            return
        try:
            part, parts = int(headers.get("skewwatch-part", "0")), int(headers.get("skewwatch-parts", "1"))
        except ValueError:
            part, parts = -1, 0
        if not 0 <= part < parts <= 100_000:
            self.rejected += 1
            return
        key = f"{unit}/{seq}"
        entry = self.parts.setdefault(key, {"parts": parts, "chunks": {}})
        if entry["parts"] != parts:
            self.rejected += 1
            return
        entry["chunks"][part] = value
        if len(entry["chunks"]) < parts:
            self._bound_parts()
            return
        blob = b"".join(entry["chunks"][i] for i in range(parts))
        del self.parts[key]
        self.on_step(unit, seq, blob)

    def on_step(self, unit: str, seq: int, blob: bytes) -> None:
        """A whole step of ``unit`` (reassembled, or handed over in-process)."""
        src = self._source(unit)
        try:
            data = unpack(blob, "step", {1})
            check(isinstance(data, dict) and data.get("unit") == unit and data.get("seq") == seq
                  and isinstance(data.get("life"), str), "step unit, seq and life")
        except StateError as exc:
            self.rejected += 1
            log.error("ignoring step %d of %s: %s", seq, unit, exc)
            return
        if data["life"] != src["life"]:
            if src["life"]:
                log.warning("unit %s starts a new life (it had no checkpoint): its steps count from 1 again", unit)
            src["life"], src["seq"] = data["life"], 0
        if seq <= src["seq"]:
            self.duplicates += 1
            return
        self.dirty = True
        src["seq"] = seq  # consumed, whatever happens below: a step is applied at most once
        try:
            self._apply_step(unit, seq, data)
        except (StateError, EngineError, KeyError, TypeError, ValueError) as exc:
            self.rejected += 1
            log.error("ignoring step %d of %s: %s", seq, unit, exc)

    def _apply_step(self, unit: str, seq: int, data: dict[str, Any]) -> None:
        T = float(data["boundary"])
        partials = [Partial.from_state(p) for p in data["partials"]]
        outcome = data["outcome"]
        check(outcome is None or isinstance(outcome, bytes), "step outcome")
        for p in partials:
            self.engine.ingest_partial(p, unit)
        if outcome is not None:
            if T <= self.boundary:  # a unit that was given up on: its step is late, apply it now
                self._apply_outcome(outcome)
            else:
                self.pending.setdefault(T, []).append(outcome)
        src = self.sources[unit]
        src["seq"], src["step"] = seq, T
        self.step_at[unit] = self.clock()
        local = self.local.get(unit)
        if local is not None:
            if local[1] <= seq and local[0] != math.inf:
                src["claim"] = local[0]
        else:
            src["claim"] = max(src["claim"], T)

    def _apply_outcome(self, blob: bytes) -> None:
        apply_outcome_step(self.engine, decode(blob))

    def _cap(self, unit: str, claim: float, now: float) -> float:
        """A header claim of ``unit``, bounded by its last applied step plus the wall time since (module docstring)."""
        step = self.sources[unit]["step"]
        bound = step + max(0.0, now - self.step_at.get(unit, self.started)) if math.isfinite(step) else -math.inf
        if claim > bound:
            self.capped += 1
            log.warning("capped a claimed watermark", extra={"unit": unit, "claimed": claim, "bound": bound})
            return bound
        return claim

    def _bound_parts(self) -> None:
        total = sum(len(c) for e in self.parts.values() for c in e["chunks"].values())
        while total > MAX_PARTS_BYTES and self.parts:
            key = next(iter(self.parts))
            total -= sum(len(c) for c in self.parts.pop(key)["chunks"].values())
            self.rejected += 1
            log.error("dropped an incomplete step (too many chunks held)", extra={"step": key})

    def set_local(self, unit: str, claim: float, seq: int) -> None:
        """A unit this worker owns has sent its steps up to ``seq``; everything before ``claim`` is in them."""
        self.local[unit] = (claim, seq)
        src = self._source(unit)
        self.seen[unit] = self.clock()
        if claim == math.inf and seq == 0:  # it has nothing (Unit.claim): held back for source_timeout, as any unit's
            self.empty.setdefault(unit, self.seen[unit])
            return
        self.empty.pop(unit, None)
        if src["seq"] >= seq:
            src["claim"] = claim

    def drop_local(self, unit: str) -> None:
        self.local.pop(unit, None)

    # ------------------------------------------------------------------ event time
    def watermark(self, now: float | None = None) -> float | None:
        """The smallest claim of the live units (None while one of them has claimed nothing)."""
        now = self.clock() if now is None else now
        claims = []
        for unit in self.expected | set(self.sources) | set(self.local):
            if unit not in self.local and now - self.seen.get(unit, self.started) > self.source_timeout:
                continue  # silent: given up on (it rejoins with its next message)
            if now - self.empty.get(unit, now) > self.source_timeout:
                continue  # has said for that long that it has nothing (a partition without predictions)
            claims.append(self.sources.get(unit, {}).get("claim", -math.inf))
        if not claims:
            return None
        wm = min(claims)
        return wm if math.isfinite(wm) else None

    def advance(self, now: float | None = None, budget: float | None = None) -> list[Alert]:
        """Advance boundary by boundary to the watermark; returns the alerts.

        ``budget``: stop after about this many seconds (``behind`` then says there is more to do),
        so a worker catching up on a backlog keeps answering its probes.
        """
        self.behind = False
        wm = self.watermark(now)
        if wm is None or wm <= self.boundary:
            return []
        t0 = time.monotonic()
        W = float(self.cfg.detector.window)
        A = math.floor(wm / W) * W
        out: list[Alert] = []
        T = self._next(A)
        while T is not None:
            for b in sorted(k for k in self.pending if k <= T):
                for blob in self.pending.pop(b):
                    try:
                        self._apply_outcome(blob)
                    except (StateError, EngineError, KeyError, TypeError, ValueError) as exc:
                        self.rejected += 1
                        log.error("ignoring an outcome step: %s", exc)
            # the checks are guarded in the core; this guards the rest, so a boundary that cannot be
            # evaluated is counted, logged and passed instead of being retried at every tick forever
            guard = guarded(self.engine.counters, "", self.boundary, T)
            out.extend(guard("advance", lambda T=T: self.engine.advance(T), []))
            self.boundary = T
            self.dirty = True
            T = self._next(A)
            if T is not None and budget is not None and time.monotonic() - t0 > budget:
                self.behind = True
                break
        return out

    def _next(self, A: float) -> float | None:
        """The next boundary to evaluate at: every window while something is open, else the next that matters."""
        W = float(self.cfg.detector.window)
        eng = self.engine
        busy = any(ms.windows for ms in eng.models.values())
        mon = eng.outcomes
        if mon is not None:
            busy = busy or any(m.open for m in mon.models.values()) or any(mon.parity.windows.values())
        if math.isfinite(self.boundary) and busy:
            T = self.boundary + W
        else:
            due = [k for k in self.pending]
            due += [w.end for ms in eng.models.values() for w in ms.windows.values()]
            T = min(due, default=A)
            if math.isfinite(self.boundary):
                T = max(T, self.boundary + W)
        return T if T <= A and T > self.boundary else None

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        return {"engine": engine_state(self.engine),
                "sources": {u: {"claim": s["claim"], "seq": int(s["seq"]), "step": s["step"], "life": s["life"]}
                            for u, s in self.sources.items()},
                "pending": [[b, list(v)] for b, v in self.pending.items()],
                "parts": {k: {"parts": e["parts"], "chunks": [[i, c] for i, c in e["chunks"].items()]}
                          for k, e in self.parts.items()},
                "offsets": dict(self.offsets), "boundary": self.boundary,
                "counts": {"duplicates": self.duplicates, "rejected": self.rejected, "capped": self.capped}}

    def load_state(self, st: Any) -> None:
        check(isinstance(st, dict) and isinstance(st.get("sources"), dict) and isinstance(st.get("pending"), list)
              and isinstance(st.get("parts"), dict) and isinstance(st.get("offsets"), dict), "aggregator state")
        sources = {}
        for u, s in st["sources"].items():
            check(isinstance(s, dict), "aggregator source")
            sources[str(u)] = {"claim": float(s["claim"]), "seq": int(s["seq"]), "step": float(s["step"]),
                               "life": str(s["life"])}
        pending: dict[float, list[bytes]] = {}
        for b, blobs in st["pending"]:
            check(isinstance(blobs, list) and all(isinstance(x, bytes) for x in blobs), "pending outcome steps")
            pending[float(b)] = list(blobs)
        parts = {}
        for k, e in st["parts"].items():
            check(isinstance(e, dict) and isinstance(e.get("chunks"), list), "step chunks")
            parts[str(k)] = {"parts": int(e["parts"]), "chunks": {int(i): bytes(c) for i, c in e["chunks"]}}
        load_engine_state(self.engine, st["engine"])
        self.sources, self.pending, self.parts = sources, pending, parts
        self.offsets = {str(k): int(v) for k, v in st["offsets"].items()}
        self.boundary = float(st["boundary"])  # older states also hold "evidence" (no longer used)
        self.started = self.clock()
        self.step_at = {}
        counts = st.get("counts") or {}
        self.duplicates, self.rejected, self.capped = (int(counts.get(k, 0)) for k in ("duplicates", "rejected", "capped"))
        self.dirty = False
