"""A value's share in a quiet, bursty slice is judged with the variance its own days show.

A small world of its own: steady traffic in three channels, training without timestamps. In the
quiet ``phone`` channel (about a hundred events a day) callers ring in bursts - one caller, several
calls within minutes, all carrying the same ``reason`` code - so the daily count of one code is a
sum of bursts, several times as variable as independent events would make it. A binomial test of
the trailing day's share against training pages such a day as a default value; the quasi-binomial
test (:mod:`detector.core.checks.dispersion`) does not, and a pipeline that starts serving a default
code still pages. Plus the unit behaviour of the dispersion estimate and of its daily history, and
a local hour recognised as set by the clock from production's own history.
"""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from detector.core.checks import daily
from detector.core.checks.clockseen import clock_in_production
from detector.core.checks.daily import DayRing
from detector.core.checks.dispersion import PRIOR_DF, ShareHistory, overdispersion
from detector.core.engine import Engine
from detector.core.reference.build import build_reference
from detector.core.settings import DetectorSettings
from detector.core.state.codec import decode, encode
from detector.core.stats.distributions import proportion_test
from tests.engine_replay import replay_log

T0 = 1795564800.0  # 2026-11-25T00:00Z
DAY = 86400.0
CODES = 12  # reason codes 0..11; code 7 holds ~8% of phone calls, every other one less
P_CODE = np.array([0.10, 0.09, 0.09, 0.09, 0.08, 0.08, 0.08, 0.08, 0.08, 0.08, 0.08, 0.07])


def world(days: float, seed: int, start: float = T0, default_from: float | None = None, default_share: float = 0.4,
          channels: tuple[str, ...] = ("phone",)) -> dict[str, np.ndarray]:
    """``days`` of traffic: web 1,500 and pos 1,000 independent events a day, phone ~100 calls a day in bursts
    (a caller rings Geometric(1/2) times - twice on average - within ten minutes, always with the same reason). From
    ``default_from`` on, ``default_share`` of the events of ``channels`` carry reason 0 (a pipeline default)."""
    rng = np.random.default_rng(seed)
    end = start + days * DAY
    ts, ch, reason = [], [], []
    for name, per_day in (("web", 1500.0), ("pos", 1000.0)):
        n = rng.poisson(per_day * days)
        ts.append(rng.uniform(start, end, n))
        ch.append(np.full(n, name, dtype=object))
        reason.append(rng.choice(CODES, n, p=P_CODE).astype(float))
    callers = rng.poisson(50.0 * days)
    burst = rng.geometric(0.5, callers)  # mean 2 calls per caller
    first = rng.uniform(start, end, callers)
    t = np.repeat(first, burst) + rng.uniform(0, 600, burst.sum())
    ts.append(t)
    ch.append(np.full(t.size, "phone", dtype=object))
    reason.append(np.repeat(rng.choice(CODES, callers, p=P_CODE[::-1]), burst).astype(float))  # code 7 -> 8%, 0 -> 7%
    cols = {"ts": np.concatenate(ts), "channel": np.concatenate(ch), "reason": np.concatenate(reason)}
    order = np.argsort(cols["ts"])
    cols = {k: v[order] for k, v in cols.items()}
    keep = cols["ts"] < end
    cols = {k: v[keep] for k, v in cols.items()}
    n = cols["ts"].size
    cols["amount"] = np.round(rng.lognormal(3.5, 0.8, n), 2)
    cols["score"] = np.round(rng.beta(2, 12, n), 4)
    if default_from is not None:
        hit = (cols["ts"] >= default_from) & np.isin(cols["channel"], channels) & (rng.random(n) < default_share)
        cols["reason"] = np.where(hit, 0.0, cols["reason"])
    return cols


@pytest.fixture(scope="module")
def ref():
    cols = world(30, seed=0, start=T0 - 40 * DAY)
    cols = {k: v for k, v in cols.items() if k != "ts"}  # a sample of whole days, no time column
    return build_reference(cols, score_column="score", slice_columns=["channel"])


def replay(ref, cols, chunk=20_000, binomial: bool = False, monkeypatch=None):
    if binomial:  # the test as it was: every event independent, the normal approximation of the binomial tail
        monkeypatch.setattr(DayRing, "dispersion", lambda self, v, since, blocks: None)
        monkeypatch.setattr(daily, "quasi_binomial_sf", lambda x, n, p0, phi: proportion_test(x, n, p0, alternative="greater"))
    eng = Engine(DetectorSettings(), default_reference=ref)
    msgs = [orjson.dumps({"prediction_id": f"p{i}", "model": "m", "ts": float(cols["ts"][i]), "score": float(cols["score"][i]),
                          "features": {"reason": int(cols["reason"][i]), "amount": float(cols["amount"][i])},
                          "slices": {"channel": cols["channel"][i]}})
            for i in range(cols["ts"].size)]
    done = replay_log(eng, msgs, chunk)
    return done.engine, done.dicts("firing")


def _end(a) -> float:
    return float(np.datetime64(a["window"]["end"].replace("Z", "")).astype("datetime64[s]").astype(float))


def _spikes(alerts):
    return [(a["feature"], a["slice"], a["statistic"], a["value"], a["evidence"].get("dispersion"), a["window"]["start"])
            for a in alerts if a["kind"] == "default_value_spike"]


def test_a_bursty_day_in_a_quiet_slice_is_no_default_value(ref, monkeypatch):
    cols = world(14, seed=3)
    _, alerts = replay(ref, cols)
    assert _spikes(alerts) == []
    # the same traffic under the binomial test: an ordinary day of bursts pages as a default value
    _, binomial = replay(ref, cols, binomial=True, monkeypatch=monkeypatch)
    assert any(s[0] == "reason" and s[1] == {"channel": "phone"} and s[2] == "value_share_24h" for s in _spikes(binomial))


