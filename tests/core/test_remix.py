"""When the slice mix explains a feature's movement (detector.core.checks.remix): the rule that lets
slice rows of another dimension wait while one dimension's mix turns over (a Saturday afternoon
when the branches close, in one region's hours first)."""

from __future__ import annotations

import numpy as np

from detector.core.checks.remix import _mix_moved_it
from detector.core.checks.result import Result


def _result(values: list[float], thr: float = 0.15, tested: list[bool] | None = None) -> tuple[Result, np.ndarray, np.ndarray, np.ndarray]:
    v = np.asarray(values, dtype=float)
    t = np.ones(len(v), bool) if tested is None else np.asarray(tested)
    r = Result("feature_drift", "branch_code", "linf", v, t, v >= thr, v >= 2 * thr, np.full(len(v), 1e-9), thr,
               lambda i: {}, lambda i: "")
    warn = r.warn & t
    return r, warn, t, np.abs(v)


def _explained(values: list[float], tested: list[bool] | None = None) -> bool:
    """Whether the mix explains the rows' movement, judged at the row the check would report first."""
    r, warn, t, eff = _result(values, tested=tested)
    first = int(np.lexsort((eff, warn, ~t))[0])
    return bool(_mix_moved_it(r, warn, t, eff, first))


def test_a_breach_that_a_remix_clears_is_explained():
    assert _explained([0.2, 0.05])


def test_a_breach_that_no_remix_clears_is_not_explained():
    assert not _explained([0.3, 0.25])


def test_below_the_threshold_a_material_movement_that_the_remix_takes_away_is_explained():
    # all traffic moved by 0.1 (two thirds of the threshold, one region's branch traffic diluted by the others)
    assert _explained([0.1, 0.03])


def test_below_the_threshold_the_remix_must_take_most_of_the_movement_away():
    assert not _explained([0.1, 0.07])


def test_an_all_traffic_row_that_barely_moved_explains_nothing():
    # a drift confined to one region hardly moves all traffic: the mix cannot be said to explain it
    assert not _explained([0.05, 0.0])


def test_untested_rows_explain_nothing():
    assert not _explained([0.1, 0.0], tested=[False, True])
    assert not _explained([0.1, 0.0], tested=[True, False])
