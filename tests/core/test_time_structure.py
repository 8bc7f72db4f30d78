"""No false alarms from time structure, with a training table that has no timestamps.

A small world of its own (not ``detector/sim``): three regions in UTC-5, UTC+1 and UTC+8 whose
volume follows their local clock, so the region mix turns over during the UTC day; a local-hour
feature (one value per region in a UTC hour), a part-of-day category, a channel whose mix follows
the local hour, a field that is null by design in one channel, weekend volume +10%. Training is a
uniform sample of whole days without a time column.
"""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from detector.core.engine import Engine
from detector.core.reference.build import build_reference
from detector.core.settings import DetectorSettings
from tests.engine_replay import replay_log

T0 = 1795564800.0 + 5 * 3600  # 2026-11-25T05:00Z, mid-week
OFFSETS = {"amer": -5, "emea": 1, "apac": 8}
SHARE = {"amer": 0.45, "emea": 0.35, "apac": 0.2}
PARTS = ["night"] * 6 + ["morning"] * 6 + ["afternoon"] * 6 + ["evening"] * 6


def _curve(h: np.ndarray) -> np.ndarray:
    return 0.25 + np.exp(-((h - 14.0) ** 2) / 18.0) + 0.5 * np.exp(-((h - 20.5) ** 2) / 4.0)


