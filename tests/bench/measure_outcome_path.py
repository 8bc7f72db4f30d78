"""CPU seconds of a binary model's outcome path: predictions, labels, label join, cohorts, evaluations.

Prints ``best CPU seconds of 2 runs, events, labels matched`` for the fraud simulator's stable
traffic (80k prediction + label events, 3 slice dimensions). To compare two commits on a shared,
noisy machine, run both in the same session, alternating, pinned to one core, and take the median
of the per-pair ratios (process CPU time, not wall clock). The script file is this tree's; the
``detector`` it measures is whichever ``PYTHONPATH`` puts first::

    git archive BASE | tar -x -C /tmp/base
    for i in 1 2 3 4; do
      PYTHONPATH=/tmp/base taskset -c 1 python tests/bench/measure_outcome_path.py   # BASE
      taskset -c 1 python tests/bench/measure_outcome_path.py                        # this tree
    done
"""

from __future__ import annotations

import time

import orjson

from detector.core.engine import Engine
from detector.core.outcomes.monitor import attach_outcomes
from detector.core.reference.build import build_reference
from detector.sim import get_scenario, simulate, training_table


def main() -> None:
    tr = training_table(20000, seed=1)
    ref = build_reference(tr, label_column="label", score_column="score", slice_columns=["region", "channel", "tier"],
                          model="fraud")
    sc = get_scenario("stable", seed=0, rate_per_hour=3000)
    evs = [(topic, orjson.dumps(e)) for _, topic, e in simulate(sc, topics=("predictions", "labels"))][:80000]
    best = []
    for _ in range(2):
        eng = Engine(references={"fraud": ref}, default_reference=ref)
        attach_outcomes(eng)
        t0 = time.process_time()
        for i in range(0, len(evs), 2000):
            part = evs[i : i + 2000]
            eng.ingest_predictions([r for t, r in part if t == "predictions"])
            eng.ingest_labels([r for t, r in part if t == "labels"])
            eng.advance()
        eng.flush()
        best.append(time.process_time() - t0)
    print(min(best), len(evs), eng.outcomes.join.counters["matched"])


if __name__ == "__main__":
    main()
