"""A slice whose daily mix moves with the weekday and with bursts is judged with the spread its own days show.

A small world of its own: web and pos traffic with a steady merchant mix, and a quiet ``phone``
channel (about 300 calls a day, callers ringing in bursts with one merchant category each) whose
category mix differs on weekends - a Sunday's phone traffic is far from the all-days mix, and
training (a sample of whole days, no time column) is that all-days mix. ``items`` depends on the
category. A G-test of the trailing day against training that counts every event as independent
pages such a weekend; the same test on ``n / phi`` events (:mod:`detector.core.checks.mixdispersion`)
does not, and a real, persistent change of the phone mix still pages within a day.

Plus the statistic over many simulated stable fortnights (no engine: the same test the engine
runs, on daily counts drawn from the same kind of mix), and the unit behaviour and state of
the daily distribution history.
"""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from detector.core.checks.daily import DayRing, _against
from detector.core.checks.mixdispersion import DaySums, multinomial_overdispersion, same_week
from detector.core.engine import Engine
from detector.core.reference.build import build_reference
from detector.core.settings import DetectorSettings
from detector.core.state.codec import decode, encode
from detector.core.stats.distributions import gtest_gof, linf

T0 = 1795564800.0 + 6 * 3600  # 2026-11-25T06:00Z, a Wednesday
DAY = 86400.0
CATS = np.array(["grocery", "fuel", "travel", "electronics", "gifts", "leisure"], dtype=object)
MIX = {"web": [0.25, 0.15, 0.2, 0.2, 0.1, 0.1], "pos": [0.4, 0.3, 0.05, 0.1, 0.1, 0.05]}
PHONE_WEEKDAY = np.array([0.30, 0.25, 0.20, 0.12, 0.08, 0.05])
PHONE_WEEKEND = np.array([0.05, 0.10, 0.15, 0.25, 0.25, 0.20])
PHONE_SHIFTED = np.array([0.02, 0.03, 0.05, 0.10, 0.30, 0.50])  # a new merchant segment takes the phone line
ITEMS = np.array([1.0, 1.5, 2.0, 4.0, 6.0, 9.0])  # mean items per payment by category


def _weekend(t: np.ndarray) -> np.ndarray:
    return (np.floor(t / DAY).astype(np.int64) + 3) % 7 >= 5  # 1970-01-01 was a Thursday


def world(days: float, seed: int, start: float = T0, shift_from: float | None = None) -> dict[str, np.ndarray]:
    """``days`` of traffic: web 1,500 and pos 1,000 independent events a day; phone ~150 callers a day
    ringing Geometric(1/2) times within ten minutes, each caller with one category drawn from the weekday
    or the weekend phone mix (from ``shift_from`` on: the shifted mix)."""
    rng = np.random.default_rng(seed)
    end = start + days * DAY
    ts, ch, cat = [], [], []
    for name, per_day in (("web", 1500.0), ("pos", 1000.0)):
        n = rng.poisson(per_day * days)
        ts.append(rng.uniform(start, end, n))
        ch.append(np.full(n, name, dtype=object))
        cat.append(rng.choice(len(CATS), n, p=MIX[name]))
    callers = rng.poisson(150.0 * days)
    first = rng.uniform(start, end, callers)
    mixes = np.where(_weekend(first)[:, None], PHONE_WEEKEND, PHONE_WEEKDAY)
    if shift_from is not None:
        mixes = np.where((first >= shift_from)[:, None], PHONE_SHIFTED, mixes)
    own = (rng.random(callers)[:, None] > np.cumsum(mixes, axis=1)).sum(axis=1)
    burst = rng.geometric(0.5, callers)
    ts.append(np.repeat(first, burst) + rng.uniform(0, 600, burst.sum()))
    ch.append(np.full(burst.sum(), "phone", dtype=object))
    cat.append(np.repeat(own, burst))
    cols = {"ts": np.concatenate(ts), "channel": np.concatenate(ch), "cat": np.concatenate(cat)}
    order = np.argsort(cols["ts"])
    cols = {k: v[order] for k, v in cols.items()}
    keep = cols["ts"] < end
    cols = {k: v[keep] for k, v in cols.items()}
    n = cols["ts"].size
    cols["items"] = (1 + rng.poisson(ITEMS[cols["cat"]] - 0.5)).astype(float)
    cols["merchant_category"] = CATS[cols["cat"]]
    cols["score"] = np.round(rng.beta(2, 12, n), 4)
    del cols["cat"]
    return cols


@pytest.fixture(scope="module")
def ref():
    cols = world(56, seed=0, start=T0 - 70 * DAY)  # eight whole weeks: the all-days mix
    return build_reference({k: v for k, v in cols.items() if k != "ts"}, score_column="score", slice_columns=["channel"])


