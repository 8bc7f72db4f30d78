"""Slice contribution to the performance loss: the formula, its baselines and its decomposition."""

from __future__ import annotations

import numpy as np
import pytest

from detector.core.outcomes.contribution import MIN_SUPPORT, rank_slices

LABELS = ["", "region=eu", "region=us", "channel=web", "channel=app"]


def counts(rows: list[tuple[int, int, int, int]]) -> np.ndarray:
    return np.array(rows, dtype=np.float64)


# tp, fp, fn, tn; all traffic = eu + us = web + app
CUR = counts([(50, 30, 50, 870), (10, 20, 40, 430), (40, 10, 10, 440), (30, 15, 20, 435), (20, 15, 30, 435)])
BASE = counts([(80, 20, 20, 880), (40, 10, 10, 440), (40, 10, 10, 440), (40, 10, 10, 440), (40, 10, 10, 440)])


def test_recall_precision_and_cost_contributions_by_hand():
    r = rank_slices(LABELS, CUR, BASE, costs=(1.0, 10.0))
    rec = r["recall"]
    # recall: all 50/100 vs 80/100. eu: share 50/100 of positives, 10/50 = 0.2 vs 0.8 -> 0.5 x 0.6 = 0.3
    # app: share 50/100, 20/50 = 0.4 vs 0.8 -> 0.2; web: 30/50 = 0.6 vs 0.8 -> 0.1; us: 0.8 vs 0.8 -> 0
    assert (rec["current"], rec["baseline"], rec["loss"]) == (0.5, 0.8, 0.3)
    assert [(d["slice"], d["contribution"]) for d in rec["top"]] == [("region=eu", 0.3), ("channel=app", 0.2),
                                                                    ("channel=web", 0.1)]
    # precision: eu flags 30 of 80 (share 0.375), 10/30 vs 0.8 -> 0.375 x 0.4667 = 0.175
    prec = {d["slice"]: d for d in r["precision"]["top"]}
    assert prec["region=eu"]["share"] == 0.375 and prec["region=eu"]["contribution"] == pytest.approx(0.175, abs=1e-4)
    # cost per labelled (1 x FP + 10 x FN): eu (20 + 400) / 500 = 0.84 vs (10 + 100) / 500 = 0.22, share 0.5 -> 0.31
    cost = {d["slice"]: d for d in r["expected_cost"]["top"]}
    assert cost["region=eu"]["metric"] == 0.84 and cost["region=eu"]["baseline_metric"] == 0.22
    assert cost["region=eu"]["contribution"] == pytest.approx(0.31)
    assert "error_rate" not in r  # costs configured: the expected cost replaces the error rate


def test_contributions_of_one_dimension_add_up_to_the_loss_minus_the_mix_effect():
    r = rank_slices(LABELS, CUR, BASE)
    for dim in ("region", "channel"):
        rows = [i for i, k in enumerate(LABELS) if k.startswith(dim)]
        m_cur = CUR[rows, 0] / (CUR[rows, 0] + CUR[rows, 2])
        m_base = BASE[rows, 0] / (BASE[rows, 0] + BASE[rows, 2])
        share = (CUR[rows, 0] + CUR[rows, 2]) / (CUR[0, 0] + CUR[0, 2])
        mix = float((share * m_base).sum()) - 0.8
        total = float((share * (m_base - m_cur)).sum())
        assert total == pytest.approx(r["recall"]["loss"] - mix)
        listed = sum(d["contribution"] for d in r["recall"]["top"] if d["slice"].startswith(dim))
        assert listed == pytest.approx(total, abs=1e-3)  # every slice here lost, or stayed put


def test_small_slices_fall_back_to_the_all_traffic_baseline_and_no_baseline_ranks_against_now():
    base = BASE.copy()
    base[1] = (5, 1, 2, 50)  # eu had too few positives in the baseline to be its own baseline
    assert base[1, 0] + base[1, 2] < MIN_SUPPORT
    eu = next(d for d in rank_slices(LABELS, CUR, base)["recall"]["top"] if d["slice"] == "region=eu")
    assert eu["baseline_source"] == "all_traffic_trailing" and eu["baseline_metric"] == 0.8
    now = rank_slices(LABELS, CUR, None)
    rec = now["recall"]
    assert rec["baseline_source"] == "all_traffic_now" and rec["loss"] == 0.0
    assert [d["slice"] for d in rec["top"]] == ["region=eu", "channel=app"]  # below the current average
    assert len(rank_slices(LABELS, CUR, BASE, top=1)["recall"]["top"]) == 1
