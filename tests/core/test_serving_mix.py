"""Serving health of a slice under a channel mix its history never had.

The weekly world of :mod:`tests.core.test_weekly_structure` with latency by channel (``branch`` calls
a slow core system: 140 ms median, ``online`` 60 ms). A log that begins on a Sunday has a day of
online-only history when the branches open on Monday morning: each region's p95 latency doubles,
because its traffic now includes branch calls - no fault, a population its history has not seen.
The region rows' serving tests wait until the baseline has seen that traffic; the channel rows keep
judging their own latency, so a real slowdown still pages.
"""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from detector.core.engine import Engine
from detector.core.settings import DetectorSettings
from tests.core.test_weekly_structure import T0, training, world
from tests.engine_replay import replay_log

SUNDAY = T0 + 4 * 86400 - 6 * 3600  # 2026-11-29T00:00Z


def messages(cols: dict[str, np.ndarray], latency: np.ndarray) -> list[bytes]:
    out = []
    for i in range(cols["ts"].size):
        f = {"application_hour": int(cols["application_hour"][i]), "weekday": cols["weekday"][i],
             "branch_code": cols["branch_code"][i], "income": float(cols["income"][i])}
        out.append(orjson.dumps({"prediction_id": f"p{i}", "model": "m", "ts": float(cols["ts"][i]), "features": f,
                                 "score": float(cols["score"][i]), "latency_ms": float(latency[i]),
                                 "slices": {"region": cols["region"][i], "channel": cols["channel"][i]}}))
    return out


def replay(ref, cols, latency, chunk=5_000):
    eng = Engine(DetectorSettings(), default_reference=ref)
    return replay_log(eng, messages(cols, latency), chunk).dicts("firing")


def latencies(cols: dict[str, np.ndarray], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    med = np.where(cols["channel"] == "branch", 140.0, 60.0)
    return np.round(med * np.exp(0.35 * rng.standard_normal(cols["ts"].size)), 1)


@pytest.fixture(scope="module")
def ref():
    return training()


def test_the_first_monday_after_a_sunday_start_is_not_a_latency_fault(ref):
    cols = world(54, 400, seed=4, start=SUNDAY)  # Sunday 00:00 to Tuesday 06:00 UTC
    alerts = replay(ref, cols, latencies(cols, 4))
    serving = [a for a in alerts if a["kind"] in ("latency", "fallback_rate", "decision_rate")]
    assert serving == [], [(a["kind"], a["slice"], a["value"], a["window"]["start"]) for a in serving]


def test_a_channel_slowdown_on_that_monday_still_pages(ref):
    cols = world(54, 400, seed=4, start=SUNDAY)
    lat = latencies(cols, 4)
    onset = SUNDAY + 86400 + 14 * 3600  # Monday 14:00 UTC: branches open in every region
    lat = np.where((cols["channel"] == "online") & (cols["ts"] >= onset), lat * 6.0, lat)
    alerts = [a for a in replay(ref, cols, lat) if a["kind"] == "latency"]
    assert alerts, "missed"
    first = alerts[0]
    assert first["slice"] in ({}, {"channel": "online"}), first
    end = np.datetime64(first["window"]["end"].replace("Z", "")).astype("datetime64[s]").astype(float)
    assert onset < end <= onset + 3 * 3600