def replay(ref, cols, independent: bool = False, monkeypatch=None, chunk: int = 20_000):
    if independent:  # the test as it was: every event of the day an independent draw
        monkeypatch.setattr(DayRing, "mix", lambda self, v, lay, blocks: None)
    eng = Engine(DetectorSettings(), default_reference=ref)
    msgs = [orjson.dumps({"prediction_id": f"p{i}", "model": "m", "ts": float(cols["ts"][i]), "score": float(cols["score"][i]),
                          "features": {"items": float(cols["items"][i]), "merchant_category": cols["merchant_category"][i]},
                          "slices": {"channel": cols["channel"][i]}})
            for i in range(cols["ts"].size)]
    alerts = []
    for i in range(0, len(msgs), chunk):
        eng.ingest_predictions(msgs[i : i + chunk])
        alerts += eng.advance()
    alerts += eng.flush()
    return eng, [a.to_dict() for a in alerts if a.state == "firing"]


def _end(a) -> float:
    return float(np.datetime64(a["window"]["end"].replace("Z", "")).astype("datetime64[s]").astype(float))


@pytest.fixture(scope="module")
def fortnight():
    return world(15, seed=4)


WEEK = 7 * DAY  # a deployment's first week has no earlier week to say how its weekend looks (see below)


def test_a_weekend_in_a_bursty_slice_is_no_drift(ref, fortnight, monkeypatch):
    eng, alerts = replay(ref, fortnight)
    late = [(a["kind"], a["feature"], a["slice"], a["statistic"], a["window"]["start"]) for a in alerts if _end(a) > T0 + WEEK]
    assert late == []
    ms = eng.models["m"]
    assert len(ms.day.mixes.days) == 14
    # the same traffic, every event of the day counted as independent and compared with the all-days mix only:
    # the second week's weekend (and bursty weekdays) page as drift of the phone line
    _, independent = replay(ref, fortnight, independent=True, monkeypatch=monkeypatch)
    drift = [(a["feature"], a["slice"], a["statistic"]) for a in independent if a["kind"] == "feature_drift" and _end(a) > T0 + WEEK]
    assert ("items", {"channel": "phone"}, "psi_24h") in drift, drift


def test_a_persistent_shift_of_the_phone_mix_still_pages(ref):
    onset = T0 + 10 * DAY + 3 * 3600  # a Saturday: a weekend-like new mix, the least favourable day to see it
    _, alerts = replay(ref, world(12, seed=5, shift_from=onset))
    assert [a for a in alerts if T0 + WEEK < _end(a) <= onset] == []
    drift = [a for a in alerts if a["kind"] == "feature_drift" and _end(a) > onset]
    assert drift, "missed"
    first = drift[0]
    assert (first["feature"], first["slice"], first["statistic"]) == ("items", {"channel": "phone"}, "psi_24h"), first
    assert first["evidence"]["dispersion"] > 1.5  # judged as the bursty slice it is, and caught anyway
    # measured: 31 h after the onset (the trailing day must be mostly the new mix, which the weekend partly explains)
    assert onset < _end(first) <= onset + 48 * 3600, (_end(first) - onset) / 3600


# ----------------------------------------------------------------------------- the statistic alone


def _daily_counts(rng: np.random.Generator, days: int, start_weekday: int) -> np.ndarray:
    """(days, categories) phone counts of a stable bursty weekly slice, as :func:`world` draws them."""
    out = np.zeros((days, len(CATS)))
    for d in range(days):
        mix = PHONE_WEEKEND if (start_weekday + d) % 7 >= 5 else PHONE_WEEKDAY
        callers = rng.poisson(150)
        burst = rng.geometric(0.5, callers)
        own = rng.choice(len(CATS), callers, p=mix)
        out[d] = np.bincount(own, weights=burst, minlength=len(CATS))
    return out


def _judge(c: np.ndarray, d: int, day: np.ndarray, train: np.ndarray) -> tuple[float, float]:
    """(L-infinity, p-value) of ``day`` against training as the engine's trailing-day test judges it after the
    whole days ``c[:d]``: the median day's dispersion, and training re-weighted to the same weekday once a week
    has passed where that is the more charitable reference."""
    starts = np.arange(d) * DAY
    phi = multinomial_overdispersion(c[:d, None], robust=True)
    w = same_week(starts, d * DAY)
    week = (np.tensordot(w, c[:d], axes=(0, 0))[None], c[:d].sum(axis=0)[None]) if w.any() else None
    li, p, _, _ = _against(train[None], day[None].astype(float), np.array([50_000.0]), phi, week, linf)
    return float(li[0]), float(p[0])


