"""Cost of performance estimates before labels on the binary engine path (the same-run ratio behind the README).

The benchmark workload (:mod:`detector.bench.workload`: 200k prediction events, three slice
dimensions) through a fresh engine, alternately with the benchmark reference as ``skewwatch bench``
uses it (no labels: no estimates) and with the same reference plus a binary task (calibration map
from labels drawn from the training scores: estimates on). ``--runs`` alternating pairs in one
process, medians and the ratio of the medians; the machine is shared, so only the ratio means much.

Run: ``python -m tests.bench.measure_estimates [--events 200000] [--runs 5]`` (JSON to stdout).
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


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--batch", type=int, default=5000)
    a = p.parse_args(argv)
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
