"""The evaluation worlds themselves: do the generated files have the structure SPEC.md promises?"""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from tests.worlds.faults import FAULTS
from tests.worlds.frame import DAY
from tests.worlds.generator import WORLDS, Scenario, build, generate, log_start, onset_of, write_training

HOUR = 3600.0


def _ts(v: object) -> float:
    if isinstance(v, int | float):
        return float(v) / (1000.0 if v > 1e11 else 1.0)
    return datetime.fromisoformat(str(v)).timestamp()


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def world_a(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("A")
    meta = generate(Scenario("A", 3, 300.0), out)
    write_training("A", 3, out)
    return {"meta": meta, "dir": out, "pred": _read(out / "predictions.jsonl"), "labels": _read(out / "labels.jsonl"),
            "features": _read(out / "features.jsonl")}


@pytest.fixture(scope="module")
def world_b(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("B")
    meta = generate(Scenario("B", 3, 1000.0), out)
    write_training("B", 3, out)
    return {"meta": meta, "dir": out, "pred": _read(out / "predictions.jsonl"), "labels": _read(out / "labels.jsonl")}


def test_rate_is_the_weekly_average(world_a: dict) -> None:
    assert len(world_a["pred"]) == pytest.approx(300.0 * 14 * 24, rel=0.03)
    week, _, _ = build(Scenario("B", 3, 1000.0, days=7))  # the first week: before world B's holiday
    assert week.n == pytest.approx(1000.0 * 7 * 24, rel=0.03)


def test_every_line_is_a_valid_contract_event(world_a: dict) -> None:
    p = world_a["pred"][0]
    assert set(p) == {"prediction_id", "model", "model_version", "ts", "features", "score", "decision", "threshold",
                      "slices", "latency_ms", "fallback"}
    ids = [e["prediction_id"] for e in world_a["pred"]]
    assert len(set(ids)) == len(ids)
    assert {e["decision"] for e in world_a["pred"]} == {"review", "approve"}
    assert all(e["decision"] == ("review" if e["score"] >= e["threshold"] else "approve") for e in world_a["pred"])
    # numeric-looking codes are JSON strings on the wire
    assert {type(e["features"]["client_version"]) for e in world_a["pred"]} == {str}
    assert "3.10" in {e["features"]["client_version"] for e in world_a["pred"]}
    assert any(e["features"]["billing_zip3"].startswith("0") for e in world_a["pred"])
    assert {type(e["features"]["items"]) for e in world_a["pred"]} == {int}


def test_timestamps_differ_by_producer_and_local_hour_follows_the_time_zone(world_a: dict) -> None:
    kinds = {("epoch" if isinstance(e["ts"], float) else e["ts"][-6:] if e["ts"][-6] in "+-" else "Z") for e in world_a["pred"]}
    assert kinds == {"epoch", "-05:00", "Z"}
    offsets = {n: o for n, o, _s in WORLDS["A"].regions}
    for e in world_a["pred"][::97]:
        local = _ts(e["ts"]) + offsets[e["slices"]["region"]] * HOUR
        assert int((local % DAY) // HOUR) == e["features"]["local_hour"]


def test_volume_follows_each_regions_local_clock_and_weekends(world_a: dict) -> None:
    offsets = {n: o for n, o, _s in WORLDS["A"].regions}
    by_region: dict[str, list[float]] = {}
    for e in world_a["pred"]:
        by_region.setdefault(e["slices"]["region"], []).append(_ts(e["ts"]) + offsets[e["slices"]["region"]] * HOUR)
    utc_peaks = set()
    for region, loc in by_region.items():
        loc_a = np.array(loc)
        hours = np.bincount(((loc_a % DAY) // HOUR).astype(int), minlength=24)
        assert 11 <= int(np.argmax(hours)) <= 15, region  # midday peak in local time
        assert hours[2:6].mean() < 0.4 * hours[11:16].mean(), region  # night trough
        utc_peaks.add(int((np.argmax(hours) - offsets[region]) % 24))
        day = np.floor(loc_a / DAY).astype(int)
        wday = (day + 3) % 7
        full = (day > day.min()) & (day < day.max())
        per_day = np.bincount(day[full] - day.min())
        weekend = np.isin((np.arange(len(per_day)) + day.min() + 3) % 7, [5, 6]) & (per_day > 0)
        ratio = per_day[weekend].mean() / per_day[~weekend & (per_day > 0)].mean()
        assert ratio == pytest.approx(1.10, abs=0.06), region
        assert wday.max() == 6
    assert len(utc_peaks) == 3  # the regions peak at different UTC hours: the mix turns over during the day


def test_log_order_jitter(world_a: dict, world_b: dict) -> None:
    # world B: 3% held back, and the branch producer's whole-second stamps fall behind neighbours' milliseconds
    for w, lo, hi in ((world_a, 0.06, 0.14), (world_b, 0.05, 0.13)):
        ts = np.array([_ts(e["ts"]) for e in w["pred"]])
        behind = ts < np.maximum.accumulate(ts) - 1e-6
        assert lo <= behind.mean() <= hi
        assert (np.maximum.accumulate(ts) - ts).max() < 20 * 60  # seconds to minutes, never hours


def test_label_delays_are_heavy_tailed_and_positives_slower(world_a: dict) -> None:
    pred_ts = {e["prediction_id"]: _ts(e["ts"]) for e in world_a["pred"]}
    end = world_a["meta"]["end"]
    first: dict[str, dict] = {}
    for lab in world_a["labels"]:
        first.setdefault(lab["prediction_id"], lab)
        assert lab["ts"] <= end  # nothing after the log's end
    assert len(world_a["labels"]) > len(first)  # some labels are sent twice
    delay = {k: (v["ts"] - pred_ts[k]) / HOUR for k, v in first.items()}
    neg = np.array([d for k, d in delay.items() if first[k]["label"] == 0])
    pos = np.array([d for k, d in delay.items() if first[k]["label"] == 1])
    early = [k for k, t in pred_ts.items() if t < world_a["meta"]["start"] + 2 * DAY]
    # judge the distribution on early predictions, whose labels had 12 days to arrive
    early_neg = np.array([delay[k] for k in early if k in delay and first[k]["label"] == 0])
    assert np.median(early_neg) == pytest.approx(24.0, rel=0.15)
    assert np.quantile(early_neg, 0.9) > 60.0  # heavy tail: p90 ~ 3.6 days
    assert np.median(pos) > 1.3 * np.median(neg)
    labelled = np.mean([k in delay for k in early])
    assert 0.85 <= labelled <= 0.91  # 10% never labelled, a little of the tail beyond the log
    assert np.mean([first[k]["label"] for k in delay]) == pytest.approx(0.05, abs=0.012)


def test_offline_features_are_a_subset_twenty_minutes_later_with_equal_values(world_a: dict) -> None:
    pred = {e["prediction_id"]: e for e in world_a["pred"]}
    feats = world_a["features"]
    assert len(feats) / len(pred) == pytest.approx(0.30, abs=0.02)
    lags = np.array([(_ts(f["ts"]) - _ts(pred[f["prediction_id"]]["ts"])) / 60.0 for f in feats])
    assert np.median(lags) == pytest.approx(20.0, abs=1.5) and lags.min() >= 5.0
    assert all(f["features"] == pred[f["prediction_id"]]["features"] for f in feats[::50])
    assert [_ts(f["ts"]) for f in feats] == sorted(_ts(f["ts"]) for f in feats)


def test_training_tables(world_a: dict, world_b: dict) -> None:
    with (world_a["dir"] / "train.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == WORLDS["A"].train_rows
    assert not {"ts", "timestamp", "time", "event_time"} & set(rows[0])  # no timestamp column by default
    raw = (world_a["dir"] / "train.csv").read_text()
    assert ",3.10," in raw and ',"3.10",' not in raw  # numeric-looking codes unquoted, as to_csv writes them
    assert np.mean([r["device_trust"] == "" for r in rows]) == pytest.approx(0.47, abs=0.1)  # null by design
    with (world_b["dir"] / "train.csv").open() as fh:
        header = next(csv.reader(fh))
    assert header[0] == "timestamp"


def test_world_b_weekly_cycle_and_holiday(world_b: dict) -> None:
    start = world_b["meta"]["start"]
    hol = WORLDS["B"].holiday(start)
    days: dict[int, int] = {}
    branch_on_holiday = 0
    for e in world_b["pred"]:
        d = int((_ts(e["ts"]) + HOUR) // DAY)
        days[d] = days.get(d, 0) + 1
        branch_on_holiday += d == int(hol // DAY) and e["slices"]["channel"] == "branch" and e["slices"]["region"] == "central"
    inner = {d: c for d, c in days.items() if min(days) < d < max(days)}  # whole days only
    wd = {d: (d + 3) % 7 for d in inner}
    weekday = np.mean([c for d, c in inner.items() if wd[d] < 5 and d != int(hol // DAY)])
    sunday = np.mean([c for d, c in inner.items() if wd[d] == 6])
    assert sunday < 0.5 * weekday
    assert days[int(hol // DAY)] < 0.5 * weekday
    assert branch_on_holiday == 0


def test_outcomes_and_decisions_have_the_specified_rates() -> None:
    for w, rate, base, review, new_thr in (("A", 300.0, 0.05, 0.013, 0.5), ("B", 1000.0, 0.08, 0.017, 0.45)):
        f, _ids, _meta = build(Scenario(w, 4, rate, days=7))
        assert f.label.mean() == pytest.approx(base, rel=0.15)
        acted = (f.score >= WORLDS[w].threshold).mean()
        assert acted == pytest.approx(review, rel=0.3)
        assert (f.score >= new_thr).mean() > 1.8 * acted  # the threshold fault moves the decision rate


def test_generation_is_deterministic_per_seed(tmp_path: Path) -> None:
    def digest(seed: int, sub: str) -> str:
        out = tmp_path / sub
        generate(Scenario("A", seed, 120.0, "label_drift", days=6), out)
        return "".join(hashlib.sha256((out / n).read_bytes()).hexdigest() for n in
                       ("predictions.jsonl", "labels.jsonl", "features.jsonl"))

    assert digest(5, "a") == digest(5, "b")
    assert digest(5, "a") != digest(6, "c")


@pytest.mark.parametrize("key", sorted(FAULTS), ids=lambda k: f"{k[0]}-{k[1]}")
def test_fault_changes_only_rows_after_its_onset(key: tuple[str, str]) -> None:
    world, name = key
    fault = FAULTS[key]
    onset = onset_of(fault, 2)
    days = (onset - log_start(2)) / DAY + 1.5
    clean, _, _ = build(Scenario(world, 2, 150.0, None, days))
    bad, _, meta = build(Scenario(world, 2, 150.0, name, days))
    assert meta["onset"] == onset and onset % 3600 != 0  # never on a window boundary
    pre, post = clean.t < onset, clean.t >= onset
    assert np.array_equal(clean.t, bad.t)

    def columns(f):  # everything that reaches a file
        cols = {"score": f.score, "threshold": f.threshold, "latency": f.latency, "fallback": f.fallback,
                "label": f.label, "delay": f.label_delay, "shift": f.ts_shift, "version": f.model_version,
                "lag": f.offline_lag}
        cols.update({f"served.{k}": v for k, v in f.served.items()})
        cols.update({f"offline.{k}": v for k, v in f.offline.items()})
        cols.update({f"text.{k}": v for k, v in f.as_text.items()})
        cols.update({f"absent.{k}": v for k, v in f.absent.items()})
        cols.update({f"extra.{k}": v for k, v in f.extra.items()})
        return cols

    a, b = columns(clean), columns(bad)
    changed_after = False
    for k, vb in b.items():
        va = a.get(k)
        if va is None:  # a payload fault (extra / text / absent) exists only in the faulty run
            assert not np.any(vb[pre] if vb.dtype == bool else ~np.isnan(vb[pre])), k
            changed_after = True
            continue
        same = (va == vb) | ((va != va) & (vb != vb)) if va.dtype != object else np.array([x == y for x, y in zip(va, vb, strict=True)])
        assert same[pre].all(), f"{k} changed before the onset"
        changed_after |= not same[post].all()
    assert changed_after, f"{name} changed nothing after its onset"


def test_generator_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.worlds.generator import main

    assert main(["--world", "A", "--fault", "nope", "--out", str(tmp_path)]) == 2
    assert "no fault 'nope'" in capsys.readouterr().err
    assert main(["--world", "B", "--list"]) == 0
    assert "decision_threshold" in capsys.readouterr().out
    assert main(["--world", "A", "--seed", "1", "--rate", "100", "--days", "1", "--gz", "--out", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"predictions.jsonl.gz", "labels.jsonl.gz", "features.jsonl.gz",
                                                    "scenario.json", "train.csv"}