def test_a_default_served_in_the_bursty_slice_still_pages_within_a_day(ref):
    onset = T0 + 9 * DAY + 5 * 3600 + 600
    _, alerts = replay(ref, world(11, seed=2, default_from=onset))
    spikes = [a for a in alerts if a["kind"] == "default_value_spike" and _end(a) > onset]
    assert spikes, "missed"
    first = spikes[0]
    assert (first["feature"], first["slice"], first["evidence"]["value"]) == ("reason", {"channel": "phone"}, 0.0), first
    assert first["evidence"]["dispersion"] > 1.5  # judged as the bursty slice it is, and caught anyway
    assert onset < _end(first) <= onset + 24 * 3600
    assert [a for a in alerts if _end(a) <= onset and a["kind"] == "default_value_spike"] == []


def test_a_default_served_everywhere_pages_within_hours(ref):
    onset = T0 + 9 * DAY + 5 * 3600 + 600
    _, alerts = replay(ref, world(10.5, seed=3, default_from=onset, channels=("web", "pos", "phone")))
    spikes = [a for a in alerts if a["kind"] == "default_value_spike" and a["feature"] == "reason"]
    assert spikes, "missed"
    assert onset < _end(spikes[0]) <= onset + 3 * 3600


# ----------------------------------------------------------------------------- units


def test_overdispersion_of_independent_and_of_bursty_daily_counts():
    rng = np.random.default_rng(0)
    n = np.full((14, 2000), 100.0)
    independent = rng.binomial(100, 0.08, (14, 2000)).astype(float)
    phi = overdispersion(independent, n)
    assert phi.min() == 1.0 and np.median(phi) < 1.1  # floored at 1; near 1 for independent events
    bursts = np.stack([np.bincount(rng.integers(0, 2000, rng.poisson(2.0 * 2000)), minlength=2000) for _ in range(14)])
    sizes = rng.geometric(0.25, (14, 2000))  # one burst size per day and series: variance of a compound count
    bursty = np.minimum(bursts * sizes, 100).astype(float)
    assert np.median(overdispersion(bursty, n)) > 2.5
    # a short history is shrunk toward 1; days without data and series without a share count for nothing
    two = overdispersion(np.array([[3.0], [17.0]]), np.array([[100.0], [100.0]]))
    raw = ((3 - 10) ** 2 + (17 - 10) ** 2) / (100 * 0.1 * 0.9)
    assert two[0] == pytest.approx((raw + PRIOR_DF) / (1 + PRIOR_DF))
    assert overdispersion(np.array([[5.0], [0.0]]), np.array([[100.0], [0.0]]))[0] == 1.0
    assert overdispersion(np.zeros((5, 1)), np.full((5, 1), 100.0))[0] == 1.0


def test_share_history_keeps_whole_days_excludes_the_day_under_test_and_survives_a_state_round_trip():
    h = ShareHistory(DAY, days=3)
    rows = 2
    for k in range(6 * 24):  # six days of hourly windows: hits 10/100 a day on even days, 20/100 on odd ones
        day = k // 24
        hits = np.zeros((rows, 1, 2))
        hits[:, 0, 0] = (10.0 if day % 2 == 0 else 20.0) / 24
        h.add(T0 + k * 3600, hits, np.full((rows, 1), 100.0 / 24))
    assert [s for s, _, _ in h.days] == [T0 + 2 * DAY, T0 + 3 * DAY, T0 + 4 * DAY]  # the sixth is still being summed
    ident = lambda a: a  # noqa: E731
    since = np.full((1, 2), -np.inf)
    phi, days = h.dispersion(since, T0 + 5 * DAY, ident)
    assert days.max() == 3
    assert phi.shape == (rows, 1, 2) and phi[0, 0, 0] > 1.0 and phi[0, 0, 1] == 1.0
    # only days that ended before the trailing day began; a candidate tracked later has no history yet
    assert h.dispersion(since, T0 + 3 * DAY - 1, ident) is None
    late = np.array([[T0 + 4 * DAY, -np.inf]])
    assert h.dispersion(late, T0 + 5 * DAY, ident)[0][0, 0, 0] == 1.0
    back = ShareHistory.from_state(decode(encode(h.to_state())), rows)
    assert [s for s, _, _ in back.days] == [s for s, _, _ in h.days]
    assert np.array_equal(back.dispersion(since, T0 + 5 * DAY, ident)[0], phi)


def test_a_local_hour_is_recognised_as_set_by_the_clock_from_production_alone():
    from tests.core.test_time_structure import T0 as Z0
    from tests.core.test_time_structure import messages, training
    from tests.core.test_time_structure import world as zones

    ref = training()
    assert not ref.hourly and "local_hour" in ref.features  # no timestamps: training cannot tell it follows the clock
    eng = Engine(DetectorSettings(), default_reference=ref)
    eng.ingest_predictions(messages(zones(8, 300, seed=1, start=Z0)))
    eng.advance()
    ms = eng.models["m"]
    assert "local_hour" in ms.layout.numeric
    assert clock_in_production(ms.layout, ms.seasonal) == frozenset()  # not enough of the day seen yet
    later = zones(48, 300, seed=2, start=Z0 + 8 * 3600)
    eng.ingest_predictions([m.replace(b'"prediction_id":"p', b'"prediction_id":"q', 1) for m in messages(later)])
    eng.advance()
    # one value per region and hour: the hour with the region fixes it; the amount, the item count and a
    # field null by design in one channel are not set by the clock
    assert clock_in_production(ms.layout, ms.seasonal) == frozenset({"local_hour"})
