"""An :class:`~detector.core.engine.Engine`'s whole state as plain data, and back.

``engine_state`` / ``load_engine_state`` give and take the plain value (a checkpoint nests it);
``engine_snapshot`` / ``engine_restore`` wrap it as a versioned blob (:mod:`detector.core.state.codec`,
kind ``"engine"``) for ``skewwatch replay --snapshot-out`` and ``skewwatch report --snapshot``.

Layout of version 3 (the first plain-data one; older versions are refused)::

    settings      DetectorSettings as a dict (informative: the engine keeps its own)
    models        {model: {dims, vocabs, windows, seasonal, cands, cand_ref, cand_since, detectors, shift_active,
                   versions, last_version, last_window, last_stats, last_summary, joint (multivariate drift history), codes (reconciled
                   features), day (trailing-day ring), clock_shifts (recent clock-shift sightings)}}
    alerts        AlertManager rows
    counters, watermark, high_water (robust event-time progress), closed_before, clock_top
    outcomes      OutcomeMonitor state or None;  adoption: last window's adoption numbers

What is lost on restore: the served-feature rings of the counterexample library (records ranked
later carry no features for predictions served before the restore) and the layouts' memo caches.
"""

from __future__ import annotations

from typing import Any

from detector.core.errors import EngineError
from detector.core.state.codec import StateError, check, load_arrays, pack, unpack_versioned

__all__ = ["engine_state", "load_engine_state", "engine_snapshot", "engine_restore", "ENGINE_VERSION"]

ENGINE_VERSION = 3


def engine_state(eng: Any, served: bool = True) -> dict[str, Any]:
    """``served=False`` leaves out the lifetime served histograms (a sidecar unit counts them per process)."""
    from detector.core.state.drift import detector_to_state

    models = {}
    for name, ms in eng.models.items():
        models[name] = {
            "dims": list(ms.layout.dims), "vocabs": [v.to_state() for v in ms.layout.vocabs],
            "windows": [w.to_state() for w in ms.windows.values()], "seasonal": ms.seasonal.to_state(),
            "cands": ms.cands, "cand_ref": ms.cand_ref, "detectors": [detector_to_state(d) for d in ms.detectors],
            "shift_active": ms.shift_active, "versions": dict(ms.versions), "last_version": ms.last_version,
            "last_window": ms.last_window.to_state() if ms.last_window is not None else None,
            "last_stats": [[*k, v, sl, thr] for k, (v, sl, thr) in ms.last_stats.items()],
            "last_summary": ms.last_summary,
            "codes": {k: dict(v) for k, v in ms.codes.items()}, "cand_since": ms.cand_since, "day": ms.day.to_state(),
            "clock_shifts": dict(ms.clock_shifts),
            "joint": ms.joint.to_state() if ms.joint is not None else None,  # multivariate drift history
        }
        if served:
            models[name]["served"] = ms.served.to_state()
    adoption = getattr(eng, "adoption", None)
    return {
        "settings": eng.settings.model_dump(), "models": models, "alerts": eng.alerts.to_state(),
        "counters": eng.counters.to_state(), "watermark": eng.watermark, "high_water": eng.high_water,
        "closed_before": eng.closed_before, "clock_top": list(eng.clock.top), "outcomes": eng.outcomes.to_state() if eng.outcomes is not None else None,
        "adoption": adoption.to_state() if adoption is not None and hasattr(adoption, "to_state") else None,
    }