def test_many_stable_fortnights_give_no_alarm_and_a_real_shift_still_does():
    rng = np.random.default_rng(11)
    train = (5 * PHONE_WEEKDAY + 2 * PHONE_WEEKEND) / 7
    level = 1e-5  # about what one test needs to pass Benjamini-Hochberg at q = 0.001 among a window's tests
    alarms = {"quasi": 0, "independent": 0}
    caught = {"weekday": [], "weekend": []}
    runs = 200
    for r in range(runs):
        c = _daily_counts(rng, 14, r % 7)
        for d in range(7, 14):  # every day of the second week, judged with the days before it
            li, p = _judge(c, d, c[d], train)
            alarms["quasi"] += li >= 0.15 and p < level
            alarms["independent"] += bool(linf(train, c[d]) >= 0.15 and gtest_gof(c[d], train, ref_n=50_000)[2] < level)
        # the phone line's mix changes for good on day 13, whatever weekday that is (independent calls this time)
        n = int(_daily_counts(rng, 1, 0)[0].sum())
        shifted = np.bincount(rng.choice(len(CATS), n, p=PHONE_SHIFTED), minlength=len(CATS)).astype(float)
        li, p = _judge(c, 13, shifted, train)
        caught["weekend" if (r % 7 + 13) % 7 >= 5 else "weekday"].append(li >= 0.15 and p < level)
    assert alarms["quasi"] == 0
    assert alarms["independent"] > runs // 2  # the weekends of most fortnights
    # a weekday of the new mix is caught on its own in nearly every run (measured: 133 of 143)
    assert np.mean(caught["weekday"]) >= 0.9
    # the new mix leans the way this slice's weekends do: on a weekend day the weekly pattern explains it, so it is
    # found on the next weekday (the engine-level test above: 31 h after a Saturday onset)
    assert np.mean(caught["weekend"]) <= np.mean(caught["weekday"])


def test_overdispersion_of_multinomial_days():
    rng = np.random.default_rng(0)
    steady = rng.multinomial(400, [0.4, 0.3, 0.2, 0.1], size=(14, 300)).astype(float)
    phi = multinomial_overdispersion(steady)
    assert phi.shape == (300,) and phi.min() == 1.0 and np.median(phi) < 1.1
    # a shift present on every day moves the pooled mix with it: it does not widen the yardstick
    assert np.median(multinomial_overdispersion(steady[:, :, ::-1])) < 1.1
    weekly = np.stack([rng.multinomial(400, PHONE_WEEKEND if d % 7 >= 5 else PHONE_WEEKDAY, size=300) for d in range(14)])
    assert np.median(multinomial_overdispersion(weekly.astype(float))) > 3
    # sparse bins are pooled; short histories shrink toward 1; days without data count for nothing
    sparse = np.concatenate([steady, rng.binomial(1, 0.002, (14, 300, 3))], axis=2)
    assert np.median(multinomial_overdispersion(sparse)) < 1.1
    two = multinomial_overdispersion(np.array([[[30.0, 70.0]], [[70.0, 30.0]]]))
    raw = 2 * 2 * 20**2 / 50
    assert two[0] == pytest.approx((raw + 4.0) / (1 + 4.0))
    assert multinomial_overdispersion(np.array([[[5.0, 5.0]], [[0.0, 0.0]]]))[0] == 1.0
    assert multinomial_overdispersion(np.array([[[5.0, 5.0]]]))[0] == 1.0


def test_day_sums_keep_whole_days_and_survive_a_state_round_trip():
    h = DaySums(DAY, days=3)
    for k in range(6 * 24):
        h.add(T0 + k * 3600, {"num": np.full((2, 3), float(k // 24)), "cat": np.ones((2, 4))})
    assert [s for s, _ in h.days] == [T0 + 2 * DAY, T0 + 3 * DAY, T0 + 4 * DAY]  # the sixth is still being summed
    assert h.days[0][1]["num"][0, 0] == 24 * 2.0 and h.days[0][1]["cat"][1, 3] == 24.0
    assert len(h.before(T0 + 5 * DAY)) == 3 and len(h.before(T0 + 4 * DAY)) == 2
    back = DaySums.from_state(decode(encode(h.to_state())), 2)
    assert [s for s, _ in back.days] == [s for s, _ in h.days]
    assert all(np.array_equal(a["num"], b["num"]) for (_, a), (_, b) in zip(back.days, h.days, strict=True))
    assert np.array_equal(back.cur["cat"], h.cur["cat"])


def test_a_trailing_day_saved_before_the_distribution_history_still_loads(ref, fortnight):
    eng, _ = replay(ref, {k: v[: v.size // 3] for k, v in fortnight.items()})  # five days
    ms = eng.models["m"]
    st = decode(encode(ms.day.to_state()))
    assert "mixes" in st
    old = {k: v for k, v in st.items() if k != "mixes"}
    rows = ms.day.items[0][1]["num"].shape[0]
    day = DayRing(DAY)
    day.load_state(old, rows)
    assert len(day.mixes.days) == 0 and len(day.items) == len(ms.day.items)
    day.load_state(st, rows)
    assert len(day.mixes.days) == len(ms.day.mixes.days) > 0
