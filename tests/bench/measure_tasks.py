"""Cost of the task counters per event, and how close the estimates before labels come to the truth.

``python -m tests.bench.measure_tasks`` prints JSON:

* ``fold``: microseconds per event to fold predictions and their labels into a cohort's counters
  (``add_predictions`` + ``add_pairs``, 4 slice rows per event: all traffic + 3 dimensions), per
  task, median of 7 runs, with the ratio to the binary task (today's counters) measured in the
  same process; plus counter bytes per slice row;
* ``estimates``: on clean simulated traffic (48 h at 1000 events/h; the fraud model at 1500/h),
  per metric: mean and RMS of ``z = (realised - estimate) / stated error`` over windows whose
  labels are complete, the share within 2 stated errors, the largest ``|z|``, and the RMS after
  the stated error learnt from the first 12 matured windows (:func:`inflation`).
"""

from __future__ import annotations

import json
import time

import numpy as np

from detector.core.outcomes.estimate.stated_error import inflation
from detector.core.outcomes.tasks import make_task
from detector.core.outcomes.tasks.reference import (
    binary_reference,
    multiclass_reference,
    regression_reference,
)
from detector.sim import get_scenario, simulate, training_table
from detector.sim.tasks.world import TaskScenario, simulate_task, task_training
from tests.core.tasks.harness import cohorts, traffic

N = 20_000


def _refs() -> dict[str, dict]:
    tr = task_training("eta", 30000, seed=1)
    feats = {k: tr[k] for k in ("distance_km", "traffic_index", "n_items", "courier_load", "prep_time_min", "temp_c", "weather")}
    out = {"regression": regression_reference(tr["label"], tr["prediction"], feats, ts=tr["ts"])}
    tr = task_training("intent", 30000, seed=1)
    out["multiclass"] = multiclass_reference(tr["label"], tr["predicted_class"], tr["scores"], ts=tr["ts"])
    tt = training_table(40000, seed=3)
    out["binary"] = binary_reference(tt["label"], tt["score"], 0.5, ts=tt["ts"])
    return out


def fold_cost(refs: dict[str, dict]) -> list[dict]:
    sims = {"regression": ("eta", simulate_task(TaskScenario("b", "eta", hours=24, rate_per_hour=N / 24))),
            "multiclass": ("intent", simulate_task(TaskScenario("b", "intent", hours=24, rate_per_hour=N / 24))),
            "binary": ("fraud", list(simulate(get_scenario("stable", rate_per_hour=N / 24, hours=24))))}
    res = {}
    for name, (_, ev) in sims.items():
        task = make_task(refs[name])
        preds = [e for _, t, e in ev if t == "predictions"][:N]
        p = task.prediction_columns(preds)
        if name == "binary":
            p.klass = (p.value >= 0.5).astype(np.int64)
        n = len(preds)
        rng = np.random.default_rng(0)
        ridx = np.stack([np.zeros(n, int), 1 + rng.integers(0, 5, n), 6 + rng.integers(0, 4, n), 10 + rng.integers(0, 4, n)], 1)
        feats = {k: np.array([e["features"].get(k) for e in preds], dtype=object) for k in preds[0]["features"]}
        feats = {k: (v.astype(float) if all(isinstance(x, int | float) for x in v[:100]) else v) for k, v in feats.items()}
        y = task.decode_labels([0 if name == "binary" else (1.0 if name == "regression" else "billing")] * n).y
        times = []
        for _ in range(7):
            c = task.counters(14)
            t0 = time.perf_counter()
            task.add_predictions(c, ridx, p, feats)
            task.add_pairs(c, ridx, p.value, p.klass, y, np.ones(n))
            times.append(time.perf_counter() - t0)
        res[name] = (1e6 * float(np.median(times)) / n, c.nbytes / 14)
    return [{"task": k, "us_per_event": round(v[0], 2), "ratio_to_binary": round(v[0] / res["binary"][0], 2),
             "counter_bytes_per_row": int(v[1])} for k, v in res.items()]


def _summary(z: np.ndarray) -> dict:
    later = z[12:] / inflation(z[:12])
    return {"windows": int(z.size), "mean_z": round(float(z.mean()), 2), "rms_z": round(float(np.sqrt((z * z).mean())), 2),
            "within_2": round(float(np.mean(np.abs(z) <= 2)), 3), "max_abs_z": round(float(np.abs(z).max()), 2),
            "rms_z_after_inflation": round(float(np.sqrt((later * later).mean())), 2)}


def estimate_errors(refs: dict[str, dict]) -> list[dict]:
    runs = {"regression": [("eta", s) for s in (3, 4, 5)], "multiclass": [("intent", s) for s in (3, 4, 5)],
            "binary": [("fraud", s) for s in (1, 2, 3)]}
    metrics = {"regression": ("mae", "rmse"), "multiclass": ("accuracy", "macro_f1"),
               "binary": ("accuracy", "precision", "recall", "auc")}
    dims = {"eta": ("region",), "intent": ("channel",), "fraud": ("region",)}
    out = []
    for name, seeds in runs.items():
        task = make_task(refs[name])
        zs: dict[str, list[float]] = {m: [] for m in metrics[name]}
        for model, seed in seeds:
            if model == "fraud":
                ev = list(simulate(get_scenario("stable", seed=seed, rate_per_hour=1500, hours=48)))
            else:
                ev = simulate_task(TaskScenario("e", model, hours=48, rate_per_hour=1000, seed=seed))
            for w in cohorts(task, traffic(task, ev, dims[model]), maturity=1e9)[:40]:
                m = task.metrics(w.counters)
                if m["labelled"][0] < 0.9 * 0.95 * m["predictions"][0]:
                    continue
                for k in metrics[name]:
                    zs[k].append((m[k][0] - m[f"estimated_{k}"][0]) / m[f"estimated_{k}_se"][0])
        out += [{"task": name, "metric": k, **_summary(np.asarray(v))} for k, v in zs.items()]
    return out


def main() -> None:
    refs = _refs()
    print(json.dumps({"fold": fold_cost(refs), "estimates": estimate_errors(refs)}, indent=1))


if __name__ == "__main__":
    main()
