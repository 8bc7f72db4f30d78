"""The rest of the brief's checklist, end to end: leakage and time-split audit, adoption (overrides and
review capacity), the rules baseline, the counterexample library and slice contribution.

Each scenario drives the same core as replay and the sidecar (``Engine`` + outcome monitor) and
asserts the alert's kind, feature, slice and cause where an alert is the point; the outcome-side
products (rules comparison, counterexamples, slice ranking) are checked against brute force or
numbers worked out by hand.
"""

from __future__ import annotations

import csv
from datetime import timedelta

import numpy as np
import orjson
import pytest

from detector.cli import baseline as baseline_cli
from detector.cli import replay as replay_cli
from detector.core.checks.adoption import baseline_stats
from detector.core.engine import Engine
from detector.core.inputs.timeparse import format_ts, parse_timestamps
from detector.core.outcomes.contribution import contributions_for
from detector.core.outcomes.monitor import attach_outcomes
from detector.core.reference.build import build_reference
from detector.core.settings import DetectorSettings
from detector.sim import DEFAULT_START, Scenario, World, simulate, training_columns, training_rows
from detector.sim.faults import Fault
from tests.engine_replay import replay_log

T0 = 1795564800.0  # 2026-11-25T00:00:00Z
H = 3600.0


def _t(iso: str) -> float:
    return float(parse_timestamps([iso])[0])


def drive(eng: Engine, events: list[tuple[str, dict]], every: int = 2000) -> list[dict]:
    """Feed (topic, event) pairs in order, advancing like replay; returns the alert dicts."""
    return replay_log(eng, ((topic, orjson.dumps(ev)) for topic, ev in events), every).dicts()


def sim_reference(world: World, n: int = 5000):
    rows = training_rows(n, seed=1, world=world)
    cols = {}
    for c in training_columns(world):
        arr = np.array([r[c] for r in rows], dtype=object)
        try:
            cols[c] = arr.astype(np.float64)
        except (TypeError, ValueError):
            cols[c] = arr
    return build_reference(cols, label_column="label", score_column="score", slice_columns=["region", "channel", "tier"],
                           time_column="ts", model="fraud")


def firing(alerts: list[dict], **match) -> list[dict]:
    return [a for a in alerts if a["state"] == "firing" and all(a.get(k) == v for k, v in match.items())]


