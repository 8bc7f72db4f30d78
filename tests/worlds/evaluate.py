"""Score skewwatch on the evaluation worlds the way a user runs it.

    python -m tests.worlds.evaluate [--fast] [--worlds A,B] [--seeds 1,2] [--rates 150,400]
                                    [--rates-b 700,1300] [--faults unit_shift,...] [--jobs 2]
                                    [--env SKEWWATCH_DETECTOR__MAX_FUTURE=30d] [--json out.json] [--markdown]

For each (world, seed, rate, fault or clean) it generates the scenario (``generator.py``), runs
``skewwatch baseline`` on the world's training CSV and ``skewwatch replay`` with predictions,
labels and offline features as subprocesses (the installed console script; ``python -m detector``
when there is none), reads the alert stream and the dead-letter file, and scores them
(``scoring.py``). Scenarios run in a process pool. The last lines compare the result with the
targets of issue 9: no firing alert in 14 clean days for any seed, every fault caught by its
deadline with the expected cause on the first alert, every line accepted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from tests.worlds.faults import faults_of
from tests.worlds.generator import WORLDS, Scenario, generate, write_training
from tests.worlds.scoring import score

__all__ = ["cli", "run_baseline", "run_scenario", "summarise", "render", "main", "FAST"]

# the --fast subset: a clean run and a few pipeline faults per world, one seed, one rate
FAST = {"A": ("unit_shift", "missing_values", "decision_threshold", "feature_parity", "latency_channel"),
        "B": ("unit_shift", "default_value_spike", "schema_type")}
TIMEOUT = 3600.0


def cli() -> list[str]:
    """The ``skewwatch`` console script next to this interpreter, else on PATH, else ``python -m detector``."""
    here = Path(sys.executable).parent / "skewwatch"
    if here.exists():
        return [str(here)]
    found = shutil.which("skewwatch")
    return [found] if found else [sys.executable, "-m", "detector"]


def _env(overrides: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKEWWATCH_")}
    env.update(overrides)
    return env


def run_baseline(world: str, seed: int, folder: Path, env: dict[str, str]) -> dict[str, Any]:
    """Training CSV + ``skewwatch baseline``; returns the reference path and the summary it printed."""
    t0 = time.perf_counter()
    train = write_training(world, seed, folder)
    ref = folder / "reference.json"
    cmd = cli() + ["baseline", "--data", str(train), "--label-column", "label", "--score-column", "score",
                   "--slice-column", "region", "channel", "--out", str(ref)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=_env(env), timeout=TIMEOUT)
    if p.returncode != 0:
        raise RuntimeError(f"baseline failed ({p.returncode}): {p.stderr.strip()[-2000:]}")
    return {"world": world, "seed": seed, "reference": str(ref), "summary": (p.stdout + p.stderr).strip(),
            "seconds": round(time.perf_counter() - t0, 2)}


_SUMMARY = re.compile(r"replayed ([\d,]+) prediction lines.*?; ([\d,]+) predictions, ([\d,]+) labels, ([\d,]+) feature events")
_INVALID = re.compile(r"invalid events: ([\d,]+)(?: \(([^)]*)\))?; late events: ([\d,]+)")


def _int(s: str) -> int:
    return int(s.replace(",", ""))


def parse_replay_summary(text: str) -> dict[str, Any]:
    """Counts from replay's summary lines (predictions accepted, invalid by reason, late)."""
    out: dict[str, Any] = {}
    m = _SUMMARY.search(text)
    if m:
        out.update(lines=_int(m[1]), predictions=_int(m[2]), labels=_int(m[3]), feature_events=_int(m[4]))
    m = _INVALID.search(text)
    if m:
        out["invalid"] = _int(m[1])
        out["late"] = _int(m[3])
        out["invalid_reasons"] = {k.strip(): _int(v) for k, v in
                                  (part.split(":") for part in (m[2] or "").split(",") if ":" in part)}
    return out


