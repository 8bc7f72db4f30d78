"""Statistical checks over one closed window, vectorised across slice rows.

Each check returns a :class:`Result`: for every *pseudo-row* (a slice row, or the complement of
a slice row: all traffic minus that slice) the statistic's value, whether it was tested (enough
events, a reference to compare with), whether the effect crosses the warning / critical
threshold, and a p-value for the observed difference at this sample size. Selection
(:mod:`detector.core.decisions.select`) then applies false-discovery-rate control and localises findings
to the slice that explains them. Nothing here keeps detection state (the reference profile of each
pseudo-row is cached on the layout: the same rows, hours and feature give the same profiles).
"""

from __future__ import annotations

import numpy as np

from detector.core.checks.categorical import categorical_checks
from detector.core.checks.numeric import numeric_checks
from detector.core.checks.rates import rate_checks, schema_checks
from detector.core.checks.result import Result
from detector.core.checks.time_shift import time_shift_checks
from detector.core.checks.view import View, build_view, is_clock
from detector.core.guard import Guard, unguarded
from detector.core.inputs.layout import Layout
from detector.core.inputs.seasonal import SeasonalBaseline
from detector.core.inputs.window import N_CAND
from detector.core.settings import DetectorSettings

__all__ = ["N_CAND", "Result", "View", "build_view", "is_clock", "run_checks"]


def run_checks(lay: Layout, v: View, sb: SeasonalBaseline, st: DetectorSettings, cands: np.ndarray,
               cand_ref: np.ndarray, guard: Guard = unguarded) -> list[Result]:
    """Every window check family; ``guard`` runs each (:mod:`detector.core.guard`: one that raises is skipped)."""
    from detector.core.reference.audit import (
        leak_serving_checks,  # leak suspects constant at serving (schema)
    )

    results: list[Result] = []
    results.extend(guard("numeric", lambda: numeric_checks(lay, v, sb, st, cands, cand_ref), []))
    for j in range(len(lay.categorical)):
        results.extend(guard("categorical", lambda j=j: categorical_checks(lay, v, st, j), []))
    results.extend(guard("rates", lambda: rate_checks(lay, v, sb, st), []))
    results.extend(guard("schema", lambda: schema_checks(lay, v, st), []))
    results.extend(guard("time_shift", lambda: time_shift_checks(lay, v, st), []))
    results.extend(guard("leak_serving", lambda: leak_serving_checks(lay, v, st, cands), []))
    return results