def load_engine_state(eng: Any, st: Any) -> None:
    """Load :func:`engine_state` into ``eng`` (built with the same references and settings).

    Raises :class:`~detector.core.engine.EngineError` (never anything else) when the state does not
    fit; the engine must then be discarded.
    """

    try:
        _load(eng, st)
    except EngineError:
        raise
    except (StateError, KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
        raise EngineError(f"snapshot content is invalid ({type(exc).__name__}: {exc}); discard it and start fresh") from exc


def _load(eng: Any, st: Any) -> None:
    from detector.core.inputs.window import WindowCounts
    from detector.core.modelstate import Counters, ModelState
    from detector.core.state.drift import detector_from_state

    check(isinstance(st, dict) and isinstance(st.get("models"), dict), "engine state")
    models = {}
    for name, m in st["models"].items():
        ref = eng.reference_for(name)
        if ref is None:
            raise EngineError(f"snapshot has model {name!r} but no reference is configured for it")
        dims = m["dims"]
        check(isinstance(dims, list) and all(isinstance(d, str) for d in dims) and len(dims) <= 64, "model slice dimensions")
        codes = m.get("codes") or {}
        check(isinstance(codes, dict) and all(isinstance(c, dict) and all(isinstance(a, str) and isinstance(b, str)
                                                                           for a, b in c.items()) for c in codes.values()),
              "reconciled features")
        ms = ModelState(name, ref, eng.settings, list(dims), {str(k): dict(c) for k, c in codes.items()})
        check(isinstance(m["vocabs"], list) and len(m["vocabs"]) == len(dims), "one slice vocabulary per dimension")
        for voc, vs in zip(ms.layout.vocabs, m["vocabs"], strict=True):
            voc.load_state(vs)
        check(isinstance(m["windows"], list), "open windows")
        ms.windows = {}
        for ws in m["windows"]:
            w = WindowCounts.from_state(ws, ms.layout)
            if ms.joint is not None:
                ms.joint.adopt(w)
            else:
                w.mv = None
            ms.windows[w.start] = w
        ms.seasonal.load_state(m["seasonal"])
        load_arrays(ms, m, ("cands", "cand_ref", "cand_since", "shift_active"), f"model {name!r}")
        ms.day.load_state(m["day"], ms.layout.n_rows)
        check(isinstance(m["clock_shifts"], dict), "clock shifts")
        check(all(isinstance(v, list) and len(v) == 2 for v in m["clock_shifts"].values()), "clock shift sightings")
        ms.clock_shifts = {str(k): [float(v[0]), float(v[1])] for k, v in m["clock_shifts"].items()}
        check(isinstance(m["detectors"], list), "change detectors")
        if len(m["detectors"]) == len(ms.detectors):  # else the config changed the detector: start it fresh
            ms.detectors = [detector_from_state(d) for d in m["detectors"]]
        check(isinstance(m["versions"], dict), "model versions")
        ms.versions = {str(k): int(v) for k, v in m["versions"].items()}
        ms.last_version = None if m["last_version"] is None else str(m["last_version"])
        ms.last_window = None if m["last_window"] is None else WindowCounts.from_state(m["last_window"], ms.layout)
        check(isinstance(m["last_stats"], list), "last statistics")
        ms.last_stats = {(str(r[0]), str(r[1]), str(r[2]), str(r[3])): (float(r[4]), dict(r[5]), float(r[6]))
                         for r in m["last_stats"]}
        check(isinstance(m["last_summary"], dict), "last summary")
        ms.last_summary = m["last_summary"]
        if m.get("served") is not None:
            ms.served.load_state(m["served"])
        if ms.joint is not None and m.get("joint") is not None:  # else: a reference without it, or an older state
            ms.joint.load_state(m["joint"], ms.layout.n_rows)
        models[name] = ms
    check(isinstance(st["alerts"], list), "alert state")
    rows = st["alerts"]
    for r in rows:
        check(isinstance(r, list) and len(r) == 7 and isinstance(r[0], list) and len(r[0]) == 4 and isinstance(r[6], dict),
              "alert state row")
    counters = Counters.from_state(st["counters"])
    marks = [float(st[k]) for k in ("watermark", "high_water", "closed_before")]
    top = st.get("clock_top") or []
    check(isinstance(top, list) and len(top) <= 1024, "event-time support")
    # everything checked: commit
    eng.models = models
    eng.alerts.load_state([[[str(x) for x in r[0]], int(r[1]), int(r[2]), bool(r[3]), str(r[4]), float(r[5]), r[6]]
                           for r in rows])
    eng.counters = counters
    eng.watermark, eng.high_water, eng.closed_before = marks
    eng.clock.top = sorted(float(t) for t in top)
    if eng.outcomes is not None and st.get("outcomes") is not None:
        eng.outcomes.load_state(st["outcomes"])
    adoption = getattr(eng, "adoption", None)
    if adoption is not None and st.get("adoption") is not None and hasattr(adoption, "load_state"):
        adoption.load_state(st["adoption"])


def engine_snapshot(eng: Any) -> bytes:
    return pack("engine", ENGINE_VERSION, engine_state(eng))


def engine_restore(eng: Any, data: bytes) -> None:

    try:
        _, st = unpack_versioned(data, "engine", {ENGINE_VERSION})
    except StateError as exc:
        raise EngineError(f"snapshot is unreadable: {exc}") from exc
    load_engine_state(eng, st)