def _dlq_counts(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    if not path.exists():
        return counts
    with path.open("rb") as fh:
        for line in fh:
            src = json.loads(line).get("source", "?")
            name = Path(str(src).split(":")[0]).name.split(".")[0]
            counts[name] = counts.get(name, 0) + 1
    return counts


def run_scenario(job: dict[str, Any]) -> dict[str, Any]:
    """Generate, replay and score one scenario (runs in a pool worker)."""
    scn = Scenario(**job["scenario"])
    folder = Path(job["workdir"]) / scn.name
    t0 = time.perf_counter()
    try:
        meta = generate(scn, folder, gz=False)
        t_gen = time.perf_counter() - t0
        alerts_path, dlq_path = folder / "alerts.jsonl", folder / "dlq.jsonl"
        cmd = cli() + ["replay", "--reference", job["reference"], "--predictions", meta["paths"]["predictions"],
                       "--labels", meta["paths"]["labels"], "--features", meta["paths"]["features"],
                       "--alerts-out", str(alerts_path), "--dlq-out", str(dlq_path)]
        t1 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, env=_env(job["env"]), timeout=TIMEOUT)
        t_replay = time.perf_counter() - t1
        res: dict[str, Any] = {"scenario": scn.name, "world": scn.world, "seed": scn.seed, "rate": scn.rate,
                               "fault": scn.fault, "days": meta["days"], "onset": meta["onset"],
                               "deadline_h": meta["deadline_h"], "deadline_class": meta["deadline_class"],
                               "written": {"predictions": meta["predictions"], "labels": meta["labels"],
                                           "features": meta["feature_events"]},
                               "seconds": {"generate": round(t_gen, 2), "replay": round(t_replay, 2)}}
        if p.returncode != 0:
            res["error"] = f"replay exit {p.returncode}: {p.stderr.strip()[-1500:]}"
            return res
        alerts = [json.loads(ln) for ln in alerts_path.read_bytes().splitlines() if ln.strip()]
        res["replay"] = parse_replay_summary(p.stdout)
        res["rejected"] = _dlq_counts(dlq_path)
        total = sum(res["written"].values())
        res["rejected_share"] = round(sum(res["rejected"].values()) / max(total, 1), 5)
        res["late_share"] = round(res["replay"].get("late", 0) / max(meta["predictions"], 1), 5)
        res.update(score(meta, alerts))
        return res
    except Exception as exc:  # one broken scenario must not sink the matrix
        return {"scenario": scn.name, "world": scn.world, "seed": scn.seed, "rate": scn.rate, "fault": scn.fault,
                "error": f"{type(exc).__name__}: {exc}"}
    finally:
        if not job.get("keep"):
            shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------- aggregation


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per fault class and clean-run summaries, and the verdict against issue 9's targets."""
    ok = [r for r in results if "error" not in r]
    classes = []
    for world in sorted({r["world"] for r in ok}):
        for fault in [f.name for f in faults_of(world)]:
            rs = [r for r in ok if r["world"] == world and r["fault"] == fault]
            if not rs:
                continue
            delays = [r["delay_h"] for r in rs if r["caught"]]
            classes.append({
                "world": world, "fault": fault, "class": rs[0]["deadline_class"], "deadline_h": rs[0]["deadline_h"],
                "runs": len(rs), "caught": sum(r["caught"] for r in rs),
                "delay_median_h": round(statistics.median(delays), 1) if delays else None,
                "delay_max_h": round(max(delays), 1) if delays else None,
                "first_cause_ok": sum(r["first_cause_ok"] for r in rs), "first_kind_ok": sum(r["first_kind_ok"] for r in rs),
                "false_alarms": sum(r["false_alarms"] for r in rs),
                "first": _mode([r["first"] for r in rs]), "alert": _mode([r["alert"] for r in rs]),
                "rejected_share_max": max(r["rejected_share"] for r in rs),
            })
    clean = [{"world": r["world"], "seed": r["seed"], "rate": r["rate"], "days": r["days"],
              "firing": r["false_alarms"], "per_14d": r["per_14d"], "rejected_share": r["rejected_share"],
              "late_share": r["late_share"], "top": r["false_alarm_list"][:5]}
             for r in ok if r["fault"] is None]
    fault_runs = [r for r in ok if r["fault"] is not None]
    targets = {
        "clean_runs_without_alerts": f"{sum(c['firing'] == 0 for c in clean)}/{len(clean)}",
        "fault_classes_caught_every_run": f"{sum(c['caught'] == c['runs'] for c in classes)}/{len(classes)}",
        "fault_classes_first_cause_right_every_run": f"{sum(c['first_cause_ok'] == c['runs'] for c in classes)}/{len(classes)}",
        "fault_runs_caught": f"{sum(r['caught'] for r in fault_runs)}/{len(fault_runs)}",
        "fault_runs_first_cause_right": f"{sum(r['first_cause_ok'] for r in fault_runs)}/{len(fault_runs)}",
        "rejected_lines_max_share": max((r["rejected_share"] for r in ok), default=0.0),
        "errors": len(results) - len(ok),
    }
    targets["met"] = (all(c["firing"] == 0 for c in clean) and all(c["caught"] == c["runs"] and c["first_cause_ok"] == c["runs"]
                      for c in classes) and targets["rejected_lines_max_share"] == 0.0 and targets["errors"] == 0)
    return {"classes": classes, "clean": clean, "targets": targets}


