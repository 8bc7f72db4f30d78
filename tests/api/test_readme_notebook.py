"""The README's notebook example, run verbatim: on DataFrames and on lists of event dicts."""

from __future__ import annotations

import re

import orjson
import pytest

from detector import Monitor, build_reference
from detector.sim import Fault, get_scenario, simulate, training_table

pd = pytest.importorskip("pandas")
README = __import__("pathlib").Path(__file__).resolve().parents[2] / "README.md"


def _blocks() -> list[str]:
    text = README.read_text()
    section = text.split("## Python API (notebooks)", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """train.csv (amount in dollars) and a day of traffic whose amount turns into cents at hour 22."""
    d = tmp_path_factory.mktemp("notebook")
    train = pd.DataFrame(training_table(12_000, seed=3)).rename(columns={"label": "is_fraud"})
    train.to_csv(d / "train.csv", index=False)
    sc = get_scenario("unit_change", rate_per_hour=400, hours=26).with_(faults=(Fault("unit_change", 22.0, None),))
    for topic in ("predictions", "labels", "features"):
        with open(d / f"{topic}.jsonl", "wb") as f:
            f.writelines(orjson.dumps(ev) + b"\n" for _, t, ev in simulate(sc) if t == topic)
    return d


def _check(ns: dict) -> None:
    alerts, monitor = ns["alerts"], ns["monitor"]
    unit = [a for a in alerts if a["kind"] == "unit_shift" and a["feature"] == "amount" and a["state"] == "firing"]
    assert unit and unit[0]["cause"] == "pipeline_skew" and unit[0]["action"] == "fix_data", \
        [(a["kind"], a["feature"]) for a in alerts]
    assert set(unit[0]) >= {"alert_id", "ts", "state", "model", "kind", "feature", "slice", "statistic", "value",
                            "threshold", "severity", "window", "cause", "action", "evidence", "summary"}
    c = monitor.counts
    assert c["predictions"] > 9000 and c["labels"] > 0 and c["feature_events"] > 0 and c["rejected"] == 0, c
    summary = monitor.summary()
    assert isinstance(summary, pd.DataFrame) and len(summary) > 50
    assert list(summary.columns[:5]) == ["model", "kind", "feature", "slice", "statistic"]
    assert "unit_shift" in monitor._repr_html_()


def test_readme_example_on_dataframes(workdir, monkeypatch, capsys):
    load, example = _blocks()
    monkeypatch.chdir(workdir)
    ns: dict = {}
    exec(compile(load, "README.md (load)", "exec"), ns)
    assert isinstance(ns["predictions"], pd.DataFrame)
    exec(compile(example, "README.md (example)", "exec"), ns)
    _check(ns)
    assert "unit_shift amount" in capsys.readouterr().out


def test_readme_example_on_lists_of_dicts(workdir, monkeypatch):
    _, example = _blocks()
    monkeypatch.chdir(workdir)
    ns: dict = {name: [orjson.loads(line) for line in (workdir / f"{topic}.jsonl").read_bytes().splitlines()]
                for name, topic in (("predictions", "predictions"), ("labels", "labels"), ("offline", "features"))}
    exec(compile(example, "README.md (example)", "exec"), ns)
    _check(ns)


def test_flat_dataframe_columns_become_features_and_slices(workdir):
    """A flat table (one column per feature, slices by name) is the same traffic as nested events."""
    ref = build_reference(workdir / "train.csv", label="is_fraud", score="score", slices=["region", "channel", "tier"])
    evs = [orjson.loads(x) for x in (workdir / "predictions.jsonl").read_bytes().splitlines()[:3000]]
    flat = pd.DataFrame([{**{k: v for k, v in e.items() if k not in ("features", "slices")}, **e["features"],
                          **e["slices"]} for e in evs])
    a, b = Monitor(ref), Monitor(ref)
    a.observe(flat)
    b.observe(evs)
    a.flush(), b.flush()
    assert a.counts == b.counts and a.counts["predictions"] == 3000
    sa, sb = a.summary(), b.summary()
    assert sa[["feature", "statistic", "value"]].round(9).equals(sb[["feature", "statistic", "value"]].round(9))


def test_without_pandas_lists_work_and_errors_are_kept(workdir):
    ref = build_reference({"x": [float(i % 7) for i in range(500)], "s": [i / 500 for i in range(500)]}, score="s")
    m = Monitor(ref, window="10m", model="m")
    assert m.observe([{"ts": 1795615200, "features": {"x": 1.0}, "score": 0.3}, {"score": "high"}]) == []
    assert m.counts["predictions"] == 1 and m.counts["rejected"] == 1 and m.errors[0]["reason"]