def world(hours: float, rate: float, seed: int, start: float = T0, fault=None) -> dict[str, np.ndarray]:
    """Events of ``hours`` from ``start`` (epoch seconds); ``fault(cols)`` edits the columns in place."""
    rng = np.random.default_rng(seed)
    minutes = np.arange(0.0, hours * 60.0)
    parts = []
    for region, off in OFFSETS.items():
        local = ((start + minutes * 60.0) / 3600.0 + off) % 24.0
        day = (((start + minutes * 60.0) / 3600.0 + off) // 24.0 + 3) % 7  # 0 = Monday
        lam = rate / 60.0 * SHARE[region] * _curve(local) / 0.62 * np.where(day >= 5, 1.1, 1.0)
        n = rng.poisson(lam)
        t = np.repeat(start + minutes * 60.0, n) + rng.random(n.sum()) * 60.0
        parts.append((t, region, off))
    ts = np.concatenate([p[0] for p in parts])
    region = np.concatenate([np.full(p[0].size, p[1], dtype=object) for p in parts])
    off = np.concatenate([np.full(p[0].size, p[2]) for p in parts])
    order = np.argsort(ts)
    ts, region, off = ts[order], region[order], off[order]
    n = ts.size
    local = ((ts / 3600.0 + off) % 24.0).astype(int)
    p_pos = np.clip(0.15 + 0.6 * np.exp(-((local - 12.0) ** 2) / 10.0), 0.05, 0.8)
    pos = rng.random(n) < p_pos
    channel = np.where(pos, "pos", np.where(rng.random(n) < 0.6, "app", "web")).astype(object)
    cols = {
        "ts": ts, "region": region, "channel": channel,
        "local_hour": local.astype(float), "day_part": np.array([PARTS[h] for h in local], dtype=object),
        "amount": np.round(rng.lognormal(3.2 + 0.3 * (local < 6), 0.9, n), 2),
        "device_trust": np.where(pos, np.nan, np.round(rng.beta(5, 2, n), 4)),
        "items": (1 + rng.poisson(0.8, n)).astype(float),
    }
    if fault is not None:
        fault(cols)
    return cols


def training(seed: int = 0):
    cols = world(7 * 24, 2000, seed, start=T0 - 30 * 86400)
    keep = np.random.default_rng(seed).random(cols["ts"].size) < 0.6
    cols = {k: v[keep] for k, v in cols.items() if k != "ts"}  # no time column: a sample of whole days
    return build_reference(cols, slice_columns=["region", "channel"])


def messages(cols: dict[str, np.ndarray]) -> list[bytes]:
    feats = ("local_hour", "day_part", "amount", "device_trust", "items")
    out = []
    for i in range(cols["ts"].size):
        f = {}
        for k in feats:
            v = cols[k][i]
            v = v.item() if hasattr(v, "item") else v
            f[k] = None if isinstance(v, float) and v != v else (int(v) if k in ("local_hour", "items") else v)
        out.append(orjson.dumps({"prediction_id": f"p{i}", "model": "m", "ts": float(cols["ts"][i]), "features": f,
                                 "slices": {"region": cols["region"][i], "channel": cols["channel"][i]}}))
    return out


def replay(ref, cols, chunk=20_000, settings: DetectorSettings | None = None):
    r = replay_log(Engine(settings or DetectorSettings(), default_reference=ref), messages(cols), chunk)
    return r.engine, r.dicts("firing")


@pytest.fixture(scope="module")
def ref():
    return training()


def test_clean_traffic_with_time_zones_and_local_time_features_raises_nothing(ref):
    assert not ref.hourly and "local_hour" in ref.codes
    eng, alerts = replay(ref, world(6 * 24, 300, seed=1))
    assert eng.counters.windows_closed >= 140
    assert alerts == [], [(a["kind"], a["feature"], a["slice"], a["statistic"], a["window"]["start"]) for a in alerts]


def test_a_region_going_quiet_moves_all_traffic_but_is_not_drift(ref):
    """The all-traffic row is judged against its usual mix re-weighted to the window's region mix.
    (Rows of *another* dimension - the app channel, a third of it in apac - still see the change:
    the window keeps no joint region x channel counts to re-weight them with.)"""
    def outage(cols):  # apac sends nothing for six hours on day four (its traffic is not wrong, it is absent)
        t = cols["ts"]
        gone = (cols["region"] == "apac") & (t >= T0 + 80 * 3600) & (t < T0 + 86 * 3600)
        for k in cols:
            cols[k] = cols[k][~gone]

    _, alerts = replay(ref, world(5 * 24, 300, seed=2, fault=outage))
    everywhere = [(a["kind"], a["feature"], a["statistic"]) for a in alerts if a["slice"] == {}]
    assert everywhere == []


def test_a_sudden_pipeline_fault_is_still_caught_within_hours(ref):
    onset = T0 + 90 * 3600 + 1234

    def join_failure(cols):
        hit = (cols["ts"] >= onset) & (np.random.default_rng(5).random(cols["ts"].size) < 0.6)
        cols["amount"] = np.where(hit, np.nan, cols["amount"])

    _, alerts = replay(ref, world(5 * 24, 300, seed=3, fault=join_failure))
    assert alerts, "missed"
    first = alerts[0]
    assert (first["kind"], first["feature"], first["cause"]) == ("missing_values", "amount", "pipeline_skew")
    end = np.datetime64(first["window"]["end"].replace("Z", "")).astype("datetime64[s]").astype(float)
    assert onset < end <= onset + 3 * 3600


def test_a_quiet_region_whose_producer_stamps_local_time_as_utc_is_paged_as_a_clock_shift(ref):
    """apac sends ~30 events an hour at 150/h (fewer at night): never enough for one window's clock
    check, so the trailing hours are pooled (detector.core.checks.pooled_shift); the first page names
    the clock, not a generic drift of the local-hour feature."""
    onset = T0 + 74 * 3600 + 1234

    def utc_as_local(cols):  # log order unchanged: the events arrive when they happen, stamped 8 h late
        hit = (cols["region"] == "apac") & (cols["ts"] >= onset)
        cols["ts"] = np.where(hit, cols["ts"] + 8 * 3600, cols["ts"])

    _, alerts = replay(ref, world(5 * 24, 150, seed=4, fault=utc_as_local))
    end = lambda a: np.datetime64(a["window"]["end"].replace("Z", "")).astype("datetime64[s]").astype(float)  # noqa: E731
    before = [(a["kind"], a["feature"], a["slice"]) for a in alerts if end(a) <= onset]
    assert before == []
    after = [a for a in alerts if end(a) > onset]
    assert after, "missed"
    first = after[0]
    assert (first["kind"], first["statistic"], first["cause"], first["slice"]) == (
        "feature_drift", "time_shift_hours", "pipeline_skew", {"region": "apac"}), first
    # coarse bins (deciles of the hour, six-hour parts of the day) resolve the shift to about an hour
    assert abs(first["value"] - 8.0) <= 1.0 and first["feature"] in ("local_hour", "day_part")
    assert end(first) <= onset + 24 * 3600
