"""Cost of the multivariate fold on the bench workload: decode + ingest with and without it, same process.

``python -m tests.bench.measure_multivariate_fold [RUNS] [--full]`` (``--full``: fold every event,
no sampling). Runs alternate (without, with) and the medians are printed: the machine is shared,
so only the same-process ratio means anything.
"""

from __future__ import annotations

import statistics
import sys
import time

from detector.bench.workload import make_events, reference
from detector.core.engine import Engine
from detector.core.settings import DetectorSettings


def once(ref, events: list[bytes], joint: bool, full: bool) -> float:
    eng = Engine(DetectorSettings(), default_reference=ref)
    eng.ingest_predictions(events[:5000])  # builds the model state (and paces the sample)
    ms = next(iter(eng.models.values()))
    if not joint:
        ms.joint = None
        for w in ms.windows.values():
            w.mv = None
    elif full:
        ms.joint.rate, ms.joint.paced = 1.0, True
    t = time.perf_counter()
    for i in range(5000, len(events), 5000):
        eng.ingest_predictions(events[i : i + 5000])
    return (time.perf_counter() - t) / (len(events) - 5000) * 1e6


def main(argv: list[str]) -> None:
    runs = int(argv[0]) if argv and argv[0].isdigit() else 5
    full = "--full" in argv
    ref = reference()
    mv = ref.multivariate
    print(f"joint structure: {len(mv['features'])} features, {len(mv['components'])} components; "
          f"{'every event folded' if full else 'sampled'}")
    events = make_events(60000)
    res: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(runs):
        for j in (False, True):
            res[j].append(once(ref, events, j, full))
    a, b = statistics.median(res[False]), statistics.median(res[True])
    print(f"us per event: without {a:.2f}, with {b:.2f}; throughput ratio with/without {a / b:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