# =========================================================================== 1. leakage audit -> serving
def leaky_training(n: int = 3000, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(float)
    amount = rng.lognormal(3 + 0.5 * y, 1.0, n).round(2)
    chargeback = np.where(rng.random(n) < 0.02, 1 - y, y)  # filed after the fraud: the label itself
    refund_h = np.where(y == 1, rng.gamma(2.0, 24.0, n).round(1), np.nan)  # only populated once refunded
    return {"amount": amount, "account_age_days": rng.integers(0, 2000, n).astype(float),
            "country": np.array(rng.choice(["DE", "FR", "US"], n), dtype=object),
            "chargeback_filed": chargeback, "refund_delay_h": refund_h, "label": y}


def test_leaky_feature_absent_or_null_at_serving_is_a_schema_alert_with_training_predictiveness():
    ref = build_reference(leaky_training(), label_column="label")
    audit = ref.audit["features"]
    assert set(ref.audit["leak_suspects"]) == {"chargeback_filed", "refund_delay_h"}
    assert audit["chargeback_filed"]["auc"] >= 0.95 and "AUC" in audit["chargeback_filed"]["reason"]
    assert "after the outcome" in audit["refund_delay_h"]["reason"]  # populated for positives only
    assert not audit["amount"]["leak_suspect"] and not audit["country"]["leak_suspect"]

    rng = np.random.default_rng(1)
    events = []
    for i in range(3 * 300):  # serving: the chargeback flag is not in the payload, the refund delay is null
        events.append(("predictions", {
            "prediction_id": f"p{i}", "model": "m", "ts": T0 + i * 12.0,
            "features": {"amount": float(rng.lognormal(3, 1)), "account_age_days": float(rng.integers(0, 2000)),
                         "country": str(rng.choice(["DE", "FR", "US"])), "refund_delay_h": None},
            "score": float(rng.random()), "decision": "approve"}))
    alerts = drive(Engine(DetectorSettings(), default_reference=ref), events)
    absent = firing(alerts, kind="schema", feature="chargeback_filed", slice={})
    null = firing(alerts, kind="schema", feature="refund_delay_h", slice={})
    assert absent and null, [(a["kind"], a["feature"]) for a in alerts]
    for a, stat in ((absent[0], "absent_share"), (null[0], "constant_share")):
        assert a["statistic"] == stat and a["cause"] == "pipeline_skew" and a["action"] == "fix_data"
        assert a["severity"] == "critical" and a["window"]["end"] == format_ts(T0 + H)  # a fact: the first window
        ev = a["evidence"]["reference"]["audit"]
        assert ev["leak_suspect"] is True and max(ev["auc"], 1 - ev["auc"]) >= 0.95
    assert "predicted the label in training" in null[0]["summary"]
    assert not firing(alerts, feature="amount")


# =========================================================================== 2. time-split honesty
def write_training_csv(path, n: int = 4000, drift: bool = True, seed: int = 0) -> None:
    """A label whose drivers change over 40 days (x1 early, x2 late) - or not."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.random(n)) * 40 * 86400 + T0 - 50 * 86400
    s = (t - t.min()) / (t.max() - t.min()) if drift else np.full(n, 0.5)
    x1, x2, x3 = rng.normal(size=(3, n))
    logit = -1.0 + 3.0 * (1 - s) * x1 + 3.0 * s * x2 + 0.3 * x3
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ts", "x1", "x2", "x3", "y"])
        for row in zip([format_ts(v) for v in t], x1.round(4), x2.round(4), x3.round(4), y, strict=True):
            w.writerow(row)


@pytest.mark.parametrize("drift", [True, False])
def test_time_dependent_training_set_scores_clearly_lower_on_a_time_split(tmp_path, capsys, drift):
    data, out = tmp_path / "train.csv", tmp_path / "ref.json"
    write_training_csv(data, drift=drift)
    assert baseline_cli.main(["--data", str(data), "--label-column", "y", "--time-column", "ts", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    from detector.core.reference.profile import Reference

    ts = Reference.load(out).audit["time_split"]
    assert ts["train_share"] == 0.7 and ts["rows"] == 4000
    if drift:
        assert ts["random_split_auc"] - ts["time_split_auc"] > 0.05 and ts["gap"] > 2 * ts["gap_se"]
        assert ts["warning"] is True and "WARNING: time-split check" in printed
        assert ts["train_period"][1] < ts["test_period"][0]  # trained on the past, tested on the future
    else:
        assert abs(ts["gap"]) < 0.03 and ts["warning"] is False and "WARNING" not in printed
    assert "leakage audit: no leak suspect among 3 features" in printed


# =========================================================================== 3 + 4. adoption
@pytest.fixture(scope="module")
def adoption_run():
    """Overrides surge 17:00-20:00 local, then the threshold drops from 0.5 to 0.2 at 22:00 (capacity 120/h)."""
    world = World(rate_per_hour=3000)
    start = DEFAULT_START + timedelta(hours=10)  # 10:00 local: busy afternoon and evening hours follow
    sc = Scenario("checklist-adoption", world=world, start=start, hours=16.0, faults=(
        Fault("override_surge", 7, 10), Fault("threshold_change", 12, None, params={"threshold": 0.2})))
    eng = Engine(DetectorSettings(), default_reference=sim_reference(world))
    eng.adoption.capacity = {"fraud": 120}
    alerts = drive(eng, [(topic, ev) for _, topic, ev in simulate(sc, topics=("predictions",))], every=3000)
    return sc, eng, alerts


def test_override_surge_is_a_decision_policy_alert_on_the_override_rate(adoption_run):
    sc, eng, alerts = adoption_run
    surge = sc.ground_truth()[0]["onset_ts"]
    hits = firing(alerts, kind="decision_rate", feature="override_rate", slice={})
    assert hits, [(a["kind"], a["feature"], a["slice"]) for a in firing(alerts)]
    a = hits[0]
    assert a["cause"] == "decision_policy" and a["action"] == "fix_system" and a["statistic"] == "override_rate_delta"
    assert surge < _t(a["window"]["end"]) <= surge + 2 * H  # the first window of the surge (critical)
    cur, ref = a["evidence"]["current"], a["evidence"]["reference"]
    assert cur["override_rate"] > 0.45 and 0.08 < ref["override_rate"] < 0.22 and a["value"] > 0.3
    assert cur["reasons"] and next(iter(cur["reasons"])) == "not_fraud_per_reviewer"  # the reason-code mix
    assert len(hits) == 1 and not [x for x in firing(alerts, feature="override_rate") if x is not a]
    resolved = [x for x in alerts if x["state"] == "resolved" and x["alert_id"] == a["alert_id"]]
    end = sc.ground_truth()[0]["end_ts"]
    assert resolved and end < _t(resolved[0]["window"]["end"]) <= end + 4 * H  # resolved after 3 clean windows
    st = eng.adoption.stats("fraud")["slices"][""]
    assert 0.0 <= st["override_rate"] <= 0.3 and st["acted_on_share"] == pytest.approx(1 - st["override_rate"], abs=1e-3)


def test_capacity_flood_after_a_threshold_change(adoption_run):
    sc, eng, alerts = adoption_run
    _, change = (g["onset_ts"] for g in sc.ground_truth())
    cap = firing(alerts, kind="decision_rate", feature="review_capacity", slice={})
    assert cap and all(_t(a["window"]["end"]) > change for a in cap)  # no flood (nor nightly starvation) before
    a = cap[0]
    assert a["statistic"] == "capacity_use" and a["value"] > 1.0 and a["threshold"] == 1.0
    assert a["cause"] == "decision_policy" and a["action"] == "fix_system"
    assert _t(a["window"]["end"]) <= change + 3 * H
    assert a["evidence"]["current"]["flags"] > 120 and a["evidence"]["reference"]["review_capacity"] == 120
    # the threshold change itself is its own incident; the flood is not folded into it
    assert firing(alerts, kind="decision_rate", feature=None, statistic="threshold")
    assert eng.adoption.stats("fraud")["capacity_use"] > 1.0


# =========================================================================== 5. rules baseline
def test_rules_baseline_beats_the_model_after_concept_drift():
    world = World(rate_per_hour=1500, rules_baseline=True, label_delay_median_h=0.5)
    sc = Scenario("checklist-rules", world=world, hours=22.0, faults=(Fault("concept_drift", 12, None, ramp_h=1.0),))
    eng = Engine(DetectorSettings(), default_reference=sim_reference(world))
    mon = attach_outcomes(eng)
    mon.costs = {"fraud": (1.0, 20.0, None)}
    seen: list[dict] = []
    rules = mon.listeners[0]
    orig = rules.on_cohort

    def record(m, c, base, real, mat, window):
        orig(m, c, base, real, mat, window)
        seen.append(baseline_stats(eng, "fraud"))

    rules.on_cohort = record
    alerts = drive(eng, [(t, ev) for _, t, ev in simulate(sc, topics=("predictions", "labels"))], every=3000)
    onset = sc.ground_truth()[0]["full_effect_ts"]
    before = [s["slices"][""] for s in seen if _t(s["window"]["end"]) <= onset]
    after = [s["slices"][""] for s in seen if _t(s["window"]["start"]) >= onset + H]
    assert len(before) >= 4 and len(after) >= 3
    # same labelled predictions for both: the model clearly beats the rules before the drift ...
    assert all(s["model"]["precision"] > s["rules"]["precision"] for s in before)
    assert sum(s["pairs"] for s in before) > 5000
    # ... and the rules beat the model after it: the model got worse, not the world harder
    assert all("precision" in s["rules_better_on"] for s in after)
    assert all(s["diagnosis_by_metric"]["precision"] == "model_worse" for s in after), [(s["model"], s["rules"], s["trailing"], s["diagnosis_by_metric"]) for s in after]
    assert all(s["diagnosis"] in ("model_worse", "mixed") for s in after)
    assert all(s["trailing"]["rules"]["precision"] > 0.15 for s in after)
    drift = firing(alerts, kind="concept_drift", slice={})
    assert drift and drift[0]["cause"] == "concept_drift" and drift[0]["action"] == "fix_model"


# =========================================================================== 6. counterexamples (brute force)
def small_reference():
    rng = np.random.default_rng(3)
    n = 2000
    return build_reference({"x": rng.normal(size=n), "c": np.array(rng.choice(["a", "b"], n), dtype=object),
                            "region": np.array(rng.choice(["eu", "us"], n), dtype=object),
                            "score": rng.random(n)}, score_column="score", slice_columns=["region"])


def cohort_events(n: int = 400, seed: int = 5) -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(seed)
    preds, labels = [], []
    for i in range(n):
        score = float(np.round(rng.random(), 3))  # rounded: margins tie, ties rank by id
        thr = float(rng.choice([0.4, 0.5, 0.6]))
        pid = f"p{i:04d}"
        preds.append({"prediction_id": pid, "model": "m", "ts": T0 + i * 8.0, "score": score, "threshold": thr,
                      "decision": "review" if score >= thr else "approve", "slices": {"region": str(rng.choice(["eu", "us"]))},
                      "features": {"x": float(np.round(rng.normal(), 3)), "c": str(rng.choice(["a", "b", "zz"]))}})
        if rng.random() < 0.9:
            labels.append({"prediction_id": pid, "ts": T0 + i * 8.0 + 120.0, "label": int(rng.random() < 0.4)})
    return preds, labels


def brute_force(preds: list[dict], labels: list[dict], k: int = 10) -> dict[tuple[str, str], list[str]]:
    lab = {e["prediction_id"]: e["label"] for e in labels}
    out: dict[tuple[str, str], list[tuple[float, str]]] = {}
    for p in preds:
        y = lab.get(p["prediction_id"])
        act = p["decision"] == "review"
        if y is None or act == bool(y):
            continue
        typ, margin = ("false_positive", p["score"] - p["threshold"]) if act else ("false_negative", p["threshold"] - p["score"])
        for sl in ("", f"region={p['slices']['region']}"):
            out.setdefault((sl, typ), []).append((round(margin, 6), p["prediction_id"]))
    return {key: [pid for _, pid in sorted(v, key=lambda t: (-t[0], t[1]))[:k]] for key, v in out.items()}


def test_counterexamples_are_the_truly_worst_errors(tmp_path):
    preds, labels = cohort_events()
    # a few more hours so the first hour's cohort matures, and late labels of later cohorts
    extra = [{"prediction_id": f"q{i}", "model": "m", "ts": T0 + H + i * 60.0, "score": 0.1, "threshold": 0.5,
              "decision": "approve", "slices": {"region": "eu"}, "features": {"x": 0.0, "c": "a"}} for i in range(360)]
    extra_labels = [{"prediction_id": f"q{i}", "ts": T0 + H + i * 60.0 + 120.0, "label": 0} for i in range(360)]
    p_file, l_file, ref_file, cx_file = (tmp_path / n for n in ("p.jsonl", "l.jsonl", "ref.json", "cx.jsonl"))
    p_file.write_bytes(b"\n".join(orjson.dumps(e) for e in preds + extra))
    l_file.write_bytes(b"\n".join(orjson.dumps(e) for e in sorted(labels + extra_labels, key=lambda e: e["ts"])))
    small_reference().save(ref_file)
    args = replay_cli.argparse.ArgumentParser()
    replay_cli.add_arguments(args)
    rc = replay_cli.run(args.parse_args(["--reference", str(ref_file), "--predictions", str(p_file), "--labels", str(l_file),
                                         "--counterexamples-out", str(cx_file), "--quiet"]))
    assert rc == 0
    recs = [orjson.loads(line) for line in cx_file.read_bytes().splitlines()]
    first = [r for r in recs if r["cohort"]["start"] == format_ts(T0)]
    got: dict[tuple[str, str], list[str]] = {}
    for r in sorted(first, key=lambda r: r["rank"]):
        key = (",".join(f"{k}={v}" for k, v in r["slice"].items()), r["type"])
        got.setdefault(key, []).append(r["prediction_id"])
    want = brute_force(preds, labels)
    assert set(want) == {("", "false_positive"), ("", "false_negative"), ("region=eu", "false_positive"),
                         ("region=eu", "false_negative"), ("region=us", "false_positive"), ("region=us", "false_negative")}
    assert got == want
    by_id = {p["prediction_id"]: p for p in preds}
    lab = {e["prediction_id"]: e["label"] for e in labels}
    for r in first:  # each record carries what a reviewer needs
        p = by_id[r["prediction_id"]]
        assert r["features"] == p["features"] and r["features_retained"] is True
        assert r["label"] == lab[r["prediction_id"]] and r["score"] == p["score"] and r["threshold"] == p["threshold"]
        assert r["decision"] == ("act" if p["decision"] == "review" else "no_action")
        assert r["slices"] == p["slices"] and isinstance(r["active_alerts"], list)
    assert {r["cohort"]["start"] for r in recs} == {format_ts(T0)}  # later cohorts hold no error


# =========================================================================== 7. slice contribution (by hand)
def test_top_slices_by_contribution_match_a_hand_computation():
    """Two regions, deterministic outcomes: eu's recall falls from 0.8 to 0.2, us stays at 0.8.

    Per hour (cohort): eu 40 predictions (10 positives), us 40 (10 positives), labels after 60 s.
    Baseline cohorts (hours 0-4): both regions catch 8 of 10 positives (recall 0.8) with 2 false
    alarms. Hours 5+: eu catches 2 of 10 (recall 0.2) with the same 2 false alarms.
    By hand, for the first degraded cohort:
      recall: all traffic 10/20 = 0.5 vs 16/20 = 0.8 baseline; eu's share of positives 10/20 = 0.5,
              contribution 0.5 x (0.8 - 0.2) = 0.3; us 0.5 x (0.8 - 0.8) = 0 (not listed);
      precision: eu flags 2 TP + 2 FP = 4 of 14 flags (share 2/7), precision 0.5 vs 0.8 baseline,
              contribution 2/7 x 0.3 = 0.0857.
    """
    events = []
    for h in range(10):
        for region in ("eu", "us"):
            caught = 2 if (region == "eu" and h >= 5) else 8
            for i in range(40):
                pos = i < 10
                act = (pos and i < caught) or (not pos and i >= 38)
                ts = T0 + h * H + (i + (0 if region == "eu" else 40)) * 40.0
                pid = f"{h}-{region}-{i}"
                events.append(("predictions", {"prediction_id": pid, "model": "m", "ts": ts, "score": 0.9 if act else 0.1,
                                               "decision": "review" if act else "approve", "slices": {"region": region},
                                               "features": {"x": 0.0, "c": "a"}}))
                events.append(("labels", {"prediction_id": pid, "ts": ts + 60.0, "label": int(pos)}))
    events.sort(key=lambda e: e[1]["ts"])
    eng = Engine(DetectorSettings(), default_reference=small_reference())
    mon = attach_outcomes(eng)
    ranks = []
    contrib = mon.listeners[2]
    orig = contrib.on_cohort

    def record(m, c, base, real, mat, window):
        orig(m, c, base, real, mat, window)
        ranks.append((c.start, contributions_for(eng, "m")))

    contrib.on_cohort = record
    drive(eng, events, every=500)
    first_bad = next(r for start, r in ranks if start == T0 + 5 * H)["metrics"]
    rec = first_bad["recall"]
    assert (rec["current"], rec["baseline"], rec["loss"]) == (0.5, 0.8, 0.3)
    assert rec["top"] == [{"slice": "region=eu", "share": 0.5, "units": 10, "metric": 0.2, "baseline_metric": 0.8,
                           "baseline_source": "slice_trailing", "contribution": 0.3}]
    prec = first_bad["precision"]["top"][0]
    assert (prec["slice"], prec["share"], prec["metric"], prec["baseline_metric"]) == ("region=eu", 0.2857, 0.5, 0.8)
    assert prec["contribution"] == pytest.approx(2 / 7 * 0.3, abs=1e-4)
    err = first_bad["error_rate"]["top"][0]  # no costs configured: the error rate
    assert err["slice"] == "region=eu" and err["contribution"] == pytest.approx(0.5 * (10 / 40 - 4 / 40), abs=1e-4)
    clean = [r for start, r in ranks if start < T0 + 5 * H and r["metrics"]["recall"]["baseline_source"] == "trailing"]
    assert clean and all(r["metrics"]["recall"]["top"] == [] for r in clean)  # nothing lost before the fault
