"""Cost of performance estimates before labels on the binary engine path (the same-run ratio behind the README).

The benchmark workload (:mod:`detector.bench.workload`: 200k prediction events, three slice
dimensions) through a fresh engine, alternately with the benchmark reference as ``skewwatch bench``
uses it (no labels: no estimates) and with the same reference plus a binary task (calibration map
from labels drawn from the training scores: estimates on). ``--runs`` alternating pairs in one
process, medians and the ratio of the medians; the machine is shared, so only the ratio means much.

Run: ``python -m tests.bench.measure_estimates [--events 200000] [--runs 5]`` (JSON to stdout).

``--honesty``: instead, how far the estimates are from the realised values on stable simulated
traffic - the fraud model through the engine and outcome monitor (72 h at 600 and 60 predictions/h:
matured gaps in stated errors, raw and as exported after the widening), and the ``eta`` / ``intent``
models' hourly window estimates against the realised values of the simulation's labels.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics

import numpy as np

from detector.bench.workload import bench_core, columns, make_events, reference
from detector.core.outcomes.tasks.reference import binary_reference


def with_task(ref, seed: int = 11, n: int = 100_000):
    """The benchmark reference plus a binary task fitted on its own training scores (labels drawn from them)."""
    rng = np.random.default_rng(seed)
    s = columns(n, rng)["score"]
    y = (np.random.default_rng(seed + 1).uniform(0, 1, s.size) < s).astype(float)
    out = copy.deepcopy(ref)
    out.task = binary_reference(y, s, threshold=0.5)
    return out


def honesty() -> dict:
    """Gap statistics per model, rate and metric (see the module docstring)."""
    from detector.core.reference.build import build_reference
    from detector.sim import training_table
    from tests.scenarios import test_task_estimates as tt
    from tests.scenarios.conftest import run_scenario

    def row(z: np.ndarray) -> dict:
        return {"n": int(z.size), "mean_z": round(float(z.mean()), 2), "rms_z": round(float(np.sqrt((z * z).mean())), 2),
                "within_2": round(float(np.mean(np.abs(z) < 2)), 3)}

    out: dict = {}
    ref = build_reference(training_table(40_000, seed=1), label_column="label", score_column="score",
                          slice_columns=["region", "channel", "tier"], time_column="ts", model="fraud")
    for rate in (600.0, 60.0):
        _, eng, alerts = run_scenario(ref, "stable", rate=rate)
        pe = eng.models["fraud"].estimate
        out[f"fraud@{rate:g}"] = {"estimated_alerts": sum(a["statistic"].startswith("estimated_") for a in alerts),
                                  **{m: {"raw": row(np.array([x[2] for x in g])), "as_exported": row(np.array([x[3] for x in g]))}
                                     for m, g in pe.gaps.items()}}
    for model in ("eta", "intent"):
        t0, preds, labels = tt.traffic(model)
        _, alerts, per_window = tt.run(model, preds)
        real = tt.realised(model, preds, labels, t0)
        out[model] = {"alerts": len(alerts)}
        for m in tt.METRICS[model]:
            z = np.array([(real[s][m] - w[m]) / (w[f"{m}_se"] * np.sqrt(max(1.0, w["predictions"] / real[s]["n"])))
                          for s, w in per_window.items() if s in real and w.get(m) is not None])
            out[model][m] = row(z)
    print(json.dumps(out))
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--batch", type=int, default=5000)
    p.add_argument("--honesty", action="store_true", help="measure the estimates' error instead of their cost")
    a = p.parse_args(argv)
    if a.honesty:
        return honesty()
    events = make_events(a.events)
    base = reference()
    est = with_task(base)
    off, on = [], []
    for _ in range(a.runs):
        off.append(bench_core(events, base, a.batch, "1h")["events_per_s"])
        r = bench_core(events, est, a.batch, "1h")
        on.append(r["events_per_s"])
    out = {"events": a.events, "runs": a.runs, "events_per_s_without": round(statistics.median(off)),
           "events_per_s_with_estimates": round(statistics.median(on)),
           "ratio": round(statistics.median(on) / statistics.median(off), 3),
           "all_without": [round(x) for x in off], "all_with": [round(x) for x in on]}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
