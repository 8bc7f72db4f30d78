"""Production's label censoring at a label age: how the pairs labelled by then differ from complete labels.

Training knows complete labels; a cohort evaluated at a label age does not (the slower label value -
positives such as chargebacks - is under-represented, and the pairs in by the age may be a riskier score
mix). :func:`censoring` and :func:`score_censoring` measure both from cohorts old enough for their late
labels to be in (:func:`censoring_cohorts`); the comparisons with training scale by them
(:func:`~detector.core.outcomes.binary_eval.binary_results`).
"""

from __future__ import annotations

import math
from typing import Any

from detector.core.outcomes.cohort import C, Cohort
from detector.core.outcomes.model_state import OutcomeModel as _Model

__all__ = ["censoring", "score_censoring", "censoring_cohorts"]


def censoring(mon: Any, m: _Model, mat: float) -> tuple[float, float]:
    """Observed base rate at label age ``mat`` over the (nearly) complete one, from production's own
    delays: cohorts evaluated at ``mat`` and now at least four times as old, with the labels that came
    after their evaluation. 1.0 when every label comes well within ``mat``; NaN until known.

    Positives that take longer (chargebacks) make a cohort look negative-heavy at any fixed age;
    the comparisons with training (which knows complete labels) scale the training rates by it.
    Returns (factor, relative variance): the factor is a ratio of two thinning shares estimated from
    production's own pairs - a quiet model's first days give it from a few dozen positives - and the
    tests against training carry that noise instead of taking the scaled rate as exact.
    """
    old = censoring_cohorts(mon, m, mat)
    lab = sum(d.cnt[0, C["lab"]] for d in old)
    pos = sum(d.cnt[0, C["pos"]] for d in old)
    late, late_pos = sum(d.late for d in old), sum(d.late_pos for d in old)
    if lab < mon.settings.thresholds.min_labels or pos <= 0:
        return math.nan, math.nan
    a_pos, a_lab = pos / (pos + late_pos), lab / (lab + late)  # shares of positives / pairs in by this age
    return float(a_pos / a_lab), float((1 - a_pos) / pos + (1 - a_lab) / lab)


def score_censoring(mon: Any, m: _Model, mat: float) -> float:
    """Mean score of the pairs labelled by label age ``mat`` over that of all labelled pairs, from the same
    cohorts as :meth:`censoring`; 1.0 when it cannot be told (no late labels, or counts kept before
    late scores were).

    When the riskier pairs are labelled sooner (positives come faster and scores rank them), the pairs
    in by this age have a higher mean score than the cohort: the observed/expected ratio at this age is
    the complete one x ``censoring / score_censoring``, not x ``censoring`` - scaling only the observed
    side counts the selection twice and reads a clean model as miscalibrated."""
    old = censoring_cohorts(mon, m, mat)
    s, sl = sum(d.cnt[0, C["s"]] for d in old), sum(d.cnt[0, C["sl"]] for d in old)
    late_s, late_sl = sum(d.late_s for d in old), sum(d.late_sl for d in old)
    if sl < mon.settings.thresholds.min_labels or s <= 0 or late_sl <= 0:
        return 1.0
    return float((s / sl) / ((s + late_s) / (sl + late_sl)))


def censoring_cohorts(mon: Any, m: _Model, mat: float) -> list[Cohort]:
    """Cohorts evaluated at ``mat`` whose ends lie at least ``4 mat`` back: their late labels are (nearly) in.

    The label age is where about half of what comes within twice that age is in
    (:mod:`detector.core.outcomes.maturity`), so at ``2 mat`` a sizeable part of the slow labels is still
    on its way: the first days' factors then read the labels in by the age as a fuller share than they
    are, and the comparisons with training alarm on a clean model while they settle."""
    return [d for d in m.done.values() if math.isclose(d.horizon, mat) and d.end + 4 * mat <= mon.now]