def _mode(xs: Sequence[Any]) -> Any:
    xs = [x for x in xs if x is not None]
    return max(set(xs), key=xs.count) if xs else None


def render(summary: dict[str, Any], results: list[dict[str, Any]], markdown: bool) -> str:
    head = ["world", "fault", "deadline", "caught", "delay h (median/max)", "first alert cause ok", "kind ok",
            "false alarms", "rejected", "typical first alert"]
    rows = []
    for c in summary["classes"]:
        delay = "-" if c["delay_median_h"] is None else f"{c['delay_median_h']:g} / {c['delay_max_h']:g}"
        rows.append([c["world"], c["fault"], f"{c['deadline_h']:g} h", f"{c['caught']}/{c['runs']}", delay,
                     f"{c['first_cause_ok']}/{c['runs']}", f"{c['first_kind_ok']}/{c['runs']}", str(c["false_alarms"]),
                     f"{c['rejected_share_max']:.1%}", c["first"] or "(none)"])
    chead = ["world", "seed", "rate/h", "days", "firing alerts", "per 14 days", "rejected", "late", "most frequent"]
    crows = [[c["world"], str(c["seed"]), f"{c['rate']:g}", f"{c['days']:g}", str(c["firing"]), f"{c['per_14d']:g}",
              f"{c['rejected_share']:.1%}", f"{c['late_share']:.1%}", "; ".join(_top(c["top"]))] for c in summary["clean"]]
    out = [_table(head, rows, markdown), "", _table(chead, crows, markdown), ""]
    for r in results:
        if "error" in r:
            out.append(f"ERROR {r['scenario']}: {r['error']}")
    t = summary["targets"]
    out.append("targets (issue 9): " + ", ".join(f"{k} {v}" for k, v in t.items() if k != "met")
               + f" -> {'MET' if t['met'] else 'NOT MET'}")
    return "\n".join(out)


def _top(items: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    for s in items:
        seen[s] = seen.get(s, 0) + 1
    return [f"{k} x{v}" if v > 1 else k for k, v in sorted(seen.items(), key=lambda kv: -kv[1])[:3]]


def _table(head: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:{w}}}" for w in widths)
    return "\n".join([fmt.format(*head)] + [fmt.format(*r) for r in rows])


# ---------------------------------------------------------------------------- CLI


def _csv(s: str, conv: Any = str) -> list[Any]:
    return [conv(x) for x in s.split(",") if x.strip()]


