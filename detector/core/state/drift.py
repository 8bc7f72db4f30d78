"""river change detectors whose state is plain data.

river's ``PageHinkley`` is pure Python: its state (the running mean, the cumulative sums and their
extremes) is a handful of floats, saved and restored exactly. Its ``ADWIN`` keeps its adaptive
window in compiled (Rust) code whose only serialisation is an opaque blob that panics or
allocates without bound on malformed bytes - not something to read from a Kafka topic. So
:class:`ADWIN` here is river's ADWIN that also remembers its inputs since its last reset (the
window can only hold those), at most :data:`ADWIN_HISTORY` of them, and is restored by feeding
them again: exact while the history fits, otherwise rebuilt from the most recent
:data:`ADWIN_HISTORY` inputs (the window forgets the older part; detection carries on, and a
change older than that is not re-detected).

>>> a = ADWIN(delta=0.01)
>>> for x in [0.0] * 300 + [1.0] * 60:
...     _ = a.update(x)
>>> b = detector_from_state(detector_to_state(a))
>>> (b.width, b.total, b.n_detections) == (a.width, a.total, a.n_detections)
True
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
from river import drift

__all__ = ["ADWIN", "PageHinkley", "ADWIN_HISTORY", "detector_to_state", "detector_from_state"]

ADWIN_HISTORY = 50_000  # inputs kept to rebuild an ADWIN (400 kB of float64)


class ADWIN(drift.ADWIN):
    """river's ADWIN, restorable: it keeps its inputs since the last reset (bounded)."""

    def __init__(self, delta: float = 0.002, clock: int = 32, max_buckets: int = 5, min_window_length: int = 5,
                 grace_period: int = 10) -> None:
        self._inputs: deque[float] = deque(maxlen=ADWIN_HISTORY)
        super().__init__(delta=delta, clock=clock, max_buckets=max_buckets, min_window_length=min_window_length,
                         grace_period=grace_period)

    def _reset(self) -> None:
        super()._reset()
        self._inputs.clear()

    def update(self, x: float) -> ADWIN:  # type: ignore[override]
        if self.drift_detected:  # river resets the window before the next input
            self._reset()
        self._inputs.append(float(x))
        self._drift_detected = self._helper.update(x)
        return self


class PageHinkley(drift.PageHinkley):
    """river's PageHinkley (its state is plain floats already)."""


_PH_FLOATS = ("_sum_increase", "_sum_decrease", "_min_increase", "_max_decrease")


def detector_to_state(det: Any) -> dict[str, Any]:
    """Parameters and state of a change detector as plain data."""
    if isinstance(det, drift.ADWIN):
        params = {k: getattr(det, k) for k in ("delta", "clock", "max_buckets", "min_window_length", "grace_period")}
        inputs = getattr(det, "_inputs", None)
        return {"kind": "ADWIN", "params": params, "drift_detected": bool(det.drift_detected),
                "inputs": np.fromiter(inputs if inputs is not None else (), dtype=np.float64)}
    if isinstance(det, drift.PageHinkley):
        params = {k: getattr(det, k) for k in ("min_instances", "delta", "threshold", "alpha", "mode")}
        st = {k: float(getattr(det, k)) for k in _PH_FLOATS}
        st.update(n=float(det._x_mean.n), mean=float(det._x_mean._mean), drift_detected=bool(det.drift_detected))
        return {"kind": "PageHinkley", "params": params, "state": st}
    raise TypeError(f"no plain state for change detector {type(det).__name__}")


def detector_from_state(st: dict[str, Any]) -> Any:
    """A change detector rebuilt from :func:`detector_to_state` (see the module docstring)."""
    kind = st.get("kind")
    p = dict(st.get("params") or {})
    if kind == "ADWIN":
        det = ADWIN(delta=float(p["delta"]), clock=int(p["clock"]), max_buckets=int(p["max_buckets"]),
                    min_window_length=int(p["min_window_length"]), grace_period=int(p["grace_period"]))
        for x in np.asarray(st.get("inputs", ()), dtype=np.float64).ravel().tolist():
            det.update(x)
        return det
    if kind == "PageHinkley":
        det = PageHinkley(min_instances=int(p["min_instances"]), delta=float(p["delta"]), threshold=float(p["threshold"]),
                          alpha=float(p["alpha"]), mode=str(p["mode"]))
        s = st["state"]
        for k in _PH_FLOATS:
            setattr(det, k, float(s[k]))
        det._x_mean.n, det._x_mean._mean = float(s["n"]), float(s["mean"])
        det._drift_detected = bool(s["drift_detected"])
        return det
    raise ValueError(f"unknown change detector state {kind!r}")
