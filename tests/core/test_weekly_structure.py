"""No false alarms from a weekly cycle, with a training table that has timestamps.

A small world of its own: three regions in UTC+0, UTC+1 and UTC+2; a ``branch`` channel open
09:00-17:00 local on weekdays, 09:00-13:00 on Saturdays and closed on Sundays, next to ``online``
around the clock, so the channel mix of an hour differs between weekdays and weekends (the
seasonal baseline is by hour of day, and training mixes all days); a local-hour feature and a
weekday feature (one value per region in a UTC hour); a branch code that the channel determines;
a score that depends on the channel. Training is six weeks sampled uniformly in time, with its
timestamps.
"""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from detector.core.engine import Engine
from detector.core.reference.build import build_reference
from detector.core.reference.hourly import clock_features
from detector.core.settings import DetectorSettings
from detector.core.state.snapshot import engine_restore, engine_snapshot
from tests.engine_replay import replay_log

T0 = 1795564800.0 + 6 * 3600  # 2026-11-25T06:00Z, a Wednesday
OFFSETS = {"west": 0, "central": 1, "east": 2}
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
BRANCHES = {"west": ["0412", "0077"], "central": ["1203", "1220", "1301"], "east": ["2001", "2002"]}


def world(hours: float, rate: float, seed: int, start: float = T0, fault=None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    minutes = np.arange(0.0, hours * 60.0)
    ts_parts, reg_parts = [], []
    for region, off in OFFSETS.items():
        t = start + minutes * 60.0
        local = (t / 3600.0 + off) % 24.0
        day = ((t / 3600.0 + off) // 24.0 + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)
        online = 0.4 + np.exp(-((local - 20.0) ** 2) / 8.0)
        open_ = ((day < 5) & (local >= 9) & (local < 17)) | ((day == 5) & (local >= 9) & (local < 13))
        lam = rate / 60.0 / 3 * (online + 1.5 * open_)
        n = rng.poisson(lam)
        ts_parts.append(np.repeat(t, n) + rng.random(n.sum()) * 60.0)
        reg_parts.append(np.full(n.sum(), region, dtype=object))
    ts, region = np.concatenate(ts_parts), np.concatenate(reg_parts)
    order = np.argsort(ts)
    ts, region = ts[order], region[order]
    off = np.array([OFFSETS[r] for r in region])
    local = ((ts / 3600.0 + off) % 24.0).astype(int)
    day = (((ts / 3600.0 + off) // 24.0 + 3) % 7).astype(int)
    open_ = ((day < 5) & (local >= 9) & (local < 17)) | ((day == 5) & (local >= 9) & (local < 13))
    n = ts.size
    branch = open_ & (rng.random(n) < 1.5 / (1.5 + 0.4 + np.exp(-((local - 20.0) ** 2) / 8.0)))
    channel = np.where(branch, "branch", "online").astype(object)
    code = np.array([rng.choice(BRANCHES[r]) if b else "9001" for r, b in zip(region.tolist(), branch.tolist(), strict=True)],
                    dtype=object)
    income = np.round(rng.lognormal(10.6 + 0.2 * branch, 0.5, n), -2)
    score = 1 / (1 + np.exp(-(-2.6 + 0.8 * ~branch - 0.3 * (income / 40000 - 1) + rng.normal(0, 0.4, n))))
    cols = {"ts": ts, "region": region, "channel": channel, "application_hour": local.astype(float),
            "weekday": np.array([DAYS[d] for d in day], dtype=object), "branch_code": code, "income": income,
            "score": np.round(score, 4)}
    if fault is not None:
        fault(cols)
    return cols


def training(seed: int = 0):
    cols = world(42 * 24, 600, seed, start=T0 - 43 * 86400)
    keep = np.random.default_rng(seed).random(cols["ts"].size) < 0.1
    cols = {k: v[keep] for k, v in cols.items()}
    return build_reference(cols, score_column="score", slice_columns=["region", "channel"], time_column="ts")


def messages(cols: dict[str, np.ndarray]) -> list[bytes]:
    out = []
    for i in range(cols["ts"].size):
        f = {"application_hour": int(cols["application_hour"][i]), "weekday": cols["weekday"][i],
             "branch_code": cols["branch_code"][i], "income": float(cols["income"][i])}
        out.append(orjson.dumps({"prediction_id": f"p{i}", "model": "m", "ts": float(cols["ts"][i]), "features": f,
                                 "score": float(cols["score"][i]),
                                 "slices": {"region": cols["region"][i], "channel": cols["channel"][i]}}))
    return out


def replay(ref, cols, chunk=20_000, restore_at: int | None = None):
    def restart(eng: Engine, k: int) -> Engine | None:
        if restore_at is None or k + 1 != restore_at:
            return None
        fresh = Engine(DetectorSettings(), default_reference=ref)  # a restart mid-stream through the plain-data state
        engine_restore(fresh, engine_snapshot(eng))
        return fresh

    r = replay_log(Engine(DetectorSettings(), default_reference=ref), messages(cols), chunk, after_chunk=restart)
    return r.engine, r.dicts("firing")


@pytest.fixture(scope="module")
def ref():
    return training()


def test_clock_features_are_recognised_from_timestamped_training(ref):
    assert sorted(ref.hourly.get("clock", [])) == ["application_hour", "weekday"]
    # the branch code follows the channel (a slice attribute), not the clock; income follows nothing
    rng = np.random.default_rng(1)
    ts = np.sort(rng.random(5000) * 30 * 86400)
    region = rng.choice(["a", "b"], 5000).astype(object)
    currency = np.where(region == "a", "EUR", "USD").astype(object)
    cols = {"currency": currency, "region": region, "noise": rng.normal(size=5000)}
    assert clock_features(cols, ts, ["currency", "noise"], ["region"]) == []


def test_a_week_with_a_weekend_raises_nothing_and_survives_a_restart(ref):
    # Wednesday 06:00 to the next Wednesday: a Saturday with branches closing at 13:00 and a closed Sunday
    eng, alerts = replay(ref, world(7 * 24, 400, seed=2), restore_at=3)
    assert eng.counters.windows_closed >= 160
    assert alerts == [], [(a["kind"], a["feature"], a["slice"], a["statistic"], a["window"]["start"]) for a in alerts]


def test_a_producer_clock_shift_is_still_caught(ref):
    onset = T0 + 4 * 86400 + 3 * 3600 + 1234  # Sunday 09:20 UTC

    def east_one_hour_late(cols):  # east stamps its local time with +01:00: every ts one hour early
        hit = (cols["region"] == "east") & (cols["ts"] >= onset)
        cols["ts"] = np.where(hit, cols["ts"] - 3600.0, cols["ts"])
        order = np.argsort(cols["ts"], kind="stable")
        for k in cols:
            cols[k] = cols[k][order]

    _, alerts = replay(ref, world(6 * 24, 400, seed=3, fault=east_one_hour_late))
    shifted = [a for a in alerts if a["statistic"] == "time_shift_hours"]
    assert shifted, [(a["kind"], a["feature"], a["slice"], a["statistic"]) for a in alerts]
    first = shifted[0]
    assert first["feature"] == "application_hour" and first["slice"] in ({}, {"region": "east"}), first
    assert first["cause"] == "pipeline_skew" and abs(first["value"]) == 1.0
    end = np.datetime64(first["window"]["end"].replace("Z", "")).astype("datetime64[s]").astype(float)
    assert onset < end <= onset + 24 * 3600
    assert all(a["window"]["end"] > "2026-11-29T09" for a in alerts), "an alert before the onset"


def test_a_clock_that_goes_wrong_at_night_in_a_quiet_region_is_paged_before_morning(ref):
    """At night east sends a few dozen events an hour: too few for one window's clock check, so the trailing
    hours are pooled - and the hours before the clock went wrong must not hide it (they fit neither the own
    nor the shifted hours). The local hour is judged per value (a clock feature), not in deciles."""
    onset = T0 + 2 * 86400 + 17 * 3600 + 1234  # Friday 23:20 UTC, 01:20 in east

    def east_one_hour_late(cols):
        hit = (cols["region"] == "east") & (cols["ts"] >= onset)
        cols["ts"] = np.where(hit, cols["ts"] + 3600.0, cols["ts"])
        order = np.argsort(cols["ts"], kind="stable")
        for k in cols:
            cols[k] = cols[k][order]

    _, alerts = replay(ref, world(4 * 24, 250, seed=5, fault=east_one_hour_late))
    end = lambda a: np.datetime64(a["window"]["end"].replace("Z", "")).astype("datetime64[s]").astype(float)  # noqa: E731
    assert [a for a in alerts if end(a) <= onset] == []
    after = [a for a in alerts if end(a) > onset]
    assert after, "missed"
    first = after[0]
    assert (first["statistic"], first["cause"]) == ("time_shift_hours", "pipeline_skew"), first
    assert abs(first["value"]) == 1.0 and first["slice"] in ({}, {"region": "east"}), first
    assert end(first) <= onset + 6 * 3600, (end(first) - onset) / 3600
