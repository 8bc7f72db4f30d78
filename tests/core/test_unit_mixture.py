"""A unit change that begins inside a window is paged as a unit change in that window.

The onset window holds events in both units: a shifted mean and a wider spread, which the pure
unit check (same shape, shifted) refuses. :mod:`detector.core.checks.unitmix` reads it as training
mixed with training scaled by a unit factor, and confirms it on the histogram; other changes that
move the mean and widen the spread are not read that way.
"""

from __future__ import annotations

import numpy as np
import pytest

from detector.core.checks.unitmix import MIN_SHARE, partial_unit
from detector.core.settings import DetectorSettings
from tests.core.test_time_structure import T0, replay, training, world

PARTIAL = DetectorSettings.model_validate({"thresholds": {"unit_partial": True}})

RNG_REF = np.random.default_rng(7)
REF = RNG_REF.lognormal(3.5, 1.2, 50_000)
EDGES = np.quantile(REF, np.linspace(0.005, 0.995, 99))
RF = np.bincount(np.searchsorted(EDGES, REF, side="right"), minlength=100) / REF.size
COARSE = np.minimum(np.arange(100) // 10, 9)


def judge(x: np.ndarray, unit_ratio: float = 8.0):
    lx, lr = np.log(np.abs(x)), np.log(REF)
    cur = np.bincount(np.searchsorted(EDGES, x, side="right"), minlength=100)[None].astype(float)
    hit, k, q = partial_unit(np.array([lx.mean()]), np.array([lx.std()]), np.array([lr.mean()]), np.array([lr.std()]),
                             cur, RF[None], EDGES, COARSE, np.array([float(REF.size)]), unit_ratio)
    return bool(hit[0]), float(k[0]), float(q[0])


@pytest.mark.parametrize("seed", range(5))
def test_part_of_a_window_in_another_unit_is_a_unit_change_with_its_factor_and_share(seed):
    rng = np.random.default_rng(seed)
    cents = np.concatenate([rng.lognormal(3.5, 1.2, 100), 100 * rng.lognormal(3.5, 1.2, 50)])
    hit, k, q = judge(cents)
    assert hit and 40 < k < 250 and 0.2 < q < 0.5
    grams = np.concatenate([rng.lognormal(3.5, 1.2, 30), 0.001 * rng.lognormal(3.5, 1.2, 120)])  # kg -> g the other way
    hit, k, q = judge(grams)
    assert hit and 1 / 2500 < k < 1 / 400 and 0.65 < q <= 1.0


@pytest.mark.parametrize("seed", range(5))
def test_drift_a_heavier_tail_or_a_small_factor_is_not_a_unit_change(seed):
    rng = np.random.default_rng(100 + seed)
    assert not judge(rng.lognormal(4.2, 1.7, 150))[0]  # the whole distribution moved and widened
    tail = np.concatenate([rng.lognormal(3.5, 1.2, 110), rng.lognormal(5.5, 2.2, 40)])  # a heavier, wider tail
    assert not judge(tail)[0]
    assert not judge(np.concatenate([rng.lognormal(3.5, 1.2, 100), 3 * rng.lognormal(3.5, 1.2, 50)]))[0]  # x3: no unit
    few = np.concatenate([rng.lognormal(3.5, 1.2, 140), 100 * rng.lognormal(3.5, 1.2, 10)])  # 7%: the next window decides
    hit, _, q = judge(few)
    assert not hit and not q >= MIN_SHARE


def test_a_unit_change_in_the_middle_of_a_window_is_paged_as_unit_shift_from_that_window():
    ref = training()
    onset = T0 + 60 * 3600 + 20 * 60  # 20 minutes into a window

    def cents(cols):
        cols["amount"] = np.where(cols["ts"] >= onset, np.round(cols["amount"] * 100, 2), cols["amount"])

    _, alerts = replay(ref, world(3 * 24, 300, seed=5, fault=cents), settings=PARTIAL)
    assert alerts, "missed"
    first = alerts[0]
    assert (first["kind"], first["feature"], first["cause"]) == ("unit_shift", "amount", "pipeline_skew"), first
    assert first["window"]["start"] == "2026-11-27T17:00:00.000Z"  # the onset window itself
    assert 50 < first["value"] < 200 and 0.5 < first["evidence"]["current"]["changed_share"] < 0.8
    assert "began in this window" in first["summary"] and "cents" in first["summary"]


def test_by_default_a_new_segment_of_larger_values_is_not_paged_as_a_unit_change():
    """Off by default: a share of traffic from a new high-value segment with training's shape (here
    x8-x30 in a quarter of the events, as a premium segment grows) is the same mixture a unit change
    begun inside a window makes - paged as a pipeline fault, it would send the owner to the wrong team.
    The partial reading is opt-in; the whole-window unit check and the drift checks still run."""
    ref = training()
    onset = T0 + 60 * 3600
    rng = np.random.default_rng(11)

    def high_ticket(cols):
        hit = (cols["ts"] >= onset) & (rng.random(cols["ts"].size) < 0.25)
        cols["amount"] = np.where(hit, np.round(cols["amount"] * rng.uniform(8, 30, cols["ts"].size), 2), cols["amount"])

    _, alerts = replay(ref, world(3 * 24, 300, seed=5, fault=high_ticket))
    assert not [a for a in alerts if a["kind"] == "unit_shift"], alerts
    _, opted = replay(ref, world(3 * 24, 300, seed=5, fault=high_ticket), settings=PARTIAL)
    assert [a for a in opted if a["kind"] == "unit_shift"], "the opt-in reading should call this mixture a unit change"
