"""A check that raises costs its own results for one window, never the stream.

Every check family runs under :func:`guarded` when a window closes (and every cohort evaluation when
one matures): an exception is counted in ``Counters.check_errors[check]`` (exported as
``skewwatch_check_errors_total{check=...}``), logged once as a structured error naming the check,
the model, the window and the exception (the traceback at debug level), and the family's results
for that window are skipped. The other families still run, the window still closes, its alerts still
fire, and the next window is evaluated as usual: a deterministic bug in one check must not make the
watermark retry the same boundary forever.

Check names are a fixed vocabulary (the family names used by the callers), so the counter's label
set stays bounded. The core writes log records only through the standard library's ``logging``; the
shells decide where they go (``--log-format json``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["CHECKS", "Guard", "guarded", "unguarded"]

#: the guarded units, as named in ``Counters.check_errors`` and the exported counter's ``check`` label:
#: the window check families, the outcome monitor's cohort evaluation and parity windows, and the last
#: lines (a window's evaluation outside its checks, an aggregator boundary outside the engine)
CHECKS = ("numeric", "categorical", "rates", "schema", "time_shift", "leak_serving", "seasonal", "adoption", "remix",
          "multivariate", "estimate", "pooled_time_shift", "change_points", "daily", "outcomes", "parity",
          "window_close", "advance")

log = logging.getLogger("skewwatch.checks")

T = TypeVar("T")

#: ``guard(check, fn, default)``: ``fn()``, or ``default`` when it raised (see :func:`guarded`)
Guard = Callable[[str, Callable[[], T], T], T]


def unguarded(check: str, fn: Callable[[], T], default: T) -> T:  # noqa: ARG001 - the Guard signature
    """Run ``fn`` as is (callers that want exceptions to propagate, e.g. unit tests of one check)."""
    return fn()


def guarded(counters: Any, model: str, start: float | None, end: float | None) -> Guard:
    """A guard for model ``model``'s window ``[start, end)`` (event time; ``model`` empty and ``start`` None
    for what spans models, such as the outcome monitor's advance), counting into ``counters``."""

    def guard(check: str, fn: Callable[[], T], default: T) -> T:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - any bug in one check must cost only its own results
            counters.check_errors[check] = counters.check_errors.get(check, 0) + 1
            detail = str(exc)[:300]
            window = {"start": _iso(start), "end": _iso(end)}
            log.error("check %s raised %s at the window %s..%s of model %s; its results for this window are "
                      "skipped, the other checks ran: %s", check, type(exc).__name__, window.get("start"),
                      window.get("end"), model, detail,
                      extra={"check": check, "model": model, "window_start": window.get("start"),
                             "window_end": window.get("end"), "error_type": type(exc).__name__, "error": detail})
            log.debug("traceback of the %s check's error", check, exc_info=True, extra={"check": check, "model": model})
            return default

    return guard


def _iso(t: float | None) -> str | None:
    from detector.core.inputs.timeparse import format_ts

    return format_ts(t) if t is not None and math.isfinite(t) else None