def plan(worlds: list[str], seeds: list[int], rates: dict[str, list[float]], faults: list[str] | None,
         fast: bool, clean_days: float | None = None) -> list[Scenario]:
    out = []
    for w in worlds:
        names = list(FAST[w]) if fast and faults is None else [f.name for f in faults_of(w)]
        if faults is not None:
            names = [n for n in names if n in faults]
        for seed in seeds:
            for rate in rates[w]:
                if faults is None or "clean" in faults:
                    out.append(Scenario(w, seed, rate, None, clean_days))
                out += [Scenario(w, seed, rate, n) for n in names]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.worlds.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--fast", action="store_true", help="one seed, one rate, a clean run and a few pipeline faults")
    p.add_argument("--worlds", default="A,B")
    p.add_argument("--seeds", help="comma-separated (default 1,2; --fast: 1)")
    p.add_argument("--rates", help="world A predictions/h, comma-separated (default 150,400; --fast: 300)")
    p.add_argument("--rates-b", help="world B predictions/h (default 700,1300; --fast: 1000)")
    p.add_argument("--faults", help="only these faults (comma-separated; 'clean' for the clean run)")
    p.add_argument("--clean-days", type=float, help="length of clean runs (default 14)")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="parallel scenarios (default 2)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="environment for the skewwatch commands, e.g. SKEWWATCH_DETECTOR__MAX_FUTURE=30d")
    p.add_argument("--workdir", type=Path, help="where scenarios are written (default: a temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the generated files and alert streams")
    p.add_argument("--json", type=Path, help="write every scenario's result and the summary here")
    p.add_argument("--markdown", action="store_true", help="print markdown tables")
    a = p.parse_args(argv)
    env = dict(kv.split("=", 1) for kv in a.env)
    worlds = _csv(a.worlds)
    for w in worlds:
        if w not in WORLDS:
            p.error(f"unknown world {w!r} (known: {', '.join(sorted(WORLDS))})")
    seeds = _csv(a.seeds, int) if a.seeds else ([1] if a.fast else [1, 2])
    rates = {"A": _csv(a.rates, float) if a.rates else ([300.0] if a.fast else list(WORLDS["A"].rates)),
             "B": _csv(a.rates_b, float) if a.rates_b else ([1000.0] if a.fast else list(WORLDS["B"].rates))}
    scenarios = plan(worlds, seeds, rates, _csv(a.faults) if a.faults else None, a.fast, a.clean_days)
    work = a.workdir or Path(tempfile.mkdtemp(prefix="skewwatch-worlds-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"{len(scenarios)} scenarios, {a.jobs} in parallel, {' '.join(cli())}"
          + (f", env {' '.join(a.env)}" if a.env else ""), file=sys.stderr)
    with ProcessPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        refs = {}
        for (w, s), fut in {(w, s): pool.submit(run_baseline, w, s, work / f"train-{w}-s{s}", env)
                            for w in worlds for s in seeds}.items():
            refs[(w, s)] = fut.result()
        jobs = [{"scenario": {"world": s.world, "seed": s.seed, "rate": s.rate, "fault": s.fault, "days": s.days},
                 "reference": refs[(s.world, s.seed)]["reference"], "workdir": str(work), "env": env, "keep": a.keep}
                for s in scenarios]
        results = []
        for k, r in enumerate(pool.map(run_scenario, jobs), 1):
            results.append(r)
            state = "error" if "error" in r else ("clean" if r["fault"] is None else ("caught" if r["caught"] else "missed"))
            print(f"  [{k}/{len(jobs)}] {r['scenario']}: {state}", file=sys.stderr)
    summary = summarise(results)
    print(render(summary, results, a.markdown))
    print(f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    if a.json:
        a.json.write_text(json.dumps({"argv": sys.argv if argv is None else argv, "env": env, "baselines": list(refs.values()),
                                      "summary": summary, "scenarios": results}, indent=1, default=str))
    if not a.keep and a.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
