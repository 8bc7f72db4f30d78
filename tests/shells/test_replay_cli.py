"""``skewwatch replay`` end to end through the console script, including every kind of bad input."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from detector.core.reference.build import build_reference

T0 = 1795564800.0


def skewwatch(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "detector", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("replay")
    rng = np.random.default_rng(0)
    n = 5000
    ref = build_reference({"amount": rng.lognormal(3, 1, n).round(2),
                           "country": np.array(rng.choice(["DE", "FR"], n), dtype=object),
                           "score": rng.random(n).round(3), "label": (rng.random(n) < 0.1).astype(float)},
                          score_column="score", label_column="label")
    ref.save(d / "ref.json")
    lines = []
    labels = []
    for h in range(8):
        for i in range(300):
            am = float(rng.lognormal(3, 1)) * (100 if h >= 5 else 1)
            pid = f"{h}-{i}"
            lines.append(orjson.dumps({"prediction_id": pid, "model": "m", "ts": T0 + h * 3600 + i * 10,
                                       "features": {"amount": round(am, 2), "country": "DE" if i % 2 else "FR"},
                                       "score": float(rng.random())}))
            labels.append(orjson.dumps({"prediction_id": pid, "ts": T0 + h * 3600 + i * 10 + 60, "label": int(i % 10 == 0)}))
    (d / "p.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    with gzip.open(d / "p.jsonl.gz", "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    (d / "l.jsonl").write_bytes(b"\n".join(labels) + b"\n")
    bad = list(lines[:50])
    bad.insert(3, b"{not json")
    bad.insert(7, orjson.dumps({"prediction_id": "x", "model": "m", "ts": "yesterday", "features": {}}))
    bad.insert(9, orjson.dumps({"prediction_id": "y", "model": "m", "ts": T0, "features": {"amount": "lots"}, "score": "high"}))
    (d / "bad.jsonl").write_bytes(b"\n".join(bad) + b"\n")
    (d / "empty.jsonl").write_bytes(b"")
    return d


def test_replay_writes_contract_alerts_and_summary(files, tmp_path):
    out = tmp_path / "alerts.jsonl"
    metrics = tmp_path / "metrics.prom"
    r = skewwatch("replay", "--reference", str(files / "ref.json"), "--predictions", str(files / "p.jsonl.gz"),
                  "--labels", str(files / "l.jsonl"), "--alerts-out", str(out), "--metrics-out", str(metrics))
    assert r.returncode == 0, r.stderr
    assert "replayed 2,400 prediction lines" in r.stdout and "unit_shift (firing): 1" in r.stdout
    alerts = [json.loads(x) for x in out.read_text().splitlines()]
    (a,) = [x for x in alerts if x["state"] == "firing" and x["kind"] == "unit_shift"]
    assert a["feature"] == "amount" and a["cause"] == "pipeline_skew" and a["action"] == "fix_data"
    assert "skewwatch_events_total" in metrics.read_text()


def test_replay_is_deterministic(files, tmp_path):
    outs = []
    for k in range(2):
        out = tmp_path / f"a{k}.jsonl"
        r = skewwatch("replay", "--reference", str(files / "ref.json"), "--predictions", str(files / "p.jsonl"),
                      "--alerts-out", str(out), "--quiet")
        assert r.returncode == 0, r.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] and outs[0]


def test_bad_lines_are_reported_with_line_numbers_and_dead_lettered(files, tmp_path):
    dlq = tmp_path / "dlq.jsonl"
    r = skewwatch("replay", "--reference", str(files / "ref.json"), "--predictions", str(files / "bad.jsonl"),
                  "--dlq-out", str(dlq))
    assert r.returncode == 0, r.stderr
    assert "invalid events: 3" in r.stdout
    assert "bad.jsonl:4: invalid_json" in r.stdout and "bad.jsonl:8: bad_timestamp" in r.stdout
    assert "bad.jsonl:10: bad_score" in r.stdout
    rows = [json.loads(x) for x in dlq.read_text().splitlines()]
    assert sorted(x["reason"] for x in rows) == ["bad_score", "bad_timestamp", "invalid_json"]
    assert all(x["detail"] for x in rows)


@pytest.mark.parametrize("args, message", [
    (["--predictions", "missing.jsonl"], "missing.jsonl: no such file"),
    (["--predictions", "{empty}"], "holds no events"),
    (["--predictions", "{p}", "--labels", "nope.jsonl"], "nope.jsonl: no such file"),
    (["--predictions", "{p}", "--window", "soon"], "not a duration"),
])
def test_bad_invocations_exit_2_with_a_clear_message(files, args, message):
    args = [a.format(empty=files / "empty.jsonl", p=files / "p.jsonl") for a in args]
    r = skewwatch("replay", "--reference", str(files / "ref.json"), *args)
    assert r.returncode == 2
    assert message in r.stderr and r.stderr.startswith("skewwatch replay: error:")


def test_reference_problems_exit_2(files, tmp_path):
    (tmp_path / "notref.json").write_text('{"hello": 1}')
    r = skewwatch("replay", "--reference", str(tmp_path / "notref.json"), "--predictions", str(files / "p.jsonl"))
    assert r.returncode == 2 and "not a skewwatch reference" in r.stderr and "skewwatch baseline" in r.stderr
    r = skewwatch("replay", "--predictions", str(files / "p.jsonl"))
    assert r.returncode == 2 and "no reference" in r.stderr


def test_config_errors_name_the_field(files, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("detector:\n  windwo: 5m\n")
    r = skewwatch("replay", "--reference", str(files / "ref.json"), "--predictions", str(files / "p.jsonl"), "--config", str(cfg))
    assert r.returncode == 2 and "detector.windwo" in r.stderr and "did you mean 'window'" in r.stderr
    r = skewwatch("check-config", str(cfg))
    assert r.returncode == 2 and "did you mean 'window'" in r.stderr


def test_poison_in_every_input_file_is_dead_lettered_with_its_line_and_the_replay_finishes(files, tmp_path):
    """Hostile lines (each once ended a replay with a traceback) in gzip'd predictions, labels and
    offline features, between blank lines: every one lands in the DLQ file with file:line."""
    src = (files / "p.jsonl").read_bytes().splitlines()[:600]
    lab = (files / "l.jsonl").read_bytes().splitlines()[:600]
    big = b"9" * 400
    preds = list(src)
    preds[10:10] = [b"", b'{"prediction_id": "a", "model": "m", "ts": 1795564900, "score": ' + big + b', "features": {}}']
    preds[20:20] = [json.dumps({"prediction_id": "b", "model": "m", "ts": T0 + 200, "features": {},
                                "decision": ["review"]}).encode()]
    preds[30:30] = [b"[" * 3000 + b"]" * 3000, b"   "]
    preds[40:40] = [b"[" + src[0] + b"," + json.dumps({"prediction_id": "c", "model": "m", "ts": T0, "features": {},
                                                         "slices": {"region": ["eu"]}}).encode() + b"]"]
    labels = list(lab)
    labels[5:5] = [b'{"prediction_id": "0-1", "ts": 1795564900, "label": 1, "revision": NaN}', b""]
    labels[50:50] = [b'{"prediction_id": "0-2", "ts": 1795564900, "label": 1, "revision": 1e999}']
    feats = [json.dumps({"prediction_id": f"0-{i}", "ts": T0 + i * 10, "features": {"amount": 1.0, "country": "DE"}}).encode()
             for i in range(100)]
    feats[7:7] = [json.dumps({"prediction_id": {"id": 1}, "ts": T0 + 70, "features": {}}).encode()]
    feats[20:20] = [b'{"prediction_id": "0-3", "ts": ' + big + b', "features": {}}']
    for name, lines in (("p.jsonl.gz", preds), ("l.jsonl.gz", labels), ("f.jsonl.gz", feats)):
        with gzip.open(tmp_path / name, "wb") as f:
            f.write(b"\n".join(lines) + b"\n")
    dlq = tmp_path / "dlq.jsonl"
    r = skewwatch("replay", "--reference", str(files / "ref.json"), "--predictions", str(tmp_path / "p.jsonl.gz"),
                  "--labels", str(tmp_path / "l.jsonl.gz"), "--features", str(tmp_path / "f.jsonl.gz"),
                  "--dlq-out", str(dlq))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    rows = {(x["source"], x["reason"]) for x in map(json.loads, dlq.read_text().splitlines())}
    p, l_, f = (str(tmp_path / n) for n in ("p.jsonl.gz", "l.jsonl.gz", "f.jsonl.gz"))
    assert rows == {(f"{p}:12", "bad_score"), (f"{p}:21", "bad_field"), (f"{p}:31", "invalid_json"),
                    (f"{p}:41 item 1", "bad_field"), (f"{l_}:6", "bad_field"), (f"{l_}:51", "bad_field"),
                    (f"{f}:8", "bad_field"), (f"{f}:21", "bad_timestamp")}, sorted(rows)
    assert "invalid events: 8" in r.stdout and "598 predictions" not in r.stdout


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_replay_reads_flat_tables_like_the_same_events_in_jsonl(files, tmp_path, fmt):
    """One column per feature (CSV or Parquet) gives the same alerts as the nested JSONL events."""
    evs = [orjson.loads(x) for x in (files / "p.jsonl").read_bytes().splitlines()]
    rows = [{"prediction_id": e["prediction_id"], "model": e["model"], "ts": e["ts"], "score": e["score"],
             **e["features"]} for e in evs]
    labels = [orjson.loads(x) for x in (files / "l.jsonl").read_bytes().splitlines()]
    if fmt == "csv":
        import csv

        for name, data in (("p.csv", rows), ("l.csv", labels)):
            with open(tmp_path / name, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(data[0]))
                w.writeheader()
                w.writerows(data)
    else:
        pa = pytest.importorskip("pyarrow")
        pq = pytest.importorskip("pyarrow.parquet")
        pq.write_table(pa.Table.from_pylist(rows), tmp_path / "p.parquet")
        pq.write_table(pa.Table.from_pylist(labels), tmp_path / "l.parquet")
    outs = {}
    for tag, p, lab in (("jsonl", files / "p.jsonl", files / "l.jsonl"),
                        (fmt, tmp_path / f"p.{fmt}", tmp_path / f"l.{fmt}")):
        out = tmp_path / f"{tag}.alerts.jsonl"
        r = skewwatch("replay", "--reference", str(files / "ref.json"), "--predictions", str(p), "--labels", str(lab),
                      "--alerts-out", str(out))
        assert r.returncode == 0, r.stderr
        assert "2,400 predictions" in r.stdout and "invalid events: 0" in r.stdout, r.stdout
        outs[tag] = [{k: a[k] for k in ("state", "kind", "feature", "statistic", "value")}
                     for a in map(json.loads, out.read_text().splitlines())]
    assert outs[fmt] == outs["jsonl"] and any(a["kind"] == "unit_shift" for a in outs[fmt])


def test_a_raising_check_costs_only_its_own_results_in_replay(files, tmp_path):
    """The replay runs the same guarded core as the worker: a broken check (loaded into the replay's
    interpreter by ``sitecustomize``) is counted and logged, the unit change still fires, the replay exits 0."""
    import os

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import detector.core.checks.window as _w\n"
        "def _broken(*a, **k):\n    raise ValueError('x must lie in [0, n] (a deliberately broken check)')\n"
        "_w.categorical_checks = _broken\n")
    out, metrics = tmp_path / "alerts.jsonl", tmp_path / "metrics.prom"
    repo = str(Path(__file__).resolve().parents[2])  # importable when sitecustomize runs (before the editable install's hook)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, str(hook), *filter(None, [os.environ.get("PYTHONPATH")])])}
    r = subprocess.run([sys.executable, "-m", "detector", "replay", "--reference", str(files / "ref.json"),
                        "--predictions", str(files / "p.jsonl"), "--alerts-out", str(out), "--metrics-out", str(metrics),
                        "--log-format", "json"], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    alerts = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(a["kind"], a["feature"]) for a in alerts if a["state"] == "firing"] == [("unit_shift", "amount")]
    errors = [json.loads(x) for x in r.stderr.splitlines() if x.startswith("{") and '"skewwatch.checks"' in x]
    assert errors and all(e["check"] == "categorical" and e["error_type"] == "ValueError" for e in errors)
    sample = [x for x in metrics.read_text().splitlines() if x.startswith('skewwatch_check_errors_total{check="categorical"}')]
    assert sample and float(sample[0].split()[-1]) == len(errors) >= 8  # once per window (one categorical feature)
